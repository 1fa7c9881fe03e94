"""One checked entry of the images file: what the checks build, and what plan works on.

It lives apart from :mod:`imagesync.images.file` (which re-exports it) so that the checks
that build it and the file that returns it need not import each other.
"""

from __future__ import annotations

from dataclasses import dataclass

from imagesync.images.mapping import DEFAULT_TAG
from imagesync.reference import Reference


@dataclass(frozen=True)
class ImageEntry:
    """One ``- source: …`` entry, checked, with the reference it lands on in the target.

    ``index`` is 1-based in file order; ``line`` is where the entry starts; ``source_text`` is
    the source as written (the plan shows it, the mapping is defined on it); ``tag`` is the
    entry's ``tag`` key exactly as written, None when absent. ``origin`` is where the image is
    read: the source, or its copy in a source layout tree (``--source-layout``).
    """

    index: int
    line: int
    source_text: str
    source: Reference
    tag: str | None
    amd64_only: bool
    target: Reference
    origin: Reference
    # Where the entry is written: its last line, the column of its "-" (None when the list is
    # not in block style) and of its keys; a fix to paste goes in exactly there.
    last_line: int = 0
    indent: int | None = None
    key_indent: int = 2

    @property
    def sync_key(self) -> tuple[str, str]:
        """Entries with equal keys are the same work: same target tag, same source image.

        A tag-less source means ``latest``; with a digest, the digest is what is copied.
        """
        what = self.source.digest or self.source.tag or DEFAULT_TAG
        return str(self.target), f"{self.source.repository}@{what}"
