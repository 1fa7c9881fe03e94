"""Shards: a deterministic part of an images file, for N jobs that share one file's work.

An entry's shard follows from its target repository alone (its path below the target prefix,
hashed), so every image and every mount into one repository is in one shard, and adding or
removing an entry moves no other entry to another shard. Shards are numbered from 0, as
Kubernetes numbers an Indexed Job's pods (``JOB_COMPLETION_INDEX``): ``--shard 0/3``,
``1/3`` and ``2/3`` together are the whole file.

Shards of one plan are put together again for review (``show``, ``diff``, ``report``):
:func:`check_pieces` refuses a set that is not one plan's, with every reason at once.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from imagesync.errors import ImagesyncError, shorten
from imagesync.reference import Repository, parse_reference

# Enough for any CI matrix (GitHub allows 256 jobs) or Indexed Job, small enough that a
# typo (--shard 1/1000000) is an error rather than a million near-empty plans.
MAX_SHARDS = 1000
_SHARD = re.compile(r"\s*(\d{1,7})\s*/\s*(\d{1,7})\s*")


class ShardsRejected(ImagesyncError):
    """Documents given as the shards of one plan are not."""


@dataclass(frozen=True, order=True)
class Shard:
    """Shard ``index`` of ``count`` (0 ≤ index < count)."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_SHARDS or not 0 <= self.index < self.count:
            raise ImagesyncError(
                f"shard {self.index}/{self.count} does not exist",
                f"give K/N with N from 1 to {MAX_SHARDS} and K from 0 to N-1",
            )

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``K/N``: the shard numbered K (from 0) of N."""
        match = _SHARD.fullmatch(text)
        if match is None:
            raise ImagesyncError(
                f"{shorten(text, 40)!r} is not a shard",
                "write K/N, e.g. --shard 0/4 for the first of four (K counts from 0, as "
                "JOB_COMPLETION_INDEX does)",
            )
        return cls(int(match.group(1)), int(match.group(2)))

    def holds(self, prefix: Repository, repository: Repository) -> bool:
        """Whether ``repository`` (a target repository below ``prefix``) is in this shard."""
        return shard_of(prefix, repository, self.count) == self.index


def outsider(
    shard: Shard, prefix: Repository, entries: Iterable[tuple[int, str]]
) -> tuple[int, str, int] | None:
    """The first of ``entries`` (entry number, target reference) that is not in ``shard``,
    with the index of the shard it is in: what a shard's plan or apply report must not hold
    (its own job would have written it). None when every entry is the shard's."""
    for entry, target in entries:
        repository = parse_reference(target).repository
        if not shard.holds(prefix, repository):
            return entry, target, shard_of(prefix, repository, shard.count)
    return None


def shard_of(prefix: Repository, repository: Repository, count: int) -> int:
    """The shard of a target repository: its path below the prefix, hashed (the same split
    for any target prefix, and for any other entries in the file)."""
    path = repository.path
    if prefix.path and path.startswith(prefix.path + "/"):
        path = path[len(prefix.path) + 1 :]
    number = int.from_bytes(hashlib.sha256(path.encode("utf-8")).digest()[:8], "big")
    return number % count


@dataclass(frozen=True)
class Piece:
    """One document of a set that should be one plan's shards: where it was read from and
    what it says it is."""

    where: str
    target_prefix: str
    images_sha256: str
    shard: Shard | None


def check_pieces(pieces: Sequence[Piece], what: str = "plans") -> None:
    """Refuse ``pieces`` unless they are one document, or every shard of one plan once: the
    same target and images file, one shard count, each shard exactly once. Every problem is
    in the one message."""
    if len(pieces) <= 1:
        return
    first = pieces[0]
    problems: list[str] = []
    for piece in pieces[1:]:
        if piece.target_prefix != first.target_prefix:
            problems.append(
                f"{piece.where} targets {piece.target_prefix}, {first.where} {first.target_prefix}"
            )
        if piece.images_sha256 != first.images_sha256:
            problems.append(
                f"{piece.where} was made from another images file than {first.where} (sha256 "
                f"{piece.images_sha256[:12]}…, not {first.images_sha256[:12]}…)"
            )
    whole = [p.where for p in pieces if p.shard is None]
    if whole:
        problems.append(
            f"{', '.join(whole)} {'is a whole plan' if len(whole) == 1 else 'are whole plans'}, "
            "not a shard"
        )
    counts = sorted({p.shard.count for p in pieces if p.shard is not None})
    if len(counts) > 1:
        problems.append(
            "they split the file into different numbers of shards ("
            + ", ".join(f"{p.where}: {p.shard.count}" for p in pieces if p.shard is not None)
            + ")"
        )
    elif counts:
        count = counts[0]
        given: dict[int, list[str]] = {}
        for piece in pieces:
            if piece.shard is not None:
                given.setdefault(piece.shard.index, []).append(piece.where)
        problems += [
            f"shard {index}/{count} is given {len(names)} times ({', '.join(names)})"
            for index, names in sorted(given.items())
            if len(names) > 1
        ]
        missing = [str(index) for index in range(count) if index not in given]
        if missing:
            problems.append(
                f"shard{'s' if len(missing) > 1 else ''} {', '.join(missing)} of {count} "
                f"{'are' if len(missing) > 1 else 'is'} missing"
            )
    if problems:
        raise ShardsRejected(
            f"these {what} are not the shards of one plan: " + "; ".join(problems),
            f"give every shard of one plan run once (the {what} of one images file and "
            "target, planned with --shard 0/N … N-1/N)",
        )
