"""Large blobs go up in chunks, and a chunk that breaks goes on from the registry's offset
(design §17; OCI distribution-spec, "Resuming an upload").

A blob of at least :func:`chunked_from` bytes is sent as ``PATCH`` requests with
``Content-Range``, each chunk at most :func:`chunk_bytes` (and the registry's
``max_chunk_bytes``), the last one in the closing ``PUT ?digest=`` (an empty closing ``PUT``
fails on ECR). A chunk is held once, in its buffer, and sent from it as a view while the next
one is read; the digest is checked by the one stream the chunks are cut from.

When a request breaks (a reset, a 5xx), ``GET`` on the session says how far the registry got
(``Range: 0-M``); the chunk goes on from byte M+1, from the buffer. What the registry says is
never trusted past the bytes sent (ECR's ``Range`` is stale, aws/containers-roadmap#2831). A
registry that refuses a chunk (``416``, GHCR over its limit; ``400``/``404``) or forgets the
session (ACR's ``404 BLOB_UPLOAD_INVALID``) raises :class:`ChunksRefused`: the caller sends
the blob monolithic, in a fresh session.

The session and the bytes sent are kept in the :class:`UploadJournal`, so that a run killed
midway and started again asks the session for its offset and sends only the rest.
"""

from __future__ import annotations

import gc
import logging
import os
import re
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from urllib.parse import urlencode, urlsplit, urlunsplit

from imagesync.content.manifest import Descriptor
from imagesync.errors import RegistryError
from imagesync.reference import Repository
from imagesync.retry import is_retriable_status
from imagesync.stores.registry.answers import Answer, raise_for_status, registry_message
from imagesync.stores.registry.core import Core
from imagesync.stores.registry.journal import Saved, UploadJournal
from imagesync.stores.registry.retrying import Unreachable
from imagesync.stores.registry.transport import push_scope
from imagesync.stores.registry.wire import Call
from imagesync.stores.store import BlobOpener, Progress, ReadFrom, TransferBroken, resumed_at

log = logging.getLogger("imagesync.stores.registry.client")

CHUNKED_FROM_ENV = "IMAGESYNC_CHUNK_THRESHOLD"
CHUNK_BYTES_ENV = "IMAGESYNC_CHUNK_BYTES"
# Below this, a blob goes up in one streamed PUT, as it always did: a break costs little.
CHUNKED_FROM = 64 * 1024 * 1024
CHUNK_BYTES = 16 * 1024 * 1024
# Breaks in a row that moved no byte further, that are resumed here: a chunk the registry got
# nothing of (a proxy that buffers requests was cut) is sent again from the buffer, after a
# pause that grows; one more such break is the caller's, who retries within --retries and its
# backoff, resuming from the kept session (and reading the source again from its start, to
# check the digest across the whole blob: the reason this is tried here first).
MAX_FRUITLESS = 3
_RANGE = re.compile(r"(?:bytes=)?0-(-?\d+)")
_REFUSALS = (400, 404, 405, 413, 416)


def chunked_from() -> int:
    """The size from which blobs go up in chunks (``IMAGESYNC_CHUNK_THRESHOLD``, bytes)."""
    return _setting(CHUNKED_FROM_ENV, CHUNKED_FROM)


def chunk_bytes(limit: int | None) -> int:
    """A chunk's size: ``IMAGESYNC_CHUNK_BYTES`` or 16 MiB, within the registry's ``limit``."""
    size = _setting(CHUNK_BYTES_ENV, CHUNK_BYTES)
    return min(size, limit) if limit else size


