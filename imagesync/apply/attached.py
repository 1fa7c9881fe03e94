"""Writing what is attached to an image: signatures, attestations, SBOMs and referrers copied
from the source, the tag-schema indexes a target without the referrers API needs, and the
signatures imagesync adds (``--sign-key``).

Each goes to the one name its kind, subject and digest imply (:func:`attached_target`), never
to a name taken from the plan's text, and only when its subject is part of the image
(:class:`ImageGraph`): a forged sub-change fails, unwritten.
"""

from __future__ import annotations

import threading
from contextlib import nullcontext
from typing import TYPE_CHECKING

from imagesync.apply.cancel import check_cancel
from imagesync.apply.image import Done
from imagesync.apply.report import Outcome, SubResult
from imagesync.content import mediatypes
from imagesync.content.manifest import Descriptor, Manifest
from imagesync.content.referrers import (
    MADE_IN_TARGET,
    REFERRER,
    REFERRERS_INDEX,
    SIGNATURE,
    SIGNED_SINCE,
    SIGNING,
    attached_source,
    attached_target,
    keeps_layers,
    merged_referrers_index,
)
from imagesync.errors import ImagesyncError
from imagesync.plan.document import Action, Change, SubChange
from imagesync.reference import Reference
from imagesync.stores.attached import (
    NotAttached,
    check_attached,
    referrer_descriptor,
    referrers_index_need,
)
from imagesync.stores.store import BlobOpener, BlobStream, ReadFrom, TagTaken
from imagesync.stores.stream import from_start
from imagesync.stores.tags import ImmutableTag, read_back, write_tag

if TYPE_CHECKING:
    from imagesync.apply.image import ImageCopier
    from imagesync.signing import SigningKey
    from imagesync.stores.store import Store, Stores

# Sub-changes that plan decided need no write: their outcome as apply reports it.
_NOT_WRITTEN = {Action.SKIP: Outcome.SKIPPED, Action.CONFLICT: Outcome.CONFLICT}


