"""The applier: executes a saved plan, and nothing else.

It reads from the sources and writes to the target of its :class:`Stores`, whatever kind each
is (registries, layout trees). Order per image (design.md §5): blobs (already there → nothing;
in another repository of the target → mount; else a copy streamed from the sources into the
target, checked as it passes), then child manifests by digest, then — after checking the
target tag once more — the tagged manifest, and finally a read-back of the digest. The tag is
the last write, so an interrupted apply never leaves a tag on an incomplete image. A blob
crosses the wire once per run (design.md §12): the repositories that need it while its copy is
in flight mount it once the copy is done.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING

from imagesync.apply.report import (
    ApplyListener,
    ApplyReport,
    ImageResult,
    Outcome,
    SubResult,
    Transfer,
)
from imagesync.content import mediatypes
from imagesync.content.image import fetch_image
from imagesync.content.manifest import Descriptor, Manifest
from imagesync.content.referrers import (
    LISTS_REFERRERS,
    MADE_IN_TARGET,
    REFERRER,
    REFERRERS_INDEX,
    SIGNATURE,
    SIGNED_SINCE,
    SIGNING,
    NotAttached,
    attached_source,
    attached_target,
    check_attached,
    keeps_layers,
    merged_referrers_index,
    referrer_descriptor,
    referrers_index_problem,
)
from imagesync.defaults import DEFAULT_PARALLELISM
from imagesync.errors import DigestMismatch, ImagesyncError
from imagesync.plan.document import Action, Change, Plan, SubChange
from imagesync.plan.mounts import MountSources
from imagesync.reference import Reference, Repository
from imagesync.retry import RetryPolicy
from imagesync.stores.store import BlobOpener, Store, Stores, TagTaken, TransferBroken
from imagesync.stores.stream import verified

if TYPE_CHECKING:
    from imagesync.signing import SigningKey

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


class Interrupted(ImagesyncError):
    """Apply was asked to stop (Ctrl-C, SIGTERM) before this image's tag was written."""


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
        self.options = options or ApplyOptions()
        self.cancel = cancel or threading.Event()
        self.listener = self.options.listener
        # Blobs get their own pool: image workers wait on blob tasks, blob tasks never wait
        # (one that needs a copy in flight asks to be run again when it is done).
        self._blob_pool = ThreadPoolExecutor(max_workers=max(1, self.options.parallelism))
        # Manifest writes of an image, side by side; they never wait on anything either.
        self._manifest_pool = ThreadPoolExecutor(max_workers=max(1, self.options.parallelism))
        self._lock = threading.Lock()
        # Per (target repository, digest): the one task that puts the blob there, and the
        # target of the change it was started for.
        self._blob_tasks: dict[tuple[str, str], tuple[Future[Transfer], str]] = {}
        # Per (target registry or tree, digest): the copy in flight, and where it goes.
        self._copies: dict[tuple[str, str], tuple[Future[Transfer], Repository]] = {}
        self._mounts = MountSources(self.target)
        # Bytes copied for an image before apply reached it (started early), by entry: the
        # progress display hears of them when the image starts.
        self._early: dict[int, int] = {}
        self._started: set[int] = set()
        # Per (target repository, digest), the manifests this run has written: a referrer graph
        # may hold one twice (an index whose child is also its subject), and it is put once.
        self._written: set[tuple[str, str]] = set()

    def __enter__(self) -> Applier:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is not None:
            self.stop()
        self._blob_pool.shutdown(wait=True, cancel_futures=True)
        self._manifest_pool.shutdown(wait=True, cancel_futures=True)

    def stop(self) -> None:
        """Start nothing new; waits before retries end now rather than in up to 60 s."""
        self.cancel.set()
        self.sources.stop()
        self.target.stop()

    def start(self, change: Change) -> None:
        """Begin copying the blobs of a create now (plan has just decided it)."""
        self._mounts.add(change)
        if change.action is not Action.CREATE or self.cancel.is_set():
            return
        try:
            source = change.pinned_source
            image = fetch_image(self.sources, source)  # the manifests plan has just read
        except ImagesyncError:
            return  # apply meets it again, and reports it
        target = change.target_reference.repository
        self._blob_tasks_for(
            image.blobs, source.repository, target, lambda n: self._bytes(change, n), change.target
        )

    def apply(self, plan: Plan, listener: ApplyListener | None = None) -> ApplyReport:
        """Apply every change of ``plan``, reporting to ``listener``; see :func:`apply_plan`."""
        if listener is not None:
            self.listener = listener
        for change in plan.changes:
            self._mounts.add(change)
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

    def apply_change(self, change: Change) -> ImageResult:
        if self.cancel.is_set():
            return not_started(change)
        base = ImageResult(
            change.entry, change.source, change.target, change.digest, Outcome.FAILED, ""
        )
        if change.action is Action.ERROR:
            result = _with(base, Outcome.FAILED, f"not applied: {change.reason}")
        elif change.action is Action.CONFLICT:
            result = replace(_with(base, Outcome.CONFLICT, change.reason), fix=change.fix)
        else:
            result = self._apply_image(change, base)
        if result.outcome in (Outcome.CREATED, Outcome.SKIPPED) and change.subchanges:
            graph = _Graph(self.sources, self.target, change, result.outcome is Outcome.CREATED)
            result = _with_subresults(result, self._apply_subchanges(change, graph))
        self.listener.image_finished(result)
        return result

    def _apply_image(self, change: Change, base: ImageResult) -> ImageResult:
        try:
            if change.action is Action.SKIP:
                if self.options.fresh_plan:
                    return _with(base, Outcome.SKIPPED, "already in the target")
                return self._recheck_skip(change, base)
            return _with(base, *self._copy_change(change))
        except ImagesyncError as error:
            return _with(base, Outcome.FAILED, str(error))

    def _recheck_skip(self, change: Change, base: ImageResult) -> ImageResult:
        target = change.target_reference
        existing = self.target.head_manifest(target)
        if existing is None:
            # It was there at plan time; copy it again rather than report a false success.
            outcome, message, transfer = self._copy_change(change)
            return _with(base, outcome, f"was gone from the target: {message}", transfer)
        if existing.digest != change.digest:
            return _with(
                base,
                Outcome.CONFLICT,
                f"target tag {target} now has digest {existing.digest}, planned {change.digest}",
            )
        return _with(base, Outcome.SKIPPED, "already in the target")

    def _copy_change(self, change: Change) -> tuple[Outcome, str, Transfer]:
        """Copy the image of ``change``, its bytes counted for it."""
        self._image_started(change)
        return self.copy(
            change.pinned_source,
            change.target_reference,
            lambda n: self._bytes(change, n),
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

    def copy(
        self,
        source: Reference,
        target: Reference,
        progress: Callable[[int], None],
        owner: str,
        root: Manifest | None = None,
    ) -> tuple[Outcome, str, Transfer]:
        """Copy the image at ``source`` (by digest; ``root`` its manifest, if read already) to
        ``target``, tag or digest last, for the change whose target is ``owner``."""
        assert source.digest is not None
        if target.tag is not None and not self.options.fresh_plan:
            # A tag written since plan spares the copy of its blobs.
            early = self._tag_state(target, source.digest)
            if early is not None:
                return (*early, Transfer())
        image = fetch_image(self.sources, source, root)
        if not self.options.fresh_plan:
            self.target.probe_repository(target.repository)
        transfer = self._copy_blobs(
            image.blobs, source.repository, target.repository, progress, owner
        )
        self._check_cancel()
        # By digest, a PUT cannot overwrite anything else: no HEAD needed first. The manifests
        # of the platforms at once (each a round trip), then any index over them, in order.
        leaves = [m for m in image.manifests if not m.children]
        nested = [m for m in image.manifests if m.children]
        # Tags are immutable: the tag is looked at once more right before the only write that
        # could overwrite. With nothing to write in between but the platforms' manifests,
        # that look goes out with them: one round trip less per image, the same guarantee.
        last_look = (
            self._manifest_pool.submit(self._tag_state, target, source.digest)
            if target.tag is not None and not nested
            else None
        )
        writes = [
            self._manifest_pool.submit(self._put_by_digest, target.repository, m) for m in leaves
        ]
        for write in writes:
            write.result()
        for manifest in nested:
            self._check_cancel()
            self._put_by_digest(target.repository, manifest)
        if target.tag is None:
            if not self._put_by_digest(target.repository, image.root):
                return Outcome.SKIPPED, "written by this run already", transfer
            return Outcome.CREATED, "copied", transfer
        self._check_cancel()
        state = last_look.result() if last_look else self._tag_state(target, source.digest)
        if state is not None:
            return (*state, transfer)
        try:
            self.target.put_manifest(target.repository, target.tag, image.root)
        except TagTaken as taken:  # written meanwhile by someone else: left as it is
            return (*_tag_outcome(target, source.digest, taken.found), transfer)
        self._wrote(target.repository, image.root)
        written = self.target.head_manifest(target)
        if written is None or written.digest != source.digest:
            found = written.digest if written else "nothing"
            return Outcome.FAILED, f"after the write, {target} holds {found}", transfer
        return Outcome.CREATED, "copied", transfer

    def _put_by_digest(self, repository: Repository, manifest: Manifest) -> bool:
        """Put ``manifest`` by digest unless this run has written it to ``repository`` already
        (by digest, or by a tag); whether it was written now."""
        with self._lock:
            if (str(repository), manifest.digest) in self._written:
                return False
        self.target.put_manifest(repository, manifest.digest, manifest)
        self._wrote(repository, manifest)
        return True

    def _wrote(self, repository: Repository, manifest: Manifest) -> None:
        with self._lock:
            self._written.add((str(repository), manifest.digest))

    def _copy_blobs(
        self,
        blobs: tuple[Descriptor, ...],
        source: Repository,
        target: Repository,
        progress: Callable[[int], None],
        owner: str,
    ) -> Transfer:
        futures = self._blob_tasks_for(blobs, source, target, progress, owner)
        total = Transfer()
        errors: list[BaseException] = []
        for future, shared in futures:
            try:
                moved = future.result()
            except ImagesyncError as error:
                errors.append(error)
            else:
                # Another image of this run moved the blob: for this one it was already there.
                total = total + (Transfer(present=1) if shared else moved)
        if errors:
            raise errors[0]
        return total

    def _blob_tasks_for(
        self,
        blobs: tuple[Descriptor, ...],
        source: Repository,
        target: Repository,
        progress: Callable[[int], None],
        owner: str,
    ) -> list[tuple[Future[Transfer], bool]]:
        """The tasks that put ``blobs`` into ``target``, started now unless they run already;
        each with whether another change started it (for that one, the blob was there)."""
        tasks: list[tuple[Future[Transfer], bool]] = []
        for blob in blobs:
            key = (str(target), blob.digest)
            with self._lock:
                known = self._blob_tasks.get(key)
                new = known is None
                if known is None:
                    known = self._blob_tasks[key] = (Future(), owner)
            task, started_for = known
            if new:
                self._run(task, self._ensure_blob, blob, source, target, progress, task)
            tasks.append((task, started_for != owner))
        return tasks

    def _run(
        self, task: Future[Transfer], step: Callable[..., Transfer | None], *args: object
    ) -> None:
        """Run ``step`` on the blob pool; what it returns settles ``task`` (None: a later step,
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
            self._blob_pool.submit(job)
        except RuntimeError as error:  # the pool is gone: nobody else would settle the task
            task.set_exception(error)

    def _tag_state(self, target: Reference, digest: str) -> tuple[Outcome, str] | None:
        """None when the tag is free to write; else skip (same digest) or conflict."""
        existing = self.target.head_manifest(target)
        return None if existing is None else _tag_outcome(target, digest, existing.digest)

    def _check_cancel(self) -> None:
        if self.cancel.is_set():
            raise Interrupted("interrupted before the tag was written; nothing is tagged")

    def _ensure_blob(
        self,
        blob: Descriptor,
        source: Repository,
        target: Repository,
        progress: Callable[[int], None],
        task: Future[Transfer],
    ) -> Transfer | None:
        """Put ``blob`` into ``target``: nothing if it is there, a mount if another repository
        of the target has it (or is about to), else a copy."""
        self._check_cancel()
        if self.target.blob_size(target, blob.digest) is not None:
            return Transfer(present=1)
        holder = self._mounts.holder(blob.digest, source, target)
        if holder is not None:
            return self._mount_or_copy(blob, source, target, holder, progress)
        key = (target.endpoint, blob.digest)
        with self._lock:
            # Looked at again under the lock: a copy may have finished, or begun, meanwhile.
            holder = self.target.holder(blob.digest, target)
            copying = self._copies.get(key)
            if copying is not None and copying[0].done() and copying[0].exception():
                copying = None  # it failed: this one copies
            if holder is None and copying is None:
                self._copies[key] = (task, target)
        if holder is not None:
            return self._mount_or_copy(blob, source, target, holder, progress)
        if copying is None:
            return self._copy(blob, source, target, progress)
        first, where = copying

        def when_copied(_: Future[Transfer]) -> None:
            self._run(task, self._mount_or_copy, blob, source, target, where, progress)

        first.add_done_callback(when_copied)
        return None

    def _mount_or_copy(
        self,
        blob: Descriptor,
        source: Repository,
        target: Repository,
        holder: Repository,
        progress: Callable[[int], None],
    ) -> Transfer:
        self._check_cancel()
        answer = self.target.mount_blob(target, blob.digest, holder)
        if answer.mounted:
            return Transfer(mounted=1)
        # Not there after all: the upload session the refusal opened takes the copy.
        return self._copy(blob, source, target, progress, answer.session)

    def _copy(
        self,
        blob: Descriptor,
        source: Repository,
        target: Repository,
        progress: Callable[[int], None],
        session: str | None = None,
    ) -> Transfer:
        attempts = self.options.retry.attempts
        opener = partial(self.sources.read_blob, source, blob)
        for attempt in range(1, attempts + 1):
            sent = 0

            def counted(count: int) -> None:
                nonlocal sent
                sent += count
                progress(count)

            try:
                self.target.put_blob(target, blob, opener, counted, session)
                return Transfer(copied=1, bytes_copied=blob.size)
            except (TransferBroken, DigestMismatch) as error:
                # A stream cannot be rewound: the retry starts a fresh download and upload
                # (in a fresh session: the broken one may be gone).
                # Other errors come from requests the transport has retried already.
                progress(-sent)
                session = None
                if attempt == attempts:
                    raise
                self._check_cancel()
                retry_after = error.retry_after if isinstance(error, TransferBroken) else None
                self._pause(attempt, f"copy of {blob.digest}", error, retry_after)
        raise AssertionError("unreachable")

    def _pause(
        self, attempt: int, what: str, error: ImagesyncError, retry_after: str | None
    ) -> None:
        """Wait before starting a broken transfer again; a stop ends the wait at once."""
        delay = self.options.retry.delay(attempt, retry_after)
        log.debug("retry %d of %s after %s: waiting %.1f s", attempt, what, error, delay)
        if self.cancel.wait(delay):
            raise Interrupted(f"stopped while waiting to retry the {what}")

    def _apply_subchanges(self, change: Change, graph: _Graph) -> tuple[SubResult, ...]:
        # In plan order: referrers before the tag-schema index that lists them, so the index
        # lists only referrers that are in the target by then.
        results: list[SubResult] = []
        for sub in change.subchanges:
            if sub.kind == REFERRERS_INDEX:
                present = [
                    planned.digest
                    for planned, done in zip(change.subchanges, results, strict=False)
                    if planned.kind == REFERRER
                    and planned.subject == sub.subject
                    and done.outcome in (Outcome.CREATED, Outcome.SKIPPED)
                ]
                results.append(self._apply_subchange(change, sub, graph, present))
            else:
                results.append(self._apply_subchange(change, sub, graph, []))
        return tuple(results)

    def _apply_subchange(
        self, change: Change, sub: SubChange, graph: _Graph, referrers: list[str]
    ) -> SubResult:
        """Write one attached artifact, to the one name its kind, subject and digest imply.

        The names come from the image's own repositories and :func:`attached_target`, never
        from the plan's text; the subject must be part of the image (:class:`_Graph`) and the
        artifact attached to it in the source. A forged sub-change fails here, unwritten.
        """
        target_repository = change.target_reference.repository
        subject = sub.subject or ""
        target = attached_target(sub.kind, target_repository, subject, sub.digest)

        def result(outcome: Outcome, message: str) -> SubResult:
            return SubResult(sub.kind, str(target), sub.digest, outcome, message)

        if sub.action is Action.SKIP:
            return result(Outcome.SKIPPED, sub.reason)
        if sub.action is Action.CONFLICT:
            return result(Outcome.CONFLICT, sub.reason)
        if sub.action is Action.ERROR:
            return result(Outcome.FAILED, sub.reason)
        try:
            graph.require(subject)
            if sub.kind == REFERRERS_INDEX:
                return result(*self._update_referrers_index(target, subject, referrers))
            if sub.kind == SIGNING:
                return result(*self._sign(target, subject, sub.target_digest))
            source_repository = change.source_reference.repository
            root = check_attached(self.sources, source_repository, sub.kind, subject, sub.digest)
            graph.add(sub.digest)
            if sub.kind == SIGNATURE and self.options.signing_key is not None:
                # This plan, applied before, signed the copy since: it is there.
                held = self.target.find_manifest(target)
                if held is not None and keeps_layers(held, root):
                    return result(Outcome.SKIPPED, SIGNED_SINCE)
            source = attached_source(sub.kind, source_repository, subject, sub.digest)
            outcome, message, _ = self.copy(source, target, lambda n: None, str(target), root)
            return result(outcome, message)
        except ImagesyncError as error:
            return result(Outcome.FAILED, str(error))

    def _sign(self, target: Reference, subject: str, planned: str | None) -> tuple[Outcome, str]:
        """Append the key's signature of ``subject`` to its ``.sig`` tag ``target``.

        The one write over an existing tag that imagesync makes, so it is held to what plan
        saw: the tag must still hold ``planned`` (None: nothing) when apply reads it, and again
        right before the PUT, and what is written keeps every layer it held, byte for byte
        (:func:`imagesync.signing.sign_image`).
        """
        from imagesync.signing import SignatureImage, has_signature, sign_image

        key = self.options.signing_key
        if key is None:
            return Outcome.FAILED, "not signed: apply was given no signing key (--sign-key)"
        repository = target.repository
        held = self.target.find_manifest(target)
        existing = SignatureImage.held(held, str(target))
        if has_signature(existing, key.verification_key, repository, subject):
            # Signed since plan (this plan applied before): nothing to write.
            return Outcome.SKIPPED, f"already signed with {key.verification_key.name}"
        if (held.digest if held else None) != planned:
            return self._sig_moved(target, held.digest if held else None, planned)
        update = sign_image(
            key, repository, subject, existing, lambda d: self.target.get_blob(repository, d)
        )
        for blob in update.blobs:
            if self.target.blob_size(repository, blob.digest) is None:
                descriptor = Descriptor(blob.media_type, blob.digest, blob.size)
                self.target.put_blob(repository, descriptor, _opener(blob.data, descriptor))
        self._check_cancel()
        now = self.target.head_manifest(target)
        if (now.digest if now else None) != update.replaces:
            return self._sig_moved(target, now.digest if now else None, planned)
        assert target.tag is not None
        manifest = Manifest.parse(update.manifest, update.media_type, str(target))
        try:
            self.target.put_manifest(repository, target.tag, manifest, replacing=update.replaces)
        except TagTaken as taken:
            return self._sig_moved(target, taken.found, planned)
        written = self.target.head_manifest(target)
        if written is None or written.digest != update.digest:
            found = written.digest if written else "nothing"
            return Outcome.FAILED, f"after the write, {target} holds {found}, not {update.digest}"
        return Outcome.CREATED, f"signed with {key.verification_key.name}"

    @staticmethod
    def _sig_moved(
        target: Reference, found: str | None, planned: str | None
    ) -> tuple[Outcome, str]:
        return (
            Outcome.CONFLICT,
            f"{target} holds {found or 'nothing'}, plan saw {planned or 'nothing'}: it changed "
            "since plan; left untouched (re-run plan)",
        )

    def _update_referrers_index(
        self, target: Reference, subject: str, referrers: list[str]
    ) -> tuple[Outcome, str]:
        """Merge ``referrers`` (digests in the target) into the tag-schema index of ``subject``.

        Existing entries are never dropped. New entries are described from the manifests in
        the target, as the referrers API would: media type, size, artifactType (or the config's
        media type) and annotations. A target that turns out to have the referrers API (plan
        could not tell while the repository did not exist) needs no index. What the tag holds
        is written over only when it is a referrers index of ``subject``.
        """
        if not referrers:
            return Outcome.FAILED, "not updated: none of its referrers is in the target"
        if self.target.referrers(target.repository, subject) is not None:
            return Outcome.SKIPPED, LISTS_REFERRERS
        existing = self.target.find_manifest(target)
        listed = {c.digest for c in existing.children} if existing else set()
        missing = [d for d in dict.fromkeys(referrers) if d not in listed]
        if not missing:
            return Outcome.SKIPPED, "lists every referrer"
        if existing is not None:  # looked at entry by entry: it is about to be written over
            problem = referrers_index_problem(self.target, target.repository, existing, subject)
            if problem is not None:
                return Outcome.CONFLICT, f"{target} {problem}; left untouched"
        added = [referrer_descriptor(self.target, target.repository, d, subject) for d in missing]
        raw = merged_referrers_index(existing, added)
        index = Manifest.parse(raw, mediatypes.OCI_INDEX, str(target))
        assert target.tag is not None
        replacing = existing.digest if existing else None
        try:
            self.target.put_manifest(target.repository, target.tag, index, replacing=replacing)
        except TagTaken as taken:
            return Outcome.CONFLICT, f"{target} changed meanwhile ({taken.found}); left untouched"
        return Outcome.CREATED, f"lists {len(index.children)} referrer(s), {len(added)} added"


class _Graph:
    """The planned image graph: the digests apply may write attached artifacts for.

    They are the image, its children, and — transitively — what is attached to them in the
    source (a signature on an SBOM on a child). A sub-change is written only when its subject
    is one of them; what it writes then joins them once the source has shown it is attached.
    """

    def __init__(self, sources: Store, target: Store, change: Change, created: bool) -> None:
        assert change.digest is not None
        self._sources = sources
        self._change = change
        self._digest = change.digest
        self._known = {change.digest}
        # The root manifest is read only when a child's attachments are written: from the
        # sources if it was just copied (they kept it), else from the target.
        self._root_store = sources if created else target
        root = change.source_reference if created else change.target_reference
        self._root_from = root.repository
        self._children_read = False
        self._planned = {
            s.digest: s for s in reversed(change.subchanges) if s.kind not in MADE_IN_TARGET
        }

    def add(self, digest: str) -> None:
        self._known.add(digest)

    def require(self, subject: str, _visiting: frozenset[str] = frozenset()) -> None:
        """Return when ``subject`` is part of the image; else raise NotAttached."""
        if subject in self._known:
            return
        if not self._children_read:
            self._children_read = True
            root = self._root_store.get_manifest(Reference(self._root_from, None, self._digest))
            self._known.update(c.digest for c in root.children)
            if subject in self._known:
                return
        planned = self._planned.get(subject)
        if planned is not None and planned.subject and subject not in _visiting:
            # Attached to something attached (its own sub-change was not copied by this run,
            # so nobody has looked): its subject first, then the source's word for it.
            self.require(planned.subject, _visiting | {subject})
            source = self._change.source_reference.repository
            check_attached(self._sources, source, planned.kind, planned.subject, subject)
            self._known.add(subject)
            return
        raise NotAttached(
            f"{subject} is not the image {self._digest}, one of its children, or attached to "
            "them in the source",
            "re-run plan; do not edit plan files by hand",
        )


def _opener(data: bytes, blob: Descriptor) -> BlobOpener:
    """Bytes made here (a signature, its config) as a store takes a blob in."""
    return lambda: nullcontext(verified([data], blob))


def _tag_outcome(target: Reference, digest: str, found: str) -> tuple[Outcome, str]:
    """What a tag found holding ``found`` (written after plan) means for planned ``digest``."""
    if found == digest:
        return Outcome.SKIPPED, "already in the target (written after plan)"
    return (
        Outcome.CONFLICT,
        f"target tag {target} appeared with digest {found} after plan; planned {digest}; "
        "left untouched",
    )


def _with(
    base: ImageResult, outcome: Outcome, message: str, transfer: Transfer | None = None
) -> ImageResult:
    return replace(base, outcome=outcome, message=message, transfer=transfer or base.transfer)


def _with_subresults(result: ImageResult, subresults: tuple[SubResult, ...]) -> ImageResult:
    return replace(result, subresults=subresults)
