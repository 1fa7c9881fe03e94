"""Entries written back as YAML: what the fix of a conflict asks the user to paste.

The commonest failure of an images file is an upstream tag that was re-published: the target
tag holds the old digest, the source tag now names another. The fix is an entry that names the
digest, written so that it lands on the same target: the source's name exactly as the user
wrote it (the target mapping is defined on the written name: ``busybox`` and
``library/busybox`` are one target, ``docker.io/library/busybox`` another), then
``@<digest>``, and the target tag as ``tag:`` (which a source by digest needs). Values are
double-quoted, so YAML reads them as text, whatever they look like.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

from imagesync.images.mapping import written_name
from imagesync.reference import MAX_TAG_LENGTH, is_valid_tag

if TYPE_CHECKING:
    from imagesync.images.file import ImageEntry

_VERSION_SUFFIX = re.compile(r"-v(\d{1,6})$")


def pinned_source(entry: ImageEntry, digest: str) -> str:
    """The entry's source as written, pinned to ``digest`` (tag and digest taken off)."""
    return f"{written_name(entry.source)}@{digest}"


def next_tag(tag: str) -> str:
    """A new tag for re-published content: ``1.36`` → ``1.36-v2``, ``1.36-v2`` → ``1.36-v3``
    (the image-syncer's users' own convention), within the 128 characters a tag may have."""
    match = _VERSION_SUFFIX.search(tag)
    if match:
        base, number = tag[: match.start()], int(match.group(1)) + 1
    else:
        base, number = tag, 2
    suffix = f"-v{number}"
    candidate = base[: MAX_TAG_LENGTH - len(suffix)] + suffix
    assert is_valid_tag(candidate), candidate
    return candidate


def entry_yaml(source: str, tag: str, amd64_only: bool, indent: int | None, key_indent: int) -> str:
    """The entry as lines of YAML, indented as the entry it replaces is (``indent``: the
    column of its ``-``; None, a list in flow style: the usual block style at column 0)."""
    dash = 0 if indent is None else indent
    keys = max(key_indent, dash + 2) if indent is not None else 2
    lines = [
        " " * dash + "-" + " " * (keys - dash - 1) + f"source: {_quoted(source)}",
        " " * keys + f"tag: {_quoted(tag)}",
    ]
    if amd64_only:
        lines.append(" " * keys + "amd64Only: true")
    return "\n".join(lines) + "\n"


def _quoted(text: str) -> str:
    # A JSON string is a YAML double-quoted scalar; references and tags are ASCII.
    return json.dumps(text)
