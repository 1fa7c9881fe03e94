"""The applier: executes a saved plan, and nothing else.

It reads from the sources and writes to the target of its :class:`Stores`, whatever kind each
is (registries, layout trees). Per image (design.md §5): its blobs (:mod:`.blobs`, each once
per run, design.md §12), its manifests and its tag last, then a read-back (:mod:`.image`),
then what is attached to it (:mod:`.attached`). This module runs a plan through them: images
side by side, a stop (Ctrl-C, SIGTERM) that lets running images stop before their tag, the
early start of a create's blobs while the plan is still being made, and the listener that
hears of each image.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from imagesync.apply.attached import AttachedWriter
from imagesync.apply.blobs import BlobScheduler
from imagesync.apply.image import Done, ImageCopier
from imagesync.apply.report import ApplyListener, ApplyReport, ImageResult, Outcome
from imagesync.defaults import DEFAULT_PARALLELISM
from imagesync.errors import ImagesyncError
from imagesync.plan.document import Action, Change, Plan
from imagesync.plan.mounts import MountSources
from imagesync.retry import RetryPolicy
from imagesync.stores.graph import fetch_image

if TYPE_CHECKING:
    from imagesync.signing import SigningKey
    from imagesync.stores.store import Stores

log = logging.getLogger("imagesync.apply")

# How long the main thread waits on the workers before it looks for a signal again.
SIGNAL_SLICE = 0.2


@dataclass(frozen=True)
class ApplyOptions:
    parallelism: int = DEFAULT_PARALLELISM
    listener: ApplyListener = field(default_factory=ApplyListener)
    # The plan was made moments ago by this process (sync, apply -i): what it saw of the
    # target needs no second look before the work starts. The look right before a tag is
    # written, which keeps tags immutable, is never skipped.
    fresh_plan: bool = False
    # A blob transfer that broke midway is started again, as a whole, this many times over.
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # Adds the plan's ``signing`` sub-changes (--sign-key): the key the plan was made for.
    signing_key: SigningKey | None = field(default=None, repr=False)


def apply_plan(
    plan: Plan,
    stores: Stores,
    options: ApplyOptions | None = None,
    cancel: threading.Event | None = None,
) -> ApplyReport:
    """Apply every change, reading from the sources and writing to the target of ``stores``;
    on KeyboardInterrupt (or ``cancel`` set) stop starting new work, let running images stop
    before their tag, and report what was and was not done."""
    with Applier(stores, options, cancel) as applier:
        return applier.apply(plan)


def not_started(change: Change) -> ImageResult:
    return ImageResult(
        change.entry,
        change.source,
        change.target,
        change.digest,
        Outcome.FAILED,
        "not started: apply was interrupted",
    )


class Applier:
    """Executes plans; a context manager (its blob workers stop when it closes).

    When plan and apply run in one go (sync, apply -i), plan hands each decision to
    :meth:`start` as it makes it: a create's blobs begin to copy at once, so the link carries
    them while the other entries are still being planned. Blobs only: manifests and tags are
    written by :meth:`apply`, once the whole plan is made, tags last as always.
    """

    def __init__(
        self,
        stores: Stores,
        options: ApplyOptions | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        self.sources = stores.sources
        self.target = stores.target
        self.run = stores.run
        self.options = options or ApplyOptions()
        self.cancel = cancel or threading.Event()
        self.listener = self.options.listener
        parallelism = self.options.parallelism
        self._mounts = MountSources(stores.run, stores.target)
        self._blobs = BlobScheduler(
            stores, self._mounts, self.options.retry, self.cancel, parallelism
        )
        self._images = ImageCopier(
            stores, self._blobs, self.cancel, parallelism, fresh_plan=self.options.fresh_plan
        )
        self._attached = AttachedWriter(stores, self._images, self.cancel, self.options.signing_key)
        self._lock = threading.Lock()
        # Bytes copied for an image before apply reached it (started early), by entry: the
        # progress display hears of them when the image starts.
        self._early: dict[int, int] = {}
        self._started: set[int] = set()
        # Target repositories the plan creates (ECR) that could not be created: why, by name.
        self._uncreated: dict[str, str] = {}

    def __enter__(self) -> Applier:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is not None:
            self.stop()
        self._blobs.close()
        self._images.close()

    def stop(self) -> None:
        """Start nothing new; waits before retries end now rather than in up to 60 s."""
        self.cancel.set()
        self.run.stop()

    def start(self, change: Change) -> None:
        """Begin copying the blobs of a create now (plan has just decided it)."""
        self._mounts.add(change)
        if change.action is not Action.CREATE or self.cancel.is_set():
            return
        if self.run.missing_repository(change.target_reference.repository) is not None:
            return  # created first, by apply; nothing is written to it before
        try:
            source = change.pinned_source
            image = fetch_image(self.sources, source)  # the manifests plan has just read
        except ImagesyncError:
            return  # apply meets it again, and reports it
        target = change.target_reference.repository
        self._blobs.start(
            image.blobs, source.repository, target, lambda n: self._bytes(change, n), change.target
        )

    def apply(self, plan: Plan, listener: ApplyListener | None = None) -> ApplyReport:
        """Apply every change of ``plan``, reporting to ``listener``; see :func:`apply_plan`."""
        if listener is not None:
            self.listener = listener
        for change in plan.changes:
            self._mounts.add(change)
        self._create_repositories(plan)
        results: dict[int, ImageResult] = {}
        with ThreadPoolExecutor(max_workers=max(1, self.options.parallelism)) as pool:
            futures = {pool.submit(self.apply_change, c): i for i, c in enumerate(plan.changes)}
            try:
                # Waits in short slices: the kernel may hand SIGTERM to a worker thread, and
                # its Python handler then runs only when the main thread next runs bytecode. A
                # wait without a timeout would hold it off until an image finished, its tag
                # written.
                pending = set(futures)
                while pending:
                    done, pending = wait(pending, timeout=SIGNAL_SLICE, return_when=FIRST_COMPLETED)
                    for future in done:
                        results[futures[future]] = future.result()
            except KeyboardInterrupt:
                self.stop()
                for future in futures:
                    future.cancel()
                wait(futures)
                for future, index in futures.items():
                    if not future.cancelled():
                        results[index] = future.result()
        ordered = tuple(results.get(i) or not_started(c) for i, c in enumerate(plan.changes))
        return ApplyReport(
            ordered,
            interrupted=self.cancel.is_set(),
            target_prefix=plan.target_prefix,
            images_file=plan.images_file,
            shard=plan.shard,
        )

    def _create_repositories(self, plan: Plan) -> None:
        """Create the target repositories the plan lists (ECR), before any write; one that
        cannot be created fails the images that land in it, not the others."""
        for repository in plan.repositories:
            if self.cancel.is_set():
                return
            try:
                created = self.run.create_repository(repository.name)
            except ImagesyncError as error:
                self._uncreated[str(repository.name)] = str(error)
                continue
            log.info(
                "repository %s %s", repository.name, "created" if created else "existed already"
            )

    def apply_change(self, change: Change) -> ImageResult:
        if self.cancel.is_set():
            return not_started(change)
        base = ImageResult(
            change.entry, change.source, change.target, change.digest, Outcome.FAILED, ""
        )
        uncreated = self._uncreated.get(str(change.target_reference.repository))
        if uncreated is not None and change.action is not Action.ERROR:
            result = _with(base, Done(Outcome.FAILED, f"not applied: {uncreated}"))
            self.listener.image_finished(result)
            return result
        if change.action is Action.ERROR:
            result = _with(base, Done(Outcome.FAILED, f"not applied: {change.reason}"))
        elif change.action is Action.CONFLICT:
            result = replace(_with(base, Done(Outcome.CONFLICT, change.reason)), fix=change.fix)
        else:
            result = self._apply_image(change, base)
        if result.outcome in (Outcome.CREATED, Outcome.SKIPPED) and change.subchanges:
            created = result.outcome is Outcome.CREATED
            result = replace(result, subresults=self._attached.apply(change, created))
        self.listener.image_finished(result)
        return result

    def _apply_image(self, change: Change, base: ImageResult) -> ImageResult:
        try:
            if change.action is Action.SKIP:
                if self.options.fresh_plan:
                    return _with(base, Done(Outcome.SKIPPED, "already in the target"))
                return self._recheck_skip(change, base)
            return _with(base, self._copy_change(change))
        except ImagesyncError as error:
            return _with(base, Done(Outcome.FAILED, str(error)))

    def _recheck_skip(self, change: Change, base: ImageResult) -> ImageResult:
        target = change.target_reference
        existing = self.target.head_manifest(target)
        if existing is None:
            # It was there at plan time; copy it again rather than report a false success.
            done = self._copy_change(change)
            return _with(base, replace(done, message=f"was gone from the target: {done.message}"))
        if existing.digest != change.digest:
            return _with(
                base,
                Done(
                    Outcome.CONFLICT,
                    f"target tag {target} now has digest {existing.digest}, planned "
                    f"{change.digest}",
                ),
            )
        return _with(base, Done(Outcome.SKIPPED, "already in the target"))

    def _copy_change(self, change: Change) -> Done:
        """Copy the image of ``change``, its bytes counted for it."""
        self._image_started(change)
        return self._images.copy(
            change.pinned_source,
            change.target_reference,
            _ChangeBytes(self, change),
            change.target,
        )

    def _image_started(self, change: Change) -> None:
        self.listener.image_started(change)
        with self._lock:
            self._started.add(change.entry)
            early = self._early.pop(change.entry, 0)
        if early:
            self.listener.bytes_copied(change, early)

    def _bytes(self, change: Change, count: int) -> None:
        with self._lock:
            if change.entry not in self._started:
                self._early[change.entry] = self._early.get(change.entry, 0) + count
                return
        self.listener.bytes_copied(change, count)


class _ChangeBytes:
    """The bytes of one change's blobs as they pass, and their resumes, for the listener."""

    def __init__(self, applier: Applier, change: Change) -> None:
        self._applier = applier
        self._change = change

    def __call__(self, count: int) -> None:
        self._applier._bytes(self._change, count)

    def resumed(self, offset: int) -> None:
        self._applier.listener.bytes_resumed(self._change, offset)


def _with(base: ImageResult, done: Done) -> ImageResult:
    return replace(base, outcome=done.outcome, message=done.message, transfer=done.transfer)
