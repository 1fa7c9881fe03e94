"""Errors a user can act on.

Every error carries what went wrong and, where there is one, the fix. The CLI prints them
without a traceback; anything else escaping is a bug.
"""

from __future__ import annotations


def shorten(text: str, limit: int = 80, ellipsis: str = "...") -> str:
    """``text`` cut to ``limit`` characters for a message: hostile input (a plan, a manifest,
    an images file) can hold megabytes where a message needs a recognisable start."""
    return text if len(text) <= limit else text[: limit - len(ellipsis)] + ellipsis


class ImagesyncError(Exception):
    """Base class: ``message`` says what is wrong, ``hint`` how to fix it."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class InvalidReference(ImagesyncError):
    """An image reference does not follow the distribution grammar."""


class ConfigError(ImagesyncError):
    """The images file, the registries config or a command-line value is unusable."""


class PlanRejected(ImagesyncError):
    """A saved plan cannot be applied as it is."""


class RegistryError(ImagesyncError):
    """A registry answered with an error, or could not be reached.

    ``status`` is the HTTP status (None for connection problems); ``code`` is the first
    error code from the registry's JSON body, when it sent one.
    """

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        *,
        status: int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message, hint)
        self.status = status
        self.code = code


class TransientError(RegistryError):
    """A failure that may pass (a 5xx, a 429, a reset); ``retry_after`` is the wait the server
    asked for (its ``Retry-After``), when it named one."""

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        *,
        status: int | None = None,
        retry_after: str | None = None,
    ) -> None:
        super().__init__(message, hint, status=status)
        self.retry_after = retry_after


class QuotaExhausted(RegistryError):
    """A registry's pull quota is used up (Docker Hub's ``429 TOOMANYREQUESTS``): not retried,
    and nothing more is asked of that registry in this run (design §16)."""


class NotFound(RegistryError):
    """The manifest, blob or repository does not exist (HTTP 404)."""


class AuthenticationFailed(RegistryError):
    """The registry refused our credentials (HTTP 401, or 403 on a token request)."""


class DigestMismatch(RegistryError):
    """Bytes did not hash to the digest they were asked for or announced with."""
