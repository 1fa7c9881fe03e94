"""What is attached to an image: cosign signatures, attestations, SBOMs and OCI referrers.

Two conventions exist side by side (design.md §3.4):
- cosign's tags next to the image: ``sha256-<hex>.sig``, ``.att``, ``.sbom``;
- OCI 1.1 referrers: manifests with a ``subject``, listed by the referrers API or, where a
  registry lacks it, by an index tagged ``sha256-<hex>`` (the tag schema).
Referrers can have referrers of their own (a signature on an SBOM). This module holds the
names and the rules, read offline too (plan checks); ``stores/attached.py`` looks them up in
a store.

Besides what is copied, two kinds are made in the target: the tag-schema index a target
without the referrers API needs, and the signatures imagesync adds with ``--sign-key``
(``signing``), which extend the image's ``.sig`` tag.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from imagesync.content import mediatypes
from imagesync.content.manifest import Descriptor, Manifest
from imagesync.reference import Reference, Repository

SIGNATURE = "signature"
COSIGN_KINDS = {".sig": SIGNATURE, ".att": "attestation", ".sbom": "sbom"}
COSIGN_SUFFIXES = {kind: suffix for suffix, kind in COSIGN_KINDS.items()}
REFERRER = "referrer"
REFERRERS_INDEX = "referrers-index"
# A signature imagesync adds with its own key: appended to the ``.sig`` tag of its subject.
SIGNING = "signing"
# Kinds that are written in the target, not copied from the source: their source is their
# target.
MADE_IN_TARGET = frozenset({REFERRERS_INDEX, SIGNING})


def digest_tag(digest: str) -> str:
    """The tag-schema name for a digest: ``sha256:abc`` → ``sha256-abc``."""
    return digest.replace(":", "-")


def attached_source(kind: str, repository: Repository, subject: str, digest: str) -> Reference:
    """Where an artifact of ``kind`` attached to ``subject`` is read: a cosign tag pinned to
    ``digest``, a referrer by ``digest``, a tag-schema index by its tag."""
    if kind in COSIGN_SUFFIXES:
        return Reference(repository, digest_tag(subject) + COSIGN_SUFFIXES[kind], digest)
    return attached_target(kind, repository, subject, digest)


def attached_target(kind: str, repository: Repository, subject: str, digest: str) -> Reference:
    """The only name an artifact of ``kind`` attached to ``subject`` is written to.

    This is the rule that keeps a plan from writing what its images do not imply (design.md
    §14): a cosign signature, attestation or SBOM goes to ``sha256-<hex of subject>.sig``
    (``.att``, ``.sbom``), a referrer by its own digest (a write by digest overwrites nothing),
    a tag-schema index to ``sha256-<hex of subject>``, a signature imagesync adds to
    ``sha256-<hex of subject>.sig``.
    """
    if kind == REFERRER:
        return Reference(repository, None, digest)
    if kind == REFERRERS_INDEX:
        return Reference(repository, digest_tag(subject))
    if kind == SIGNING:
        return Reference(repository, digest_tag(subject) + COSIGN_SUFFIXES[SIGNATURE])
    if kind in COSIGN_SUFFIXES:
        return Reference(repository, digest_tag(subject) + COSIGN_SUFFIXES[kind])
    raise ValueError(f"unknown kind of attached artifact: {kind!r}")


@dataclass(frozen=True)
class Attached:
    """One artifact attached to ``subject``: by cosign tag (``tag`` set) or as a referrer."""

    kind: str
    subject: str
    descriptor: Descriptor
    tag: str | None = None

    def source(self, repository: Repository) -> Reference:
        return attached_source(self.kind, repository, self.subject, self.descriptor.digest)

    def target(self, repository: Repository) -> Reference:
        return attached_target(self.kind, repository, self.subject, self.descriptor.digest)


# Why a .sig tag that differs from the source's counts as copied: signing left it so.
SIGNED_SINCE = "in the target with every signature of the source's, and signatures added there"


def keeps_layers(newer: Manifest, older: Manifest) -> bool:
    """Whether ``newer`` is ``older`` with layers appended: the same kind of manifest, every
    layer of ``older`` first and unchanged, and more after them. What a ``.sig`` tag holds
    once imagesync has signed what the source's held: the source's signatures are all there,
    so the copy is done."""
    if newer.media_type != older.media_type or not mediatypes.is_image_manifest(newer.media_type):
        return False
    kept, grown = older.json.get("layers"), newer.json.get("layers")
    if not isinstance(kept, list) or not isinstance(grown, list):
        return False
    return len(grown) > len(kept) and grown[: len(kept)] == kept


def described_as_referrer(manifest: Manifest) -> Descriptor:
    """A referrer's descriptor as the referrers API lists it: media type, digest, size,
    artifactType (or the config's media type) and annotations."""
    annotations = manifest.json.get("annotations")
    return Descriptor(
        manifest.media_type,
        manifest.digest,
        len(manifest.raw),
        artifact_type=manifest.artifact_type,
        annotations=tuple(sorted((str(k), str(v)) for k, v in annotations.items()))
        if isinstance(annotations, dict)
        else (),
    )


def merged_referrers_index(existing: Manifest | None, referrers: list[Descriptor]) -> bytes:
    """A tag-schema index listing ``existing``'s descriptors plus ``referrers``.

    Existing entries are kept as they are (never dropped), and so are the index's other fields
    (its annotations); new ones are appended in a stable order, so two applies produce the same
    bytes.
    """
    entries: list[dict[str, object]] = []
    known: set[str] = set()
    document: dict[str, object] = {}
    if existing is not None:
        document = {k: v for k, v in existing.json.items() if k != "manifests"}
        for kept in existing.json.get("manifests") or []:
            if isinstance(kept, dict) and kept.get("digest") not in known:
                known.add(str(kept.get("digest")))
                entries.append(kept)
    for descriptor in sorted(referrers, key=lambda d: d.digest):
        if descriptor.digest in known:
            continue
        known.add(descriptor.digest)
        entries.append(descriptor.to_json())
    document.update(schemaVersion=2, mediaType=mediatypes.OCI_INDEX, manifests=entries)
    return json.dumps(document, separators=(",", ":")).encode()