class AttachedWriter:
    """Writes the sub-changes of a change, after its image is in the target."""

    def __init__(
        self,
        stores: Stores,
        images: ImageCopier,
        cancel: threading.Event,
        signing_key: SigningKey | None,
    ) -> None:
        self.sources = stores.sources
        self.target = stores.target
        self.run = stores.run
        self.images = images
        self.cancel = cancel
        self.signing_key = signing_key

    def apply(self, change: Change, created: bool) -> tuple[SubResult, ...]:
        """The sub-changes of ``change``, whose image apply has just ``created`` (or found
        there), in plan order: referrers before the tag-schema index that lists them, so the
        index lists only referrers that are in the target by then."""
        graph = ImageGraph(self.sources, self.target, change, created)
        results: list[SubResult] = []
        for sub in change.subchanges:
            present = []
            if sub.kind == REFERRERS_INDEX:
                present = [
                    planned.digest
                    for planned, done in zip(change.subchanges, results, strict=False)
                    if planned.kind == REFERRER
                    and planned.subject == sub.subject
                    and done.outcome in (Outcome.CREATED, Outcome.SKIPPED)
                ]
            target = attached_target(
                sub.kind, change.target_reference.repository, sub.subject or "", sub.digest
            )
            done = self._apply_one(change, sub, target, graph, present)
            results.append(SubResult(sub.kind, str(target), sub.digest, done.outcome, done.message))
        return tuple(results)

    def _apply_one(
        self,
        change: Change,
        sub: SubChange,
        target: Reference,
        graph: ImageGraph,
        referrers: list[str],
    ) -> Done:
        """Write one attached artifact to ``target`` (``referrers``: for a tag-schema index,
        the referrers of its subject now in the target)."""
        if sub.action in _NOT_WRITTEN:
            return Done(_NOT_WRITTEN[sub.action], sub.reason)
        if sub.action is Action.ERROR:
            return Done(Outcome.FAILED, sub.reason)
        subject = sub.subject or ""
        try:
            graph.require(subject)
            if sub.kind == REFERRERS_INDEX:
                return self._update_referrers_index(target, subject, referrers)
            if sub.kind == SIGNING:
                return self._sign(target, subject, sub.target_digest)
            return self._copy(change, sub, target, graph)
        except ImagesyncError as error:
            return Done(Outcome.FAILED, str(error))

    def _copy(self, change: Change, sub: SubChange, target: Reference, graph: ImageGraph) -> Done:
        """Copy a signature, attestation, SBOM or referrer, once the source has shown that it
        is attached to its subject."""
        subject = sub.subject or ""
        source_repository = change.source_reference.repository
        root = check_attached(self.sources, source_repository, sub.kind, subject, sub.digest)
        graph.add(sub.digest)
        if sub.kind == SIGNATURE and self.signing_key is not None:
            # This plan, applied before, signed the copy since: it is there.
            held = self.target.find_manifest(target)
            if held is not None and keeps_layers(held, root):
                return Done(Outcome.SKIPPED, SIGNED_SINCE)
        source = attached_source(sub.kind, source_repository, subject, sub.digest)
        done = self.images.copy(source, target, lambda n: None, str(target), root)
        return Done(done.outcome, done.message)

    def _sign(self, target: Reference, subject: str, planned: str | None) -> Done:
        """Append the key's signature of ``subject`` to its ``.sig`` tag ``target``.

        The one write over an existing tag that imagesync makes, so it is held to what plan
        saw: the tag must still hold ``planned`` (None: nothing) when apply reads it, and again
        right before the PUT, and what is written keeps every layer it held, byte for byte
        (:func:`imagesync.signing.sign_image`); and it must hold cosign signatures of
        ``subject`` alone, as plan required, looked at again here
        (:func:`~imagesync.plan.signing.foreign_signatures`).
        """
        from imagesync.plan.signing import foreign_signatures
        from imagesync.signing import SignatureImage, has_signature, sign_image

        key = self.signing_key
        if key is None:
            return Done(Outcome.FAILED, "not signed: apply was given no signing key (--sign-key)")
        repository = target.repository
        held = self.target.find_manifest(target)
        foreign = foreign_signatures(held, str(target), subject, self.target, repository)
        if foreign is not None:
            return Done(Outcome.CONFLICT, f"{foreign}; left untouched")
        existing = SignatureImage.held(held, str(target))
        if has_signature(existing, key.verification_key, repository, subject):
            # Signed since plan (this plan applied before): nothing to write.
            return Done(Outcome.SKIPPED, f"already signed with {key.verification_key.name}")
        if (held.digest if held else None) != planned:
            return _sig_moved(target, held.digest if held else None, planned)
        update = sign_image(
            key, repository, subject, existing, lambda d: self.target.get_blob(repository, d)
        )
        for blob in update.blobs:
            descriptor = Descriptor(blob.media_type, blob.digest, blob.size)
            if not self.target.has_blob(repository, descriptor):
                self.target.put_blob(repository, descriptor, _opener(blob.data, descriptor))
                self.run.put(repository, blob.digest)
        check_cancel(self.cancel)
        now = self.target.head_manifest(target)
        found = now.digest if now else None
        if found != update.replaces:
            return _sig_moved(target, found, planned)
        manifest = Manifest.parse(update.manifest, update.media_type, str(target))
        try:
            write_tag(self.target, target, manifest, found, replacing=update.replaces)
        except ImmutableTag as refused:
            # The image stands; only its signature is not added.
            return Done(Outcome.FAILED, f"not signed: {refused}")
        except TagTaken as taken:
            return _sig_moved(target, taken.held_digest, planned)
        problem = read_back(self.target, target, update.digest)
        if problem is not None:
            return Done(Outcome.FAILED, problem)
        return Done(Outcome.CREATED, f"signed with {key.verification_key.name}")

    def _update_referrers_index(
        self, target: Reference, subject: str, referrers: list[str]
    ) -> Done:
        """Merge ``referrers`` (digests in the target) into the tag-schema index of ``subject``.

        Existing entries are never dropped. New entries are described from the manifests in
        the target, as the referrers API would: media type, size, artifactType (or the config's
        media type) and annotations. Whether a write is needed at all, and whether what the
        tag holds may be written over, is :func:`referrers_index_need`'s decision, as in plan:
        a target that turns out to have the referrers API (plan could not tell while the
        repository did not exist) needs no index.
        """
        if not referrers:
            return Done(Outcome.FAILED, "not updated: none of its referrers is in the target")
        need = referrers_index_need(self.target, target.repository, subject, referrers)
        if need.unneeded is not None:
            return Done(Outcome.SKIPPED, need.unneeded)
        if need.problem is not None:
            return Done(Outcome.CONFLICT, f"{target} {need.problem}; left untouched")
        added = [
            referrer_descriptor(self.target, target.repository, d, subject) for d in need.missing
        ]
        raw = merged_referrers_index(need.existing, added)
        index = Manifest.parse(raw, mediatypes.OCI_INDEX, str(target))
        # The tag was looked at just now, to merge what it holds.
        held = need.existing.digest if need.existing else None
        try:
            write_tag(self.target, target, index, held, replacing=held)
        except TagTaken as taken:
            return Done(
                Outcome.CONFLICT,
                f"{target} changed meanwhile ({taken.held_digest}); left untouched",
            )
        return Done(Outcome.CREATED, f"lists {len(index.children)} referrer(s), {len(added)} added")


def _sig_moved(target: Reference, found: str | None, planned: str | None) -> Done:
    return Done(
        Outcome.CONFLICT,
        f"{target} holds {found or 'nothing'}, plan saw {planned or 'nothing'}: it changed "
        "since plan; left untouched (re-run plan)",
    )


def _opener(data: bytes, blob: Descriptor) -> BlobOpener:
    """Bytes made here (a signature, its config) as a store takes a blob in."""

    def opener(start: ReadFrom | None = None) -> BlobStream:
        return nullcontext(from_start([data], blob, start))

    return opener


class ImageGraph:
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
