"""What apply did: outcomes per image and sub-change, and the blobs it moved.

Values only, apart from the machinery that produces them (``applier.py``), so that rendering a
report, or a progress display, loads no network code.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from imagesync.plan.document import Change


class Outcome(StrEnum):
    CREATED = "created"
    SKIPPED = "skipped"
    CONFLICT = "conflict"
    FAILED = "failed"


@dataclass(frozen=True)
class Transfer:
    """How the blobs of an image got into the target: copied (bytes crossed the wire),
    mounted from another repository of the target (a registry's mount, a layout's link), or
    there already."""

    copied: int = 0
    mounted: int = 0
    present: int = 0
    bytes_copied: int = 0

    def __add__(self, other: Transfer) -> Transfer:
        return Transfer(
            self.copied + other.copied,
            self.mounted + other.mounted,
            self.present + other.present,
            self.bytes_copied + other.bytes_copied,
        )


@dataclass(frozen=True)
class SubResult:
    kind: str
    target: str
    digest: str
    outcome: Outcome
    message: str


@dataclass(frozen=True)
class ImageResult:
    entry: int
    source: str
    target: str
    digest: str | None
    outcome: Outcome
    message: str
    transfer: Transfer = Transfer()
    subresults: tuple[SubResult, ...] = ()

    @property
    def failed(self) -> bool:
        return self.outcome in (Outcome.CONFLICT, Outcome.FAILED) or any(
            s.outcome in (Outcome.CONFLICT, Outcome.FAILED) for s in self.subresults
        )


@dataclass(frozen=True)
class ApplyReport:
    results: tuple[ImageResult, ...]
    interrupted: bool = False

    @property
    def failed(self) -> bool:
        return self.interrupted or any(r.failed for r in self.results)

    def counts(self) -> dict[str, int]:
        counts = {outcome.value: 0 for outcome in Outcome}
        for result in self.results:
            counts[result.outcome.value] += 1
        return counts

    def transfer(self) -> Transfer:
        """The blobs of the whole run: each shared blob copied once, mounted elsewhere."""
        total = Transfer()
        for result in self.results:
            total = total + result.transfer
        return total


class ApplyListener:
    """Receives progress; the default does nothing. The CLI's progress display overrides it."""

    def image_started(self, change: Change) -> None:
        """Called when an image's copy begins."""

    def bytes_copied(self, change: Change, count: int) -> None:
        """Called as blob bytes pass through."""

    def image_finished(self, result: ImageResult) -> None:
        """Called once per planned change with its outcome."""
