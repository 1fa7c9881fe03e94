"""The store interface: what the planner and the applier ask of a place that holds images.

A store answers "which manifest does this tag hold", "is this blob here", hands out a blob's
bytes and takes blobs and manifests in. Two kinds implement it: a registry (``registry/``,
the distribution API over HTTP) and a tree of OCI image layouts on disk (``layout/``). The
planner and the applier hold two of them — the sources and the target (:class:`Stores`) — and
never ask which kind they hold.

Each method names its repository; a store serves many (a registry serves every repository of
every host, a layout tree a directory per repository). What a store finds, it checks: a
manifest against the digest it was asked for, a blob's bytes as they pass.

A store's members are content verbs only: each answers from what the place holds now, or
changes it. What a run learns across them (where it has seen a blob, which repository is new,
pulls left, that it is stopping) is the run's: :class:`imagesync.stores.run.RunContext`,
beside the stores in :class:`Stores`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from imagesync.content.manifest import Descriptor, Manifest
from imagesync.errors import RegistryError, TransientError
from imagesync.reference import Reference, Repository
from imagesync.stores.run import RunContext

# A blob's bytes as they are read: an iterator of chunks, each checked before it is handed
# over (the last one only when the whole blob hashes to its digest), closed when done.
BlobStream = AbstractContextManager[Iterator[bytes]]
Progress = Callable[[int], None]


@dataclass(frozen=True)
class ReadFrom:
    """Where a blob's read begins (design §17): at ``offset``, the bytes before it being
    hashed already into ``hasher`` (a ``hashlib`` object of the digest's algorithm, which the
    read goes on updating: the digest is checked across the pieces); ``resumed`` is told the
    offset each time a read that broke goes on from where it stopped."""

    offset: int = 0
    hasher: Any = None
    resumed: Callable[[int], None] | None = None


class BlobOpener(Protocol):
    """Opens a blob's stream: called by the receiving store once it is ready for the bytes (a
    stream opened early would stall, and a registry would drop it), and again on a retry;
    ``start``: from where (a layout's half-written file goes on from its end)."""

    def __call__(self, start: ReadFrom | None = None) -> BlobStream: ...


@dataclass
class Tally:
    """One blob's transfer as it goes, across its attempts: bytes sent (``progress`` hears
    of them), and the resumes, each with the bytes it spared (what the receiver had already,
    or the reader had read); ``heard`` are told each resume's offset.

    ``shown``: what ``progress`` was told in this attempt (taken back if it fails). A resume
    before the attempt's first byte (a kept session, a half-written file) shows the bytes the
    receiver has already, so the display reaches the blob's size."""

    progress: Progress | None = None
    sent: int = 0
    shown: int = 0
    resumes: int = 0
    bytes_resumed: int = 0
    heard: list[Callable[[int], None]] = field(default_factory=list)

    def __call__(self, count: int) -> None:
        self.sent += count
        self._show(count)

    def resumed(self, offset: int) -> None:
        """The transfer went on at ``offset`` instead of starting over."""
        self.resumes += 1
        self.bytes_resumed += offset
        if self.shown == 0 and offset:
            self._show(offset)
        for listener in self.heard:
            listener(offset)

    def failed(self) -> None:
        """The attempt broke: what it showed is taken back."""
        self._show(-self.shown)
        self.shown = 0

    def _show(self, count: int) -> None:
        self.shown += count
        if self.progress is not None and count:
            self.progress(count)


def resumed_at(progress: Progress | None, offset: int) -> None:
    """Tell ``progress`` (when it is a :class:`Tally`) that a transfer went on at ``offset``."""
    if isinstance(progress, Tally):
        progress.resumed(offset)


# get_blob reads a config blob whole to learn the platform; real ones are a few KiB.
MAX_CONFIG_BYTES = 4 * 1024 * 1024


class TransferBroken(TransientError):
    """A blob's bytes stopped midway (a reset, a truncated download, an upload the receiver
    failed in a way that may pass: 5xx, 429). A stream cannot be rewound, so nobody retried
    it: the caller may start the whole transfer again."""


class TagTaken(RegistryError):
    """A tag holds another manifest than the one the writer looked at: it is not written
    over. ``held_digest`` is the digest it holds."""

    def __init__(self, message: str, found: str) -> None:
        super().__init__(message, "re-run plan; tags are never overwritten")
        self.held_digest = found


@dataclass(frozen=True)
class MountAnswer:
    """What a request to take a blob from another repository of the same store came to: the
    blob is there now, or else the upload session the store opened instead (None when it
    opened none), for the copy that follows."""

    mounted: bool
    session: str | None = None


@dataclass(frozen=True)
class Located:
    """A manifest's descriptor, and the store that answered for it.

    What is attached to an image (signatures, referrers) is looked up where the image was
    found and nowhere else: a pull-through mirror holds images by digest, often without a
    single tag, and the registry behind it may be out of reach altogether.
    """

    descriptor: Descriptor
    found: Store


class Store(Protocol):
    """Manifests, tags, referrers and blobs of many repositories, in one place."""

    @property
    def where(self) -> str:
        """The place in a message: a registry host, a mirror, a layout tree."""
        ...

    # -- manifests -----------------------------------------------------------------------

    def locate(self, ref: Reference) -> Located | None:
        """Digest, media type and size of what ``ref`` names, and the store that answered
        (see :class:`Located`); None when it is not there."""
        ...

    def head_manifest(self, ref: Reference) -> Descriptor | None:
        """Digest, media type and size of what ``ref`` names; None when it is not there."""
        ...

    def get_manifest(self, ref: Reference) -> Manifest:
        """The manifest's exact bytes, checked against the digest asked for; NotFound when it
        is not there."""
        ...

    def find_manifest(self, ref: Reference) -> Manifest | None:
        """Like :meth:`get_manifest`, None when it is not there: for a tag, one look answers
        both "is it there" and "what is it"."""
        ...

    def known_manifest(self, ref: Reference) -> Manifest | None:
        """The manifest ``ref`` (by digest) names where reading it is free (a file of a
        layout); None, without asking, where a read is a request (a registry)."""
        ...

    def put_manifest(
        self,
        repository: Repository,
        reference: str,
        manifest: Manifest,
        *,
        replacing: str | None = None,
    ) -> None:
        """Store the manifest's exact bytes under ``reference`` (a tag, or its digest).

        A tag is written only through :func:`imagesync.stores.tags.write_tag`, which looks
        at it right before: written where it is absent, holds this manifest already, or holds
        ``replacing`` (the digest the caller looked at and means to write over). A store that
        can check that again in one step with the write (a layout, under its lock) raises
        TagTaken otherwise; one that cannot (a registry has no conditional write) goes by the
        look.
        """
        ...

    # -- tags and referrers --------------------------------------------------------------

    def list_tags(self, repository: Repository, prefixes: tuple[str, ...] = ("",)) -> list[str]:
        """The tags of ``repository`` that start with one of ``prefixes``; empty when the
        repository is not there."""
        ...

    def referrers(self, repository: Repository, digest: str) -> list[Descriptor] | None:
        """The manifests whose ``subject`` is ``digest``; None when the store cannot tell (a
        registry without the referrers API), and the tag schema is to be read instead."""
        ...

    # -- blobs ---------------------------------------------------------------------------

    def has_blob(self, repository: Repository, blob: Descriptor) -> bool:
        """Whether ``repository`` holds ``blob``, whole: what a copy can skip. A layout checks
        its file (the size first, then, once per run, that its bytes hash to its name); a
        registry answers for what it stored (it checked the digest when the blob came in)."""
        ...

    def get_blob(self, repository: Repository, digest: str) -> bytes:
        """A small blob (an image config), read whole and checked against its digest."""
        ...

    def read_blob(
        self, repository: Repository, blob: Descriptor, start: ReadFrom | None = None
    ) -> BlobStream:
        """The blob's bytes as they are read, never held whole; each chunk is handed over
        only after it is checked, and the last only when the blob hashes to its digest.
        ``start``: from that offset on (the hash of the bytes before it given), where the
        store can seek (a ``Range`` read, a file), else read from the start and the bytes
        before the offset hashed and passed over. A read that breaks goes on from where it
        stopped where the store can."""
        ...

    def put_blob(
        self,
        repository: Repository,
        blob: Descriptor,
        opener: BlobOpener,
        progress: Progress | None = None,
        session: str | None = None,
    ) -> None:
        """Take in the blob whose bytes ``opener`` streams (another store's
        :meth:`read_blob`), storing it only once every byte has arrived and checked.
        ``session``: an upload a refused :meth:`mount_blob` opened. Raises TransferBroken
        when the bytes stopped midway, DigestMismatch when they were not the blob."""
        ...

    def mount_blob(self, repository: Repository, digest: str, holder: Repository) -> MountAnswer:
        """Take a blob from ``holder``, another repository of this store, without its bytes
        crossing the wire (a registry's cross-repository mount, a link in a layout tree).
        Which ``holder`` to ask is the run's knowledge (:meth:`RunContext.holder`,
        :meth:`RunContext.can_mount`); a store that cannot take it from there answers
        ``mounted=False``."""
        ...


@dataclass(frozen=True)
class Stores:
    """The two sides of a run: where sources are read, and the target; and what the run
    learns beside them (:class:`RunContext`)."""

    sources: Store
    target: Store
    run: RunContext
