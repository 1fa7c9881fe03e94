"""JSON documents from registries, parsed as what they must be before anything looks inside.

A registry (or a proxy in front of it) may serve anything: a list where an object belongs,
text that is not JSON, nesting deep enough to exhaust Python's stack. Every document read
from one — manifests, image configs, tag lists, token answers, error bodies — is parsed here,
so each of those is an error of the entry that asked, with a message, never a traceback.
"""

from __future__ import annotations

import json
from typing import Any

from imagesync.errors import ImagesyncError, RegistryError


class BadDocument(RegistryError):
    """A registry sent a document that is not a JSON object."""


def json_object(
    raw: bytes | str, what: str, error: type[ImagesyncError] = BadDocument
) -> dict[str, Any]:
    """``raw`` parsed as a JSON object; otherwise ``error`` saying what ``what`` is instead."""
    try:
        document = json.loads(raw)
    except RecursionError:
        raise error(f"{what} nests too deeply to be one") from None
    except ValueError:  # also UnicodeDecodeError: bytes that are not UTF-8 text
        raise error(f"{what} is not valid JSON") from None
    if not isinstance(document, dict):
        raise error(f"{what} is not a JSON object (it is {_kind(document)})")
    return document


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    return "a number"
