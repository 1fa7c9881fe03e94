"""Target mapping: where a source image lands in the target registry (or layout tree).

This is the one place that rule lives. It keeps the image-syncer's layout so that existing
mirrors stay valid: ``<prefix>/<source name as written>``, with ``library/`` in front of a
single-component name and a port's ``:`` turned into ``-``. A layout tree ``oci:DIR`` is a
prefix like any other: the layout of ``alpine:3.20`` is ``DIR/library/alpine``, tagged 3.20.

The same rule says where an image is read from a source layout tree (``--source-layout``):
where ``--target oci:DIR`` wrote it from the same images file, so that one file serves both
sides of an air gap.
"""

from __future__ import annotations

from imagesync.reference import Reference, Repository, layout_repository, parse_repository

DEFAULT_TAG = "latest"


def written_name(source: Reference) -> str:
    """The source's name as the user wrote it, which the mapping is defined on (the normalised
    name for a reference that was never written)."""
    return source.written_name or str(source.repository)


def target_repository(source: Reference, prefix: Repository) -> Repository:
    written = written_name(source)
    if "/" not in written:
        written = f"library/{written}"
    # A port's ':' is not allowed in a repository path; '-' keeps hosts apart and readable.
    # The written host may hold upper-case letters, which repository paths may not.
    path = written.replace(":", "-").lower()
    if prefix.is_layout:
        return layout_repository(prefix, path)
    return parse_repository(f"{prefix.registry}/{prefix.child(path).path}")


def target_tag(source: Reference, tag: str | None) -> str:
    """The tag in the target: the entry's ``tag``, else the source's tag, else ``latest``."""
    return tag or source.tag or DEFAULT_TAG


def target_reference(source: Reference, tag: str | None, prefix: Repository) -> Reference:
    return Reference(target_repository(source, prefix), target_tag(source, tag))


def layout_source(source: Reference, tag: str | None, tree: Repository) -> Reference:
    """Where an entry's image is in the source layout tree ``tree``: its target reference
    there, and by digest when the entry pins one (the digest is what is copied)."""
    reference = target_reference(source, tag, tree)
    return reference.with_digest(source.digest) if source.digest else reference
