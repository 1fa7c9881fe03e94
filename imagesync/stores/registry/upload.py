"""Uploads: a blob streamed from another store into an upload session of the target.

Nothing is held in memory beyond one chunk, and nothing touches disk. The upload session is
opened while the download starts, and the registry's stream slot is given back once the last
byte is sent (the wait for the registry's answer uses no bandwidth).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial

from imagesync.content.manifest import Descriptor
from imagesync.reference import Repository
from imagesync.retry import is_retriable_status
from imagesync.stores.registry.answers import raise_for_status, registry_message
from imagesync.stores.registry.blob import Blobs
from imagesync.stores.registry.chunked import (
    ChunkedUpload,
    ChunksRefused,
    chunk_bytes,
    chunked_from,
    with_digest,
)
from imagesync.stores.registry.core import Core
from imagesync.stores.registry.journal import UploadJournal
from imagesync.stores.registry.retrying import Unreachable
from imagesync.stores.registry.transport import push_scope
from imagesync.stores.registry.wire import Call
from imagesync.stores.store import BlobOpener, Progress, TransferBroken

log = logging.getLogger("imagesync.stores.registry.client")

# Threads that open upload sessions while downloads start (put_blob): about one per blob stream
# of a registry (6 by default); one more session waits for a thread a request long.
SESSION_OPENERS = 8


class Uploads:
    """Blob uploads over a :class:`Core`; what lands is told to ``blobs``. Thread-safe."""

    def __init__(self, core: Core, blobs: Blobs) -> None:
        self._core = core
        self._blobs = blobs
        # Kept, not one started per blob: starting a thread waits for it to run, and on a busy
        # interpreter that wait is on every copy's path.
        self._session_openers = ThreadPoolExecutor(SESSION_OPENERS, "upload-session")
        self.journal = UploadJournal()
        self._lock = threading.Lock()
        # Registries that refused a chunk or lost a session this run: whole uploads there.
        self._no_chunks: set[str] = set()

    def put(
        self,
        target: Repository,
        blob: Descriptor,
        opener: BlobOpener,
        progress: Progress | None,
        session: str | None,
    ) -> None:
        """Put one blob into ``target`` from ``opener`` (another store's read_blob): in
        chunks that resume (chunked.py) from :func:`chunked_from` bytes on where the registry
        takes chunks, else (and where it refused them) in one streamed PUT."""
        if blob.size >= chunked_from() and self._takes_chunks(target):
            try:
                self._put_chunked(target, blob, opener, progress, session)
                return
            except ChunksRefused as refused:
                log.info("%s; sending it whole", refused.message)
                with self._lock:
                    self._no_chunks.add(target.endpoint)
                session = None
        self._put_whole(target, blob, opener, progress, session)

    def _takes_chunks(self, target: Repository) -> bool:
        with self._lock:
            if target.endpoint in self._no_chunks:
                return False
        return self._core.transport.config.capabilities(target.registry).chunked_uploads

    def _put_chunked(
        self,
        target: Repository,
        blob: Descriptor,
        opener: BlobOpener,
        progress: Progress | None,
        session: str | None,
    ) -> None:
        limit = self._core.transport.config.capabilities(target.registry).max_chunk_bytes
        upload = ChunkedUpload(self._core, target, blob, progress, self.journal, chunk_bytes(limit))
        slot = _Slot(self._core.transport.streams(target.endpoint))
        try:
            upload.run(opener, session, partial(self.start, target))
        except ChunksRefused:
            self.journal.drop(target, blob.digest)
            if progress is not None and upload.counted:
                progress(-upload.counted)  # sent again, whole
            raise
        finally:
            slot.release()
        self._blobs.arrived(target, blob.digest, blob.size)

    def _put_whole(
        self,
        target: Repository,
        blob: Descriptor,
        opener: BlobOpener,
        progress: Progress | None,
        session: str | None,
    ) -> None:
        """Stream one blob into ``target`` from ``opener`` in one PUT.

        The stream checks the bytes and stops before its last one when they are not the blob,
        so the target never stores a wrong blob. ``session`` is an upload location the target
        opened already (a refused mount's).

        The upload session is a request the transport retries. What breaks once bytes flow
        (a reset or truncated download, an upload that fails) raises TransferBroken, and a
        body that does not hash to its digest DigestMismatch: the caller may start again.
        """
        streams = self._core.transport.streams(target.endpoint)
        opening: Future[str] | None = None
        if session is not None:
            slot = _Slot(streams)
        elif streams.acquire(blocking=False):
            # A stream is free, so nothing is waited for: the upload session opens while the
            # download starts, one round trip before the first byte instead of two.
            slot = _Slot(streams, taken=True)
            opening = self._session_openers.submit(self.start, target)
        else:
            # The upload session is opened before the wait for a stream: a small request, it
            # goes out while other blobs stream, and this one's stream starts with its download.
            session = self.start(target)
            slot = _Slot(streams)
        # The stream is given back once the last byte is sent: the wait for the registry's
        # answer uses no bandwidth, and the next blob's download can begin meanwhile.
        try:
            with opener() as chunks:
                if opening is not None:
                    session = opening.result()
                assert session is not None
                body = _UploadBody(chunks, blob.size, progress, slot.release)
                self._finish(target, blob, session, body)
        finally:
            slot.release()

    def start(self, target: Repository) -> str:
        """Open an upload session in ``target``; its location."""
        path = f"/v2/{target.path}/blobs/uploads/"
        scopes = frozenset({push_scope(target.path)})
        answer = self._core.transport.request(Call("POST", target.endpoint, path, scopes))
        raise_for_status(answer, f"start upload to {target}")
        return self._core.location(target, answer)

    def _finish(
        self, target: Repository, blob: Descriptor, session: str, body: _UploadBody
    ) -> None:
        what = f"upload of blob {blob.digest} to {target}"
        try:
            answer = self._core.transport.request(
                Call(
                    "PUT",
                    target.endpoint,
                    with_digest(session, blob.digest),
                    frozenset({push_scope(target.path)}),
                    headers={"Content-Type": "application/octet-stream"},
                    data=body,
                ),
                retry=False,
            )
        except Unreachable as error:
            raise TransferBroken(f"{what} broke off: {error.message}") from None
        if is_retriable_status(answer.status_code):
            detail, _ = registry_message(answer)
            raise TransferBroken(
                f"{what} failed: {answer.status_code} {detail}".rstrip(),
                status=answer.status_code,
                retry_after=answer.headers.get("Retry-After"),
            )
        raise_for_status(answer, what)
        self._blobs.arrived(target, blob.digest, blob.size)


class _Slot:
    """One of a semaphore's slots, taken now (unless ``taken`` already) and given back once,
    whoever asks first."""

    def __init__(self, semaphore: threading.BoundedSemaphore, *, taken: bool = False) -> None:
        self._semaphore = semaphore
        self._held = True
        if not taken:
            semaphore.acquire()

    def release(self) -> None:
        if self._held:
            self._held = False
            self._semaphore.release()


class _UploadBody:
    """A request body that sends a blob's chunks as they come from its stream.

    It has a length, so requests sends a Content-Length; it is iterable (not file-like), so
    urllib3 sends each chunk as it arrives rather than copying it out in 16 KiB reads. When
    urllib3 asks for more after the last chunk, every byte is with the socket: ``sent`` is
    told.
    """

    def __init__(
        self,
        chunks: Iterator[bytes],
        size: int,
        progress: Progress | None,
        sent: Callable[[], None],
    ) -> None:
        self._chunks = chunks
        self._size = size
        self._progress = progress
        self._sent = sent

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            if self._progress:
                self._progress(len(chunk))
            yield chunk
        self._sent()
