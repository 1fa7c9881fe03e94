"""What is attached to an image: cosign signatures, attestations, SBOMs and OCI referrers.

Two conventions exist side by side (design.md §3.4):
- cosign's tags next to the image: ``sha256-<hex>.sig``, ``.att``, ``.sbom``;
- OCI 1.1 referrers: manifests with a ``subject``, listed by the referrers API or, where a
  registry lacks it, by an index tagged ``sha256-<hex>`` (the tag schema).
Referrers can have referrers of their own (a signature on an SBOM); discovery follows them.
Everything is looked up at one endpoint: where the image was found (a mirror, or the registry).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from imagesync import mediatypes
from imagesync.client import Endpoint, RegistryClient
from imagesync.errors import RegistryError
from imagesync.manifest import Descriptor, Manifest
from imagesync.reference import Reference, Repository

COSIGN_KINDS = {".sig": "signature", ".att": "attestation", ".sbom": "sbom"}
REFERRER = "referrer"
REFERRERS_INDEX = "referrers-index"
# A chain of signatures on signatures deeper than this is not something people publish.
MAX_DEPTH = 4


def digest_tag(digest: str) -> str:
    """The tag-schema name for a digest: ``sha256:abc`` → ``sha256-abc``."""
    return digest.replace(":", "-")


@dataclass(frozen=True)
class Attached:
    """One artifact attached to ``subject``: by cosign tag (``tag`` set) or as a referrer."""

    kind: str
    subject: str
    descriptor: Descriptor
    tag: str | None = None

    def source(self, repository: Repository) -> Reference:
        return Reference(repository, self.tag, self.descriptor.digest)

    def target(self, repository: Repository) -> Reference:
        return Reference(repository, self.tag, None if self.tag else self.descriptor.digest)


def discover(client: RegistryClient, at: Endpoint, subjects: list[str]) -> list[Attached]:
    """Everything attached to ``subjects`` (and, recursively, to what is attached) in the
    repository ``at`` serves.

    Only ``at`` is asked. A mirror that served the image is the one place known to answer:
    the registry behind it may be unreachable (networks where only mirrors get out), and a
    mirror's "no such tags" must not send the question on to it.
    """
    tags = set(client.list_tags(at.repository, at=at))
    found: list[Attached] = []
    seen = set(subjects)
    frontier = list(subjects)
    for _ in range(MAX_DEPTH):
        next_frontier: list[str] = []
        for subject in frontier:
            for item in _cosign(client, at, subject, tags) + _referrers(client, at, subject, tags):
                if item.descriptor.digest in seen and item.tag is None:
                    continue
                found.append(item)
                if item.descriptor.digest not in seen:
                    seen.add(item.descriptor.digest)
                    next_frontier.append(item.descriptor.digest)
        frontier = next_frontier
        if not frontier:
            break
    return found


def _cosign(client: RegistryClient, at: Endpoint, subject: str, tags: set[str]) -> list[Attached]:
    found = []
    for suffix, kind in COSIGN_KINDS.items():
        tag = digest_tag(subject) + suffix
        if tag not in tags:
            continue
        descriptor = client.head_manifest(Reference(at.repository, tag), at=at)
        if descriptor is not None:
            found.append(Attached(kind, subject, descriptor, tag))
    return found


def _referrers(
    client: RegistryClient, at: Endpoint, subject: str, tags: set[str]
) -> list[Attached]:
    listed = client.referrers(at.repository, subject, at=at)
    if listed is None:
        listed = _tag_schema_index(client, at, subject, tags)
    return [Attached(REFERRER, subject, d) for d in listed]


def _tag_schema_index(
    client: RegistryClient, at: Endpoint, subject: str, tags: set[str]
) -> list[Descriptor]:
    tag = digest_tag(subject)
    if tag not in tags:
        return []
    index = client.get_manifest(Reference(at.repository, tag), at=at)
    if not index.is_index:
        raise RegistryError(f"{at.repository}:{tag} should be a referrers index, it is not")
    return list(index.children)


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
        entry: dict[str, object] = {
            "mediaType": descriptor.media_type,
            "digest": descriptor.digest,
            "size": descriptor.size,
        }
        if descriptor.artifact_type:
            entry["artifactType"] = descriptor.artifact_type
        if descriptor.annotations:
            entry["annotations"] = dict(descriptor.annotations)
        entries.append(entry)
    document.update(schemaVersion=2, mediaType=mediatypes.OCI_INDEX, manifests=entries)
    return json.dumps(document, separators=(",", ":")).encode()
