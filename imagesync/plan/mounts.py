"""Where a blob can come from without crossing the wire again: cross-repository mounts.

A blob that several target repositories need is copied once per run; every other repository
gets it by mount (design.md §12) from a repository of the target store that has it: one this
run has seen holding it or has given it to, the target repository of a skipped image whose
manifests list it, or the source repository when the target store can mount from it (it is on
the target's registry). The planner asks this to say what will be mounted and what copied; the
applier, to do it. (The applier also waits for a copy in flight, which only it knows of.)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from imagesync.content.manifest import Descriptor
from imagesync.errors import ImagesyncError
from imagesync.plan.document import Action, Change
from imagesync.reference import Reference, Repository
from imagesync.stores.graph import fetch_image

if TYPE_CHECKING:
    from imagesync.stores.run import RunContext
    from imagesync.stores.store import Store

log = logging.getLogger("imagesync.plan.mounts")


def namespace(repository: Repository) -> tuple[str, str]:
    """The registry and the path without its last component: ``docker.io/library`` for
    ``library/node``. Images of one vendor share their base layers, and live side by side."""
    return repository.registry, repository.path.rpartition("/")[0]


class MountSources:
    """Answers "which repository of the target store can ``digest`` be mounted from".

    Skipped images' blob lists cost a GET per manifest, so they are read only when a blob is
    otherwise to be copied, and then only for the skipped images in the namespace of that
    blob's source (see :func:`namespace`): bounded by the related images, not the whole file.
    """

    def __init__(self, run: RunContext, target: Store, changes: Sequence[Change] = ()) -> None:
        self._run = run
        self._target = target
        self._lock = threading.Lock()
        # Per namespace, the skipped images (by target) whose blobs may be lent; the targets
        # whose blobs are learnt; one lock per namespace for the looks at them.
        self._skipped: dict[tuple[str, str], dict[str, Change]] = {}
        self._learnt: set[str] = set()
        self._looking: dict[tuple[str, str], threading.Lock] = {}
        for change in changes:
            self.add(change)

    def add(self, change: Change) -> None:
        """Take a change into account (only skips lend blobs); the same one twice is once.
        In a run that applies while it plans, a skip lends its blobs once plan has decided it:
        a blob copied before that is not mounted instead."""
        if change.action is not Action.SKIP or not change.digest:
            return
        source = change.source_reference.repository
        with self._lock:
            self._skipped.setdefault(namespace(source), {})[change.target] = change

    def holder(
        self, digest: str, source: Repository, target: Repository, *, given: bool = True
    ) -> Repository | None:
        """A repository to mount ``digest`` into ``target`` from, or None: the blob must be
        copied (or, in apply, waited for). ``given``: also one this run gave the blob to."""
        if self._run.can_mount(target, source):
            return source
        known = self._run.holder(digest, target, given=given)
        if known is not None:
            return known
        self._load_skipped(namespace(source))
        return self._run.holder(digest, target, given=given)

    def _load_skipped(self, key: tuple[str, str]) -> None:
        """Learn the blobs of the skipped images in one namespace not learnt yet (a thread
        that asks while another looks waits for that look, rather than copy meanwhile)."""
        with self._lock:
            looking = self._looking.setdefault(key, threading.Lock())
        with looking:
            with self._lock:
                pending = [
                    change
                    for target, change in self._skipped.get(key, {}).items()
                    if target not in self._learnt
                ]
                self._learnt.update(change.target for change in pending)
            for change in pending:
                self._learn(change)

    def _learn(self, change: Change) -> None:
        target = change.target_reference.repository
        assert change.digest is not None
        try:
            # By digest, from the target: what the skip found there (in a sync, the manifests
            # plan read are still known, so only the children of an index are asked for).
            image = fetch_image(self._target, Reference(target, None, change.digest))
        except ImagesyncError as error:
            log.debug("blobs of %s not known (%s); not a mount source", change.target, error)
            return
        for blob in image.blobs:
            self._run.may_hold(target, blob.digest)


def with_mounts(
    run: RunContext,
    store: Store,
    changes: Sequence[Change],
    missing: Mapping[str, Sequence[Descriptor]],
) -> tuple[Change, ...]:
    """The changes with their transfer figures as apply will count them: of the blobs each
    create lacks (``missing``, by target, as plan found them), those an earlier create of the
    plan lands in the same repository are not transferred (apply finds them there); of the
    rest, how many will come by mount rather than be copied, in ``store``, the target
    (``run``: what the run knows of where blobs are).

    In plan order, as one run would go, and by apply's own rule (apply/blobs.py): one task
    per blob and target repository, one copy per blob and target registry, every other
    repository mounts it. The first create that needs a blob nobody has copies it, the later
    ones mount it from that create's repository. (Apply runs images at once, so which image
    copies a shared blob may differ; how many copies and mounts does not.) What this run
    itself has written meanwhile (sync begins copies while it plans) does not count: the
    figures are the plan's.
    """
    sources = MountSources(run, store, changes)
    copied: set[tuple[str, str]] = set()
    landed: set[tuple[str, str]] = set()
    result = []
    for change in changes:
        if change.action is not Action.CREATE or not change.blobs_to_transfer:
            result.append(change)
            continue
        source = change.pinned_source.repository
        target = change.target_reference.repository
        moved = mounted = _Tally()
        for blob in missing.get(change.target, ()):
            if (str(target), blob.digest) in landed:
                continue
            landed.add((str(target), blob.digest))
            key = (target.endpoint, blob.digest)
            if key in copied or sources.holder(blob.digest, source, target, given=False):
                mounted += _Tally(1, blob.size)
            else:
                copied.add(key)
            moved += _Tally(1, blob.size)
        result.append(
            replace(
                change,
                blobs_to_transfer=moved.blobs,
                bytes_to_transfer=moved.size,
                blobs_to_mount=mounted.blobs,
                bytes_to_mount=mounted.size,
            )
        )
    return tuple(result)


@dataclass(frozen=True)
class _Tally:
    """A count of blobs and their bytes."""

    blobs: int = 0
    size: int = 0

    def __add__(self, other: _Tally) -> _Tally:
        return _Tally(self.blobs + other.blobs, self.size + other.size)
