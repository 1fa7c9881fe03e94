"""The sub-changes of an image: what is attached to it (signatures, attestations, SBOMs,
referrers) found where the image was found, and planned against the target like the image
(create / skip / conflict), with the tag-schema indexes a target without the referrers API
needs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from imagesync.content import mediatypes
from imagesync.content.manifest import Descriptor, Manifest
from imagesync.content.referrers import (
    REFERRER,
    REFERRERS_INDEX,
    SIGNATURE,
    SIGNED_SINCE,
    Attached,
    digest_tag,
    keeps_layers,
)
from imagesync.errors import ImagesyncError
from imagesync.images.file import ImageEntry
from imagesync.plan.document import Action, Change, Fix, SubChange
from imagesync.reference import Reference, Repository
from imagesync.stores.attached import Discovered, discover, referrers_index_need
from imagesync.stores.store import Store


def discover_attached(
    entry: ImageEntry, change: Change, manifest: Manifest | None, found: Store
) -> Discovered:
    """What is attached to the image and its children, in ``found``. A skip whose manifest was
    not read (a skip costs no manifest GET, design §16) is looked up by its own digest first;
    its manifest is read for its children only when the repository's tag-schema names point
    at digests nothing found so far explains (a child's own ``.sig``, a child's referrers
    index)."""
    repository = entry.origin.repository
    own = None
    if manifest is None:
        assert change.digest is not None
        own = discover(found, repository, [change.digest])
        if not own.names_others([change.digest]):
            return own
        manifest = found.get_manifest(entry.origin.with_tag(None).with_digest(change.digest))
        if not manifest.children:
            return own
    subjects = [manifest.digest, *(c.digest for c in manifest.children)]
    return discover(found, repository, subjects, earlier=own)


def plan_attached(
    target: Store, entry: ImageEntry, attached: Sequence[Attached], found: Store
) -> tuple[SubChange, ...]:
    """Sub-changes for everything attached to the image: create / skip / conflict against
    the target, plus the tag-schema indexes a target without the referrers API needs.
    ``found`` is where the image and its attachments were found (a conflict asks it)."""
    source_repo, target_repo = entry.origin.repository, entry.target.repository
    subchanges = [
        _attached_change(target, found, item, source_repo, target_repo) for item in attached
    ]
    by_subject: dict[str, list[Descriptor]] = {}
    for item in attached:
        if item.kind == REFERRER:
            by_subject.setdefault(item.subject, []).append(item.descriptor)
    for subject, descriptors in by_subject.items():
        subchanges.append(_referrers_index_change(target, target_repo, subject, descriptors))
    return tuple(subchanges)


def _attached_change(
    store: Store, found: Store, item: Attached, source_repo: Repository, target_repo: Repository
) -> SubChange:
    target = item.target(target_repo)
    lookup = target if item.tag else target.with_digest(item.descriptor.digest)
    existing = store.head_manifest(lookup)
    fix = None
    if existing is None:
        action, reason = Action.CREATE, "not in the target"
    elif existing.digest == item.descriptor.digest:
        action, reason = Action.SKIP, "already in the target"
    elif item.kind == SIGNATURE and _signed_since(store, target, found, item, source_repo):
        action, reason = Action.SKIP, SIGNED_SINCE
    else:
        action = Action.CONFLICT
        reason, fix = _attached_conflict(found, item, source_repo, target, existing.digest)
    return SubChange(
        kind=item.kind,
        source=str(item.source(source_repo)),
        target=str(target),
        digest=item.descriptor.digest,
        media_type=item.descriptor.media_type,
        action=action,
        reason=reason,
        target_digest=existing.digest if existing else None,
        artifact_type=item.descriptor.artifact_type,
        subject=item.subject,
        size=item.descriptor.size,
        fix=fix,
    )


def _signed_since(
    store: Store, target: Reference, found: Store, item: Attached, source_repo: Repository
) -> bool:
    """Whether the target's ``.sig`` tag holds the source's signature image with signatures
    appended (what ``--sign-key`` leaves): then the source's signatures are all there."""
    held = store.find_manifest(target)
    return held is not None and keeps_layers(held, found.get_manifest(item.source(source_repo)))


def _attached_conflict(
    found: Store, item: Attached, source_repo: Repository, target: Reference, held: str
) -> tuple[str, Fix | None]:
    """Why a signature, attestation, SBOM or referrer tag in the target that holds another
    digest is a conflict, and its fix. The images file names none of them, so no entry
    fixes it; whether the source still serves what the target holds says what happened."""
    reason = (
        f"target {target} holds {held}, the source has {item.descriptor.digest}; it is not "
        f"overwritten. No entry of the images file names a {item.kind}, so none fixes this. "
    )
    at_source = source_has(found, source_repo, held)
    if at_source is True:
        reason += (
            f"The source still serves {held}: its {item.kind} tag has moved on since (cosign "
            f"adds signatures to it). To take the source's, delete {target} from the target "
            "registry and plan again; or leave the target's as it is"
        )
    elif at_source is False:
        reason += (
            f"{held} is not in the source: the target's {item.kind} is not the source's. "
            f"Delete {target} from the target registry and plan again to take the source's"
        )
    return reason, None if at_source is None else Fix(target_digest_at_source=at_source)


def source_has(store: Store, repository: Repository, digest: str) -> bool | None:
    """Whether ``repository`` (at a mirror or the registry itself, or in a layout) still
    serves ``digest``: one HEAD by digest. None when it cannot tell (no answer)."""
    try:
        return store.head_manifest(Reference(repository, None, digest)) is not None
    except ImagesyncError:
        return None


def _referrers_index_change(
    store: Store, target_repo: Repository, subject: str, referrers: list[Descriptor]
) -> SubChange:
    """Where the target lacks the referrers API, its tag-schema index must list the referrers."""
    target = Reference(target_repo, digest_tag(subject))
    base = SubChange(
        kind=REFERRERS_INDEX,
        source=str(target),
        target=str(target),
        digest=subject,
        media_type=mediatypes.OCI_INDEX,
        action=Action.SKIP,
        reason="",
        subject=subject,
    )
    need = referrers_index_need(store, target_repo, subject, [d.digest for d in referrers])
    if need.existing is not None:
        base = replace(base, target_digest=need.existing.digest)
    if need.unneeded is not None:
        return replace(base, reason=need.unneeded)
    if need.problem is not None:
        return replace(
            base,
            action=Action.CONFLICT,
            reason=f"target {target} {need.problem}; it is not overwritten",
        )
    return replace(
        base,
        action=Action.CREATE,
        reason=f"add {len(need.missing)} referrer(s) to the tag-schema index, keeping existing "
        "entries",
    )
