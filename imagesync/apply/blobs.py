"""Putting an image's blobs into the target, each blob once per run (design.md §5, §12).

Per blob and target repository one task, whoever asks first starts it (single flight): the
blob is there already → nothing; another repository of the target has it (or its manifests
list it) → a mount; a copy of it to another repository is in flight → a mount once that copy
is done; else a copy streamed from the sources, checked as it passes, going on from
where it stopped when it broke midway where the stores can (design §17), else started again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from imagesync.apply.cancel import Interrupted, check_cancel
from imagesync.apply.report import Transfer
from imagesync.content.manifest import Descriptor
from imagesync.errors import DigestMismatch, ImagesyncError
from imagesync.reference import Repository
from imagesync.stores.store import BlobStream, ReadFrom, Tally, TransferBroken

if TYPE_CHECKING:
    from imagesync.plan.mounts import MountSources
    from imagesync.retry import RetryPolicy
    from imagesync.stores.store import Stores

log = logging.getLogger("imagesync.apply")

Counter = Callable[[int], None]


@dataclass(frozen=True)
class BlobTask:
    """The task that puts one blob into one target repository, and whether another change
    started it (for this one, the blob was there)."""

    future: Future[Transfer]
    shared: bool


@dataclass(frozen=True)
class _Started:
    """A task in :attr:`BlobScheduler._tasks`: its future, and the change it was started
    for (by target)."""

    future: Future[Transfer]
    owner: str


@dataclass(frozen=True)
class _InFlight:
    """A copy under way in :attr:`BlobScheduler._copies`, and the repository it goes to."""

    future: Future[Transfer]
    target: Repository


@dataclass(frozen=True)
class _Move:
    """One blob to put into ``target``, read from ``source`` if copied; ``progress`` hears of
    its bytes."""

    blob: Descriptor
    source: Repository
    target: Repository
    progress: Counter


class BlobScheduler:
    """Puts blobs into the target on its own pool; a context manager (the pool stops when it
    closes). Image workers wait on its tasks; its tasks never wait (one that needs a copy in
    flight is run again when that copy is done)."""

    def __init__(
        self,
        stores: Stores,
        mounts: MountSources,
        retry: RetryPolicy,
        cancel: threading.Event,
        parallelism: int,
    ) -> None:
        self.sources = stores.sources
        self.target = stores.target
        self.run = stores.run
        self.mounts = mounts
        self.retry = retry
        self.cancel = cancel
        self._pool = ThreadPoolExecutor(max_workers=max(1, parallelism))
        self._lock = threading.Lock()
        # Per (target repository, digest): the one task that puts the blob there.
        self._tasks: dict[tuple[str, str], _Started] = {}
        # Per (target registry or tree, digest): the copy in flight, and where it goes.
        self._copies: dict[tuple[str, str], _InFlight] = {}

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def put_all(
        self,
        blobs: tuple[Descriptor, ...],
        source: Repository,
        target: Repository,
        progress: Counter,
        owner: str,
    ) -> Transfer:
        """Put ``blobs`` into ``target`` for the change whose target is ``owner``, and wait;
        what it took. The first failure is raised once every blob has settled."""
        total = Transfer()
        errors: list[BaseException] = []
        for task in self.start(blobs, source, target, progress, owner):
            try:
                moved = task.future.result()
            except ImagesyncError as error:
                errors.append(error)
            else:
                # Another image of this run moved the blob: for this one it was already there.
                total = total + (Transfer(present=1) if task.shared else moved)
        if errors:
            raise errors[0]
        return total

    def start(
        self,
        blobs: tuple[Descriptor, ...],
        source: Repository,
        target: Repository,
        progress: Counter,
        owner: str,
    ) -> list[BlobTask]:
        """The tasks that put ``blobs`` into ``target``, started now unless they run already."""
        tasks: list[BlobTask] = []
        for blob in blobs:
            key = (str(target), blob.digest)
            with self._lock:
                known = self._tasks.get(key)
                new = known is None
                if known is None:
                    known = self._tasks[key] = _Started(Future(), owner)
            if new:
                move = _Move(blob, source, target, progress)
                self._run(known.future, self._ensure, move, known.future)
            tasks.append(BlobTask(known.future, known.owner != owner))
        return tasks

    def _run(
        self, task: Future[Transfer], step: Callable[..., Transfer | None], *args: object
    ) -> None:
        """Run ``step`` on the pool; what it returns settles ``task`` (None: a later step,
        started when the copy it waits for is done, will)."""

        def job() -> None:
            try:
                result = step(*args)
            except BaseException as error:  # the image waiting on it re-raises it
                task.set_exception(error)
                return
            if result is not None:
                task.set_result(result)

        try:
            self._pool.submit(job)
        except RuntimeError as error:  # the pool is gone: nobody else would settle the task
            task.set_exception(error)

    def _ensure(self, move: _Move, task: Future[Transfer]) -> Transfer | None:
        """Put the blob into its target: nothing if it is there, a mount if another repository
        of the target has it (or is about to), else a copy."""
        check_cancel(self.cancel)
        blob, target = move.blob, move.target
        if self.target.has_blob(target, blob):
            return Transfer(present=1)
        holder = self.mounts.holder(blob.digest, move.source, target)
        if holder is not None:
            return self._mount_or_copy(move, holder)
        key = (target.endpoint, blob.digest)
        with self._lock:
            # Looked at again under the lock: a copy may have finished, or begun, meanwhile.
            holder = self.run.holder(blob.digest, target)
            copying = self._copies.get(key)
            if copying is not None and copying.future.done() and copying.future.exception():
                copying = None  # it failed: this one copies
            if holder is None and copying is None:
                self._copies[key] = _InFlight(task, target)
        if holder is not None:
            return self._mount_or_copy(move, holder)
        if copying is None:
            return self._copy(move)
        where = copying.target

        def when_copied(_: Future[Transfer]) -> None:
            self._run(task, self._mount_or_copy, move, where)

        copying.future.add_done_callback(when_copied)
        return None

    def _mount_or_copy(self, move: _Move, holder: Repository) -> Transfer:
        check_cancel(self.cancel)
        answer = self.target.mount_blob(move.target, move.blob.digest, holder)
        if answer.mounted:
            self.run.put(move.target, move.blob.digest)
            return Transfer(mounted=1)
        # Not there after all: the upload session the refusal opened takes the copy.
        return self._copy(move, answer.session)

    def _copy(self, move: _Move, session: str | None = None) -> Transfer:
        blob = move.blob
        attempts = self.retry.attempts
        tally = Tally(move.progress)
        resumed = getattr(move.progress, "resumed", None)
        if callable(resumed):
            tally.heard.append(resumed)

        def opener(start: ReadFrom | None = None) -> BlobStream:
            # The source's reads that break and go on are the blob's resumes too.
            start = replace(start or ReadFrom(), resumed=tally.resumed)
            return self.sources.read_blob(move.source, blob, start)

        for attempt in range(1, attempts + 1):
            try:
                self.target.put_blob(move.target, blob, opener, tally, session)
            except (TransferBroken, DigestMismatch) as error:
                # The retry goes on where the target's store can (a kept upload session, a
                # half-written file), else starts over; in a fresh session either way.
                # Other errors come from requests the transport has retried already.
                tally.failed()
                session = None
                if attempt == attempts:
                    raise
                check_cancel(self.cancel)
                retry_after = error.retry_after if isinstance(error, TransferBroken) else None
                self._pause(attempt, f"copy of {blob.digest}", error, retry_after)
            else:
                self.run.put(move.target, blob.digest)
                resumes = ((blob.digest, tally.resumes, tally.bytes_resumed),)
                return Transfer(
                    copied=1, bytes_copied=blob.size, resumes=resumes if tally.resumes else ()
                )
        raise AssertionError("unreachable")

    def _pause(
        self, attempt: int, what: str, error: ImagesyncError, retry_after: str | None
    ) -> None:
        """Wait before starting a broken transfer again; a stop ends the wait at once."""
        delay = self.retry.delay(attempt, retry_after)
        log.debug("retry %d of %s after %s: waiting %.1f s", attempt, what, error, delay)
        if self.cancel.wait(delay):
            raise Interrupted(f"stopped while waiting to retry the {what}")
