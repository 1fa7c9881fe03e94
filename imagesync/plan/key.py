"""The plan key: what makes a stored plan trustworthy (design.md §14).

A plan's checksum catches accidents; anyone can recompute it. With ``IMAGESYNC_PLAN_KEY`` (a
secret only the CI holds) plan writes an HMAC-SHA256 over the plan, and apply refuses a plan
without a valid one: a plan artifact taken from storage is then one imagesync made with the key,
unchanged — including the digests it resolved for sources given by tag, which nothing else can
vouch for once the tag may have moved.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping

from imagesync.errors import ConfigError
from imagesync.redact import secrets

PLAN_KEY_ENV = "IMAGESYNC_PLAN_KEY"
PREFIX = "hmac-sha256:"
# An HMAC is as strong as its key; a short one can be guessed from a plan and its HMAC.
MIN_KEY_LENGTH = 16


class PlanKey:
    """A secret key for plan HMACs. Its value is never shown: not in repr, not in messages."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        secrets.add(secret.decode("utf-8", "replace"))

    def __repr__(self) -> str:
        return "PlanKey(<secret>)"

    def sign(self, canonical: bytes) -> str:
        """The HMAC-SHA256 of ``canonical`` (the plan's canonical form), as written in a plan."""
        return PREFIX + hmac.new(self._secret, canonical, hashlib.sha256).hexdigest()

    def verifies(self, canonical: bytes, written: str) -> bool:
        """Whether ``written`` is this key's HMAC of ``canonical`` (compared in constant time)."""
        return hmac.compare_digest(self.sign(canonical), written)


def plan_key_from_environment(environ: Mapping[str, str] | None = None) -> PlanKey | None:
    """The key in ``IMAGESYNC_PLAN_KEY``, or None when it is unset or empty.

    Python hands a variable that is not UTF-8 over with its bytes as surrogates; such a key
    is refused (without showing it): it could not be set the same way in the job that
    applies, and a secret store holds text."""
    value = (os.environ if environ is None else environ).get(PLAN_KEY_ENV, "")
    if not value:
        return None
    try:
        secret = value.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(
            f"{PLAN_KEY_ENV} is not UTF-8 text",
            "set it to a long random text secret, e.g. the output of `openssl rand -hex 32`",
        ) from None
    if len(value) < MIN_KEY_LENGTH:
        raise ConfigError(
            f"{PLAN_KEY_ENV} is too short to be a key ({len(value)} characters, at least "
            f"{MIN_KEY_LENGTH} are needed)",
            "set it to a long random secret, e.g. the output of `openssl rand -hex 32`",
        )
    return PlanKey(secret)
