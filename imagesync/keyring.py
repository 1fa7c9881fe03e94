"""The cosign keys a command works with, read from where the user named them: ``--sign-key``
and ``--verify-key`` on the command line, ``sign:`` of the target's registry and ``verify:``
of each source registry in the registries config.

Every key is read here, before the command sends a single request: a missing file, a wrong
passphrase or a key of the wrong kind ends the command with its message and fix, and nothing
has been asked of any registry. What each command needs:

- ``plan``: the public half of the signing key (a pull request's plan job may hold only
  ``cosign.pub``, and then needs no passphrase) and the verification keys;
- ``apply PLAN``: the private key, and only when the plan has signatures to add; it must be
  the key the plan was made for;
- ``sync`` and ``apply -i``: both, the private key once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from imagesync.errors import ConfigError, PlanRejected

if TYPE_CHECKING:
    from imagesync.images.file import ImagesFile
    from imagesync.plan.document import Plan
    from imagesync.plan.signing import Signing, Verifying
    from imagesync.reference import Repository
    from imagesync.signing import SigningKey
    from imagesync.stores.registry.registries import RegistriesConfig


@dataclass(frozen=True)
class KeyOptions:
    """What the command line named: ``sign_key`` signs what lands (for plan, its public key
    will do), ``sign_children`` signs each platform manifest of an index too, ``verify_keys``
    verify every source."""

    sign_key: Path | None = None
    sign_children: bool = False
    verify_keys: tuple[Path, ...] = ()


@dataclass(frozen=True)
class Keys:
    """The keys of a run: what plan signs and verifies with, and what apply signs with."""

    signing: Signing | None = None
    verifying: Verifying | None = None
    signing_key: SigningKey | None = None


def plan_keys(
    options: KeyOptions,
    config: RegistriesConfig | None,
    images: ImagesFile,
    *,
    private: bool,
) -> Keys:
    """The keys to plan with; ``private``: apply follows in this run (sync, apply -i), so the
    signing key must be the private one, and it is loaded for the applier too. ``config``:
    the registries config, None when none was given."""
    path = options.sign_key or _config_sign_key(config, images.target_prefix, private=private)
    if path is None and options.sign_children:
        raise ConfigError(
            "--sign-children signs with the signing key, and none was given",
            "give --sign-key (or sign: in the target registry's registries config)",
        )
    every, by_registry = options.verify_keys, _config_verify_keys(config, images)
    if path is None and not every and not by_registry:
        return Keys()  # nothing loads cryptography: a registries config alone names no key
    from imagesync.plan.signing import Signing, Verifying
    from imagesync.signing import (
        cosign_password,
        load_public_half,
        load_signing_key,
        load_verification_key,
    )

    signing_key = None
    signing = None
    if path is not None:
        if private:
            signing_key = load_signing_key(path, cosign_password())
            public = signing_key.verification_key
        else:
            public = load_public_half(path, cosign_password())
        signing = Signing(public, options.sign_children)
    verifying = None
    if every or by_registry:
        verifying = Verifying(
            tuple(load_verification_key(key) for key in every),
            {
                registry: tuple(load_verification_key(key) for key in keys)
                for registry, keys in by_registry.items()
            },
        )
    return Keys(signing, verifying, signing_key)


def apply_key(
    options: KeyOptions, config: RegistriesConfig | None, plan: Plan
) -> SigningKey | None:
    """The private key that adds the plan's signatures; None when it adds none. Refuses a
    plan whose signatures were planned for another key, and a key for a plan without them."""
    if options.sign_children:
        raise ConfigError(
            "--sign-children is decided when the plan is made",
            "give it to plan; apply signs what the plan says",
        )
    planned = plan.signing
    path = options.sign_key or _config_sign_key(config, plan.prefix, private=True)
    if planned is None:
        if options.sign_key is not None:
            raise PlanRejected(
                "the plan was made without a signing key: it adds no signatures",
                "re-run plan with --sign-key, or apply without it",
            )
        return None
    from imagesync.content.referrers import SIGNING
    from imagesync.plan.document import Action

    to_sign = any(
        sub.kind == SIGNING and sub.action is Action.CREATE
        for change in plan.changes
        for sub in change.subchanges
    )
    if not to_sign:
        return None
    from imagesync.signing import cosign_password, load_signing_key

    if path is None:
        raise ConfigError(
            f"the plan adds signatures with {planned.key_name}, and apply was given no key",
            "give its private key: --sign-key cosign.key (COSIGN_PASSWORD for its passphrase)",
        )
    key = load_signing_key(path, cosign_password())
    if key.verification_key.fingerprint != planned.fingerprint:
        raise PlanRejected(
            f"the plan adds signatures with {planned.key_name}, not with "
            f"{key.verification_key.name}",
            "give the key the plan was made with, or re-run plan with this one",
        )
    return key


def _config_sign_key(
    config: RegistriesConfig | None, target: Repository, *, private: bool
) -> Path | None:
    """``sign:`` of the target's registry: ``key`` to sign, ``public_key`` (when given) to plan.
    A layout target has no registry, and so no setting."""
    if config is None or target.is_layout:
        return None
    sign = config.settings(target.registry).sign
    if sign is None:
        return None
    return sign.key if private or sign.public_key is None else sign.public_key


def _config_verify_keys(
    config: RegistriesConfig | None, images: ImagesFile
) -> dict[str, tuple[Path, ...]]:
    """The key files of the registries config (``verify:``) for the source registries the
    images file names; ``--verify-key`` files verify every source besides."""
    by_registry = {}
    if config is not None:
        for registry in sorted({entry.source.repository.registry for entry in images.entries}):
            paths = config.settings(registry).verify_keys
            if paths:
                by_registry[registry] = tuple(paths)
    return by_registry
