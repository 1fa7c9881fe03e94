"""Redaction: the one filter every log line and error message about HTTP passes through."""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from imagesync.errors import shorten
from imagesync.printable import printable

REDACTED = "[REDACTED]"
_SECRET_HEADERS = {"authorization", "proxy-authorization", "cookie", "set-cookie"}
_SECRET_PARAMS = {"access_token", "token", "password", "refresh_token", "client_secret", "_state"}
_BEARER_OR_BASIC = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)


def redact_url(url: str) -> str:
    """Drop user info and secret query parameters (upload URLs carry a signed ``_state``)."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = urlencode(
        [(k, REDACTED if k.lower() in _SECRET_PARAMS else v) for k, v in parse_qsl(parts.query)]
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: REDACTED if k.lower() in _SECRET_HEADERS else v for k, v in headers.items()}


class SecretFilter:
    """Removes known secret values, and anything shaped like a credential, from text."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()

    def add(self, secret: str | None) -> None:
        # Short values would redact innocent text ("a", "1") and are not worth hiding.
        if secret and len(secret) >= 4:
            self._secrets.add(secret)

    def __call__(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, REDACTED)
        return _BEARER_OR_BASIC.sub(lambda m: f"{m.group(1)} {REDACTED}", text)


# Process-wide, because a secret learnt by one registry's auth must be hidden everywhere.
secrets = SecretFilter()


def excerpt(text: str, limit: int = 200) -> str:
    """Someone else's words (a registry's message, a header, a URL) ready for a message:
    secrets taken out first, then made printable (a newline or an escape sequence in them
    is shown, never acted on), then cut to ``limit`` characters. Cutting first could leave
    part of a secret that no longer matches it, and that part would be printed."""
    return shorten(printable(secrets(text)), limit)
