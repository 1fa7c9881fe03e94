"""What plan decides with cosign keys: the signatures imagesync adds to what lands
(``--sign-key``), and whether what comes in carries one that verifies (``--verify-key``).

Signing is planned with the public key alone, so a pull request's plan job holds no private
key and no passphrase: for each image plan creates or skips (and with ``--sign-children`` for
each platform manifest of an index), it looks at what the target's ``sha256-<hex>.sig`` tag
will hold right before apply signs — the source's signatures when plan copies them, else what
the tag holds now — and plans a ``signing`` sub-change: skip when that already holds the
key's signature over the payload apply would sign, else create. The sub-change's
``target_digest`` is that content's digest: apply writes only while the tag still holds it.

Verification reads the source's ``.sig`` tag where the image was found (a mirror, the
registry, a layout) and checks it as ``cosign verify --key`` does (the digest, not the name).

Loaded only when a command is given keys: it brings cryptography and PyNaCl, which a plan
without keys does not need.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING

from imagesync.content import mediatypes
from imagesync.content.manifest import Manifest
from imagesync.content.referrers import SIGNATURE, SIGNING, attached_target
from imagesync.errors import ImagesyncError
from imagesync.plan.document import Action, Change, PlannedSigning, SubChange
from imagesync.reference import Reference, Repository, parse_reference
from imagesync.signing import (
    BadSignatureImage,
    SignatureImage,
    Verification,
    VerificationKey,
    has_signature,
    signature_tag,
    verify_image,
)

if TYPE_CHECKING:
    from imagesync.stores.store import Store


@dataclass(frozen=True)
class Signing:
    """What plan signs with: the public key (plan needs no private key), and whether each
    platform manifest of an index is signed too."""

    key: VerificationKey
    children: bool = False

    @property
    def planned(self) -> PlannedSigning:
        """How the plan document records it."""
        return PlannedSigning(self.key.fingerprint, self.key.source, self.children)


@dataclass(frozen=True)
class Verifying:
    """The public keys sources are verified with: ``every_source``'s for all of them, and per
    source registry (as references name it: ``docker.io``) those of the registries config."""

    every_source: tuple[VerificationKey, ...] = ()
    by_registry: Mapping[str, tuple[VerificationKey, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )

    def keys_for(self, registry: str) -> tuple[VerificationKey, ...]:
        """The keys an image from ``registry`` must be signed with one of; () for none."""
        return self.every_source + self.by_registry.get(registry, ())


def verify_source(
    found: Store, repository: Repository, digest: str, keys: tuple[VerificationKey, ...]
) -> Verification:
    """Whether image ``digest`` of ``repository``, in ``found`` (where it was found), carries
    a cosign signature by one of ``keys`` over a payload that names it."""
    tag = Reference(repository, signature_tag(digest))
    image = SignatureImage.held(found.find_manifest(tag), str(tag))
    return verify_image(digest, keys, image, lambda blob: found.get_blob(repository, blob))


def plan_signing(
    target: Store, found: Store, change: Change, manifest: Manifest, signing: Signing
) -> tuple[SubChange, ...]:
    """The ``signing`` sub-changes of ``change`` (a create or skip; ``manifest`` its image,
    ``found`` the store it was found in): the image's digest, and with ``children`` each
    child's. They come after the change's other sub-changes, which apply writes first."""
    subjects = [manifest.digest]
    if signing.children:
        subjects += [child.digest for child in manifest.children]
    repository = change.target_reference.repository
    return tuple(
        _signing_change(target, found, change, repository, subject, signing.key)
        for subject in subjects
    )


def _signing_change(
    target: Store,
    found: Store,
    change: Change,
    repository: Repository,
    subject: str,
    key: VerificationKey,
) -> SubChange:
    written = attached_target(SIGNING, repository, subject, subject)
    base = SubChange(
        kind=SIGNING,
        source=str(written),
        target=str(written),
        digest=subject,
        media_type=mediatypes.COSIGN_SIMPLE_SIGNING,
        action=Action.SKIP,
        reason="",
        subject=subject,
    )
    copied = next(
        (s for s in change.subchanges if s.kind == SIGNATURE and s.subject == subject),
        None,
    )
    try:
        if copied is not None and copied.action is Action.CREATE:
            # Apply copies the source's signatures first: that is what the tag will hold.
            where = parse_reference(copied.source)
            held: Manifest | None = found.get_manifest(where)
            store = found
        else:
            where, store = written, target
            held = target.find_manifest(written)
        foreign = foreign_signatures(held, str(written), subject, store, where.repository)
        image = None if foreign else SignatureImage.held(held, str(written))
    except ImagesyncError as error:
        return replace(base, action=Action.ERROR, reason=f"cannot sign: {error}")
    base = replace(base, target_digest=held.digest if held else None)
    if foreign:
        return replace(base, action=Action.CONFLICT, reason=foreign)
    if has_signature(image, key, repository, subject):
        return replace(base, reason=f"already signed with {key.name}")
    return replace(base, action=Action.CREATE, reason=f"sign with {key.name}")


def foreign_signatures(
    held: Manifest | None, where: str, subject: str, store: Store, repository: Repository
) -> str | None:
    """Why the ``.sig`` tag ``where``, holding ``held`` (read from ``repository`` of
    ``store``), may not be extended with a signature of ``subject``; None when it may (it
    holds nothing, or cosign signatures of ``subject`` alone).

    Plan makes that a conflict and apply asks again right before it writes: a tag that
    holds anything else is never written over, this one neither."""
    if held is None:
        return None
    try:
        image = SignatureImage.parse(held.raw, held.media_type, where)
        found = image.foreign_to(subject, lambda blob: store.get_blob(repository, blob))
    except BadSignatureImage as error:
        found = error.message
    if found is None:
        return None
    return (
        f"conflict: {where} holds {found}; no signature is added over it (move that tag "
        "away, or leave --sign-key out, then re-run plan)"
    )
