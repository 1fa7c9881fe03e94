"""Target mapping: where a source image lands in the target registry.

This is the one place that rule lives. It keeps the image-syncer's layout so that existing
mirrors stay valid: ``<prefix>/<source name as written>``, with ``library/`` in front of a
single-component name and a port's ``:`` turned into ``-``.
"""

from __future__ import annotations

from imagesync.reference import Reference, Repository, parse_repository

DEFAULT_TAG = "latest"


def target_repository(source: Reference, prefix: Repository) -> Repository:
    written = source.written_name or str(source.repository)
    if "/" not in written:
        written = f"library/{written}"
    # A port's ':' is not allowed in a repository path; '-' keeps hosts apart and readable.
    path = prefix.child(written.replace(":", "-")).path
    # The written host may hold upper-case letters, which repository paths may not.
    return parse_repository(f"{prefix.registry}/{path.lower()}")


def target_tag(source: Reference, tag: str | None) -> str:
    """The tag in the target: the entry's ``tag``, else the source's tag, else ``latest``."""
    return tag or source.tag or DEFAULT_TAG


def target_reference(source: Reference, tag: str | None, prefix: Repository) -> Reference:
    return Reference(target_repository(source, prefix), target_tag(source, tag))
