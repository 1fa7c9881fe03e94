"""Copying one image into the target, in the order that keeps tags honest (design.md §5).

Blobs first (:mod:`imagesync.apply.blobs`), then the child manifests by digest, then — after
one more look at the target tag — the tag, the last write, so an interrupted apply never
leaves a tag on an incomplete image; and finally the read-back of what the tag holds.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from imagesync.apply.cancel import check_cancel
from imagesync.apply.report import Outcome, Transfer
from imagesync.content.manifest import Descriptor, Manifest
from imagesync.reference import Reference, Repository
from imagesync.stores.graph import Image, fetch_image
from imagesync.stores.store import TagTaken
from imagesync.stores.tags import ImmutableTag, TagWrite, read_back, write_tag

if TYPE_CHECKING:
    from imagesync.apply.blobs import BlobScheduler
    from imagesync.stores.store import Stores


@dataclass(frozen=True)
class Done:
    """What one copy or write came to: its outcome, why, and how its blobs got there."""

    outcome: Outcome
    message: str
    transfer: Transfer = field(default_factory=Transfer)


class ImageCopier:
    """Copies images into the target; a context manager (its manifest writers stop when it
    closes). ``fresh_plan``: the plan was made moments ago by this process, so what it saw
    of the target needs no second look before the work starts (the look right before a tag
    is written is never skipped)."""

    def __init__(
        self,
        stores: Stores,
        blobs: BlobScheduler,
        cancel: threading.Event,
        parallelism: int,
        *,
        fresh_plan: bool,
    ) -> None:
        self.sources = stores.sources
        self.target = stores.target
        self.run = stores.run
        self.blobs = blobs
        self.cancel = cancel
        self.fresh_plan = fresh_plan
        # Manifest writes of an image, side by side; they never wait on anything.
        self._pool = ThreadPoolExecutor(max_workers=max(1, parallelism))
        self._lock = threading.Lock()
        # Per (target repository, digest), the manifests this run has written: a referrer graph
        # may hold one twice (an index whose child is also its subject), and it is put once.
        self._written: set[tuple[str, str]] = set()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def copy(
        self,
        source: Reference,
        target: Reference,
        progress: Callable[[int], None],
        owner: str,
        root: Manifest | None = None,
    ) -> Done:
        """Copy the image at ``source`` (by digest; ``root`` its manifest, if read already) to
        ``target``, tag or digest last, for the change whose target is ``owner``."""
        assert source.digest is not None
        if target.tag is not None and not self.fresh_plan:
            # A tag written since plan spares the copy of its blobs.
            early = self.tag_state(target, source.digest)
            if early is not None:
                return early
        image = fetch_image(self.sources, source, root)
        if not self.fresh_plan:
            self.run.is_new(target.repository)
        transfer = self.blobs.put_all(
            image.blobs, source.repository, target.repository, progress, owner
        )
        check_cancel(self.cancel)
        last_look = self._put_children(image, target)
        if target.tag is None:
            if not self._put_by_digest(target.repository, image.root):
                return Done(Outcome.SKIPPED, "written by this run already", transfer)
            return Done(Outcome.CREATED, "copied", transfer)
        check_cancel(self.cancel)
        done = self._put_tag(target, image.root, source.digest, last_look)
        return Done(done.outcome, done.message, transfer)

    def tag_state(self, target: Reference, digest: str) -> Done | None:
        """None when the tag is free to write; else skip (same digest) or conflict."""
        existing = self.target.head_manifest(target)
        return None if existing is None else tag_outcome(target, digest, existing.digest)

    def _put_children(self, image: Image, target: Reference) -> Future[Descriptor | None] | None:
        """Put the image's child manifests by digest (a PUT by digest cannot overwrite
        anything else: no look first): the platforms' at once (each a round trip), then any
        index over them, in order. Returns the last look at the tag when it went out with
        them."""
        leaves = [m for m in image.manifests if not m.children]
        nested = [m for m in image.manifests if m.children]
        # Tags are immutable: the tag is looked at once more right before the only write that
        # could overwrite. With nothing to write in between but the platforms' manifests,
        # that look goes out with them: one round trip less per image, the same guarantee.
        last_look = (
            self._pool.submit(self.target.head_manifest, target)
            if target.tag is not None and not nested
            else None
        )
        writes = [self._pool.submit(self._put_by_digest, target.repository, m) for m in leaves]
        for write in writes:
            write.result()
        for manifest in nested:
            check_cancel(self.cancel)
            self._put_by_digest(target.repository, manifest)
        return last_look

    def _put_tag(
        self,
        target: Reference,
        root: Manifest,
        digest: str,
        last_look: Future[Descriptor | None] | None,
    ) -> Done:
        """Write the tag, the last write, unless it holds something already; then read it
        back."""
        found = last_look.result() if last_look else self.target.head_manifest(target)
        try:
            wrote = write_tag(self.target, target, root, found.digest if found else None)
        except (TagTaken, ImmutableTag) as taken:  # written since plan by another: left as it is
            return tag_outcome(target, digest, taken.held_digest)
        if wrote is TagWrite.HELD:
            return tag_outcome(target, digest, digest)
        self._wrote(target.repository, root)
        problem = read_back(self.target, target, digest)
        if problem is not None:
            return Done(Outcome.FAILED, problem)
        return Done(Outcome.CREATED, "copied")

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


def tag_outcome(target: Reference, digest: str, found: str) -> Done:
    """What a tag found holding ``found`` (written after plan) means for planned ``digest``."""
    if found == digest:
        return Done(Outcome.SKIPPED, "already in the target (written after plan)")
    return Done(
        Outcome.CONFLICT,
        f"target tag {target} appeared with digest {found} after plan; planned {digest}; "
        "left untouched",
    )
