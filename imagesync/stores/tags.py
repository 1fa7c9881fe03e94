"""Tags are immutable (design.md §5, §11): the one way a tag is written, and the look after.

:func:`write_tag` writes a tag only where it is absent, holds this manifest already, or holds
``replacing`` (the one digest the writer means to write over). It goes by the writer's look
at the tag right before (``found``): the tightest check a registry allows, which has no
conditional write. A store that can do better checks again in one step with the write (a
layout, under its lock) and raises TagTaken when the tag changed in between.

:func:`read_back` is the look after a write: the tag must hold what was written.
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING

from imagesync.stores.store import TagTaken

if TYPE_CHECKING:
    from imagesync.content.manifest import Manifest
    from imagesync.reference import Reference
    from imagesync.stores.store import Store


class TagWrite(Enum):
    """What :func:`write_tag` did."""

    WRITTEN = "written"
    # The tag held this manifest already: nothing was written.
    HELD = "held"


def write_tag(
    store: Store,
    target: Reference,
    manifest: Manifest,
    found: str | None,
    *,
    replacing: str | None = None,
) -> TagWrite:
    """Write ``manifest`` under the tag of ``target``, which held ``found`` (None: nothing)
    at the caller's look right before. Raises TagTaken when it holds another manifest than
    this one or ``replacing``: it is not written over."""
    assert target.tag is not None
    if found == manifest.digest:
        return TagWrite.HELD
    if found is not None and found != replacing:
        raise TagTaken(f"{target} holds {found} now", found)
    store.put_manifest(target.repository, target.tag, manifest, replacing=replacing)
    return TagWrite.WRITTEN


def read_back(store: Store, target: Reference, digest: str) -> str | None:
    """Why ``target`` does not hold ``digest`` after it was written; None when it does."""
    written = store.head_manifest(target)
    if written is not None and written.digest == digest:
        return None
    found = written.digest if written else "nothing"
    return f"after the write, {target} holds {found}, not {digest}"
