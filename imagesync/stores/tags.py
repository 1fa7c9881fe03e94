"""Tags are immutable (design.md §5, §11): the one way a tag is written, and the look after.

:func:`write_tag` writes a tag only where it is absent, holds this manifest already, or holds
``replacing`` (the one digest the writer means to write over). It goes by the writer's look
at the tag right before (``found``): the tightest check a registry allows, which has no
conditional write. A store that can do better checks again in one step with the write (a
layout, under its lock) and raises TagTaken when the tag changed in between.

:func:`read_back` is the look after a write: the tag must hold what was written.

A registry with immutable tags (ECR's ``imageTagMutability: IMMUTABLE``) refuses every PUT to
a tag that exists with ``400 TAG_INVALID``, even one of the digest it holds (registries.md
item 2: osscontainertools/kaniko#204, moby/buildkit#3776). The answer says what happened: the
tag is looked at once more, and when it holds this manifest the write is done (HELD); when it
holds another, :class:`ImmutableTag` says so, and what to do.
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING

from imagesync.errors import RegistryError
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
    try:
        store.put_manifest(target.repository, target.tag, manifest, replacing=replacing)
    except RegistryError as error:
        if error.code != "TAG_INVALID":
            raise
        held = store.head_manifest(target)
        if held is None:
            raise
        if held.digest == manifest.digest:
            return TagWrite.HELD
        raise ImmutableTag(target, held.digest, error) from None
    return TagWrite.WRITTEN


class ImmutableTag(RegistryError):
    """The registry refused to write over a tag that exists: its repository's tags are
    immutable. ``found`` is the digest the tag keeps."""

    def __init__(self, target: Reference, found: str, refusal: RegistryError) -> None:
        super().__init__(
            f"{target} holds {found} and cannot be written over: the repository's tags are "
            f"immutable (the registry answered: {refusal.message})",
            "allow changes to this repository's tags (ECR: aws ecr put-image-tag-mutability "
            f"--repository-name {target.repository.path} --image-tag-mutability MUTABLE, or "
            "IMMUTABLE_WITH_EXCLUSION with a filter for the *.sig tags), then apply again; or "
            "leave the tag as it is",
            status=refusal.status,
            code=refusal.code,
        )
        self.held_digest = found


def read_back(store: Store, target: Reference, digest: str) -> str | None:
    """Why ``target`` does not hold ``digest`` after it was written; None when it does."""
    written = store.head_manifest(target)
    if written is not None and written.digest == digest:
        return None
    found = written.digest if written else "nothing"
    return f"after the write, {target} holds {found}, not {digest}"