def _setting(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    return int(text) if text.isdigit() and int(text) > 0 else default


class ChunksRefused(RegistryError):
    """The registry refused a chunk or lost the upload session: send the blob whole."""


class ChunkedUpload:
    """One blob's chunked upload into ``target``; :meth:`run` sends it."""

    def __init__(
        self,
        core: Core,
        target: Repository,
        blob: Descriptor,
        progress: Progress | None,
        journal: UploadJournal,
        chunk: int,
    ) -> None:
        self._core = core
        self._target = target
        self._blob = blob
        self._progress = progress
        self._journal = journal
        self._chunk = chunk
        self.location = ""
        # Bytes the registry has (acknowledged, or said after a break and trusted).
        self.offset = 0
        # Bytes told to progress: taken back if the blob goes up whole instead.
        self.counted = 0

    def run(self, opener: BlobOpener, session: str | None, start: Callable[[], str]) -> None:
        """Send the blob: into the session the journal kept when the registry still has it
        (from its offset on), else into ``session`` or a new one (``start`` opens it).

        A chunk is cut from the stream into a buffer (a blob's pieces are at most 1 MiB, so a
        buffer holds at most a chunk and a piece) and sent from it as a view."""
        self._resume_saved()
        if not self.location:
            self.location = session or start()
        if self.offset:
            resumed_at(self._progress, self.offset)
        buffer = bytearray()
        # A chunk goes up while the next one comes down: read, then send, one after the other,
        # would leave each link idle half the time. One send at a time, in order, so a
        # break is resumed as before; two chunks are held at most, the one going up and the
        # one filling.
        with ThreadPoolExecutor(1, "chunk-upload") as sender:
            sending: Future[None] | None = None
            with opener(ReadFrom(self.offset) if self.offset else None) as pieces:
                for piece in pieces:
                    buffer += piece
                    self._count(len(piece))
                    while len(buffer) > self._chunk:
                        rest = buffer[self._chunk :]
                        if sending is not None:
                            sending.result()
                        chunk = memoryview(buffer)[: self._chunk]
                        sending = sender.submit(self._send, chunk, last=False)
                        buffer = rest
            if sending is not None:
                sending.result()
        self._send(memoryview(buffer), last=True)
        self._journal.drop(self._target, self._blob.digest)

    def _count(self, count: int) -> None:
        self.counted += count
        if self._progress is not None:
            self._progress(count)

    def _resume_saved(self) -> None:
        saved = self._journal.get(self._target, self._blob.digest)
        if saved is None or not self._core.transport.on_registry(
            self._target.endpoint, saved.location
        ):
            return
        self.location = saved.location
        try:
            got = self._status()
        except RegistryError as error:
            log.debug("the kept upload of %s cannot be asked: %s", self._blob.digest, error)
            got = None
        if got is None:
            self._journal.drop(self._target, self._blob.digest)
            self.location = ""
            return
        self.offset = min(got, saved.sent, self._blob.size)
        log.debug("upload of %s goes on at %d", self._blob.digest, self.offset)

    def _send(self, data: memoryview, *, last: bool) -> None:
        """Send ``data`` (the blob's bytes from :attr:`offset` on), going on where it breaks."""
        fruitless = 0
        end = self.offset + len(data)
        while True:
            self._journal.put(self._target, self._blob.digest, Saved(self.location, end))
            broken = self._request(data, last=last)
            if broken is None:
                self.offset = end
                if not last:  # the session's new location, at once: a kill may come next
                    self._journal.put(self._target, self._blob.digest, Saved(self.location, end))
                return
            # A broken request's traceback may hold an earlier chunk in a reference cycle:
            # collected now, so that memory stays at about one chunk (breaks are rare).
            gc.collect()
            try:
                got = self._status()
            except RegistryError as error:
                raise TransferBroken(
                    f"{self._what()} broke off: {broken}; {error.message}"
                ) from None
            if got is None and last and self._landed():
                return
            if got is None or got < self.offset:
                raise ChunksRefused(f"{self._what()}: the registry lost the upload session")
            trusted = min(got, end)
            if trusted == end and not last:
                self.offset = end
                return
            if trusted > self.offset:
                fruitless = 0
                data = data[trusted - self.offset :]
                self.offset = trusted
            else:
                fruitless += 1
            if fruitless > MAX_FRUITLESS:
                raise TransferBroken(f"{self._what()} broke off at {self.offset}: {broken}")
            resumed_at(self._progress, self.offset)
            self._pause(fruitless)

    def _request(self, data: memoryview, *, last: bool) -> str | None:
        """One PATCH (or the closing PUT) of ``data``; None when it was taken, else why not."""
        headers = {"Content-Type": "application/octet-stream"}
        if len(data):
            headers["Content-Range"] = f"{self.offset}-{self.offset + len(data) - 1}"
        path = with_digest(self.location, self._blob.digest) if last else self.location
        scopes = frozenset({push_scope(self._target.path)})
        method = "PUT" if last else "PATCH"
        call = Call(method, self._target.endpoint, path, scopes, headers=headers, data=data)
        try:
            answer = self._core.transport.request(call, retry=False)
        except Unreachable as error:
            return error.message
        if answer.status_code in (201, 202, 204):
            if not last:
                self.location = self._core.location(self._target, answer)
            return None
        detail, code = registry_message(answer)
        if answer.status_code in _REFUSALS:
            raise ChunksRefused(f"{self._what()}: {answer.status_code} {code} {detail}".strip())
        if not is_retriable_status(answer.status_code):
            raise_for_status(answer, self._what())
        return f"{answer.status_code} {detail}".strip()

    def _pause(self, fruitless: int) -> None:
        """Wait a little before a chunk goes again after a break that moved nothing; a stop
        ends the wait (and the upload) at once."""
        if fruitless > 1 and self._core.transport.stopping.wait(0.5 * (fruitless - 1)):
            raise TransferBroken(f"{self._what()} stopped")

    def _status(self) -> int | None:
        """How many bytes the session holds (``GET``, ``Range: 0-M``); None when it is gone."""
        call = Call(
            "GET", self._target.endpoint, self.location, frozenset({push_scope(self._target.path)})
        )
        answer = self._core.transport.request(call)
        if answer.status_code in (404, 410):
            return None
        raise_for_status(answer, f"status of the {self._what()}")
        if answer.headers.get("Location"):
            self.location = self._core.location(self._target, answer)
        return _held(answer)

    def _landed(self) -> bool:
        """Whether the blob is in the target (a closing PUT whose answer was lost)."""
        path = f"/v2/{self._target.path}/blobs/{self._blob.digest}"
        scopes = frozenset({push_scope(self._target.path)})
        answer = self._core.transport.request(Call("HEAD", self._target.endpoint, path, scopes))
        return answer.status_code == 200

    def _what(self) -> str:
        return f"upload of blob {self._blob.digest} to {self._target}"


def _held(answer: Answer) -> int:
    found = _RANGE.fullmatch((answer.headers.get("Range") or "").strip())
    return int(found.group(1)) + 1 if found else 0


def with_digest(location: str, digest: str) -> str:
    """An upload location with the ``digest`` query that completes the upload."""
    parts = urlsplit(location)
    query = f"{parts.query}&" if parts.query else ""
    query += urlencode({"digest": digest})
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))
