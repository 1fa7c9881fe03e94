"""What is attached to an image, looked up in a store: discovery (cosign tags, the referrers
API, the tag-schema index), the checks made right before an attached manifest is copied, and
the one decision on a subject's tag-schema index that plan predicts and apply makes.

The names these are found and written under, and what each kind is, are
``content/referrers.py``'s; everything here is asked of one store: where the image was found
(a mirror, the registry, a layout) for discovery, the target for the index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from imagesync.content import mediatypes
from imagesync.content.manifest import Descriptor, Manifest
from imagesync.content.referrers import (
    COSIGN_KINDS,
    COSIGN_SUFFIXES,
    REFERRER,
    Attached,
    attached_source,
    described_as_referrer,
    digest_tag,
)
from imagesync.errors import AuthenticationFailed, RegistryError
from imagesync.redact import excerpt
from imagesync.reference import Reference, Repository
from imagesync.stores.store import Store

# A chain of signatures on signatures deeper than this is not something people publish, nor
# are more artifacts than this attached to one image: past either, the rest are not planned
# (the entry says so).
MAX_DEPTH = 4
MAX_ATTACHED = 1000
# A tag-schema index is checked entry by entry before it is written over; a real one lists a
# handful of referrers.
MAX_INDEX_ENTRIES = 1000
# Why a target that answers referrers itself gets no tag-schema index.
LISTS_REFERRERS = (
    "the target lists referrers by their subject itself (a referrers API, or a layout): no "
    "tag-schema index is needed"
)


class NotAttached(RegistryError):
    """What a plan says is attached to a digest is not, in the registry."""


@dataclass(frozen=True)
class Discovered:
    """What :func:`discover` found, and why it did not follow everything (a bound was met).
    ``tags``: the tag-schema names the repository lists (None when it refused its tag list)."""

    attached: tuple[Attached, ...]
    warnings: tuple[str, ...] = ()
    tags: frozenset[str] | None = None

    def names_others(self, subjects: list[str]) -> bool:
        """Whether the repository's tag-schema names (``sha256-<hex>`` and its ``.sig``,
        ``.att``, ``.sbom``) name a digest other than ``subjects`` and what was found attached
        to them: a child of the image, maybe, with signatures or referrers of its own. True
        when the tag list was refused (nothing rules it out)."""
        if self.tags is None:
            return True
        known = {digest_tag(d) for d in [*subjects, *(a.descriptor.digest for a in self.attached)]}
        return any(tag.partition(".")[0] not in known for tag in self.tags)


def discover(
    found: Store, repository: Repository, subjects: list[str], earlier: Discovered | None = None
) -> Discovered:
    """Everything attached to ``subjects`` (the image and its children) and, recursively, to
    what is attached, in ``repository`` of ``found``, the store where the image was found.

    Only ``found`` is asked. A mirror that served the image is the one place known to answer:
    the registry behind it may be unreachable (networks where only mirrors get out), and a
    mirror's "no such tags" must not send the question on to it.

    Each manifest is followed once, so a graph with a cycle ends: an index whose child is also
    its subject, listed as a referrer of the image it holds. Such a referrer that is the image
    itself or one of its children is still listed (the target's referrers index must name it)
    but not followed. Past :data:`MAX_DEPTH` levels or :data:`MAX_ATTACHED` artifacts nothing
    more is planned, and a warning says what was left. ``earlier``: a discovery in the same
    repository this one follows, whose tag list serves again (not asked twice).
    """
    if earlier is None:
        tags = _digest_tags(found, repository)
    else:
        tags = None if earlier.tags is None else set(earlier.tags)
    attached: list[Attached] = []
    image = frozenset(subjects)
    seen = set(subjects)
    listed: set[tuple[str, str]] = set()
    frontier = list(subjects)
    for depth in range(MAX_DEPTH + 1):
        next_frontier: list[str] = []
        for subject in frontier:
            items = _cosign(found, repository, subject, tags)
            items += _referrers(found, repository, subject, tags)
            for item in items:
                digest = item.descriptor.digest
                if item.tag is None and (
                    (subject, digest) in listed or (digest in seen and digest not in image)
                ):
                    continue
                if depth == MAX_DEPTH:
                    return Discovered(tuple(attached), (_too_deep(subject),), _frozen(tags))
                if len(attached) == MAX_ATTACHED:
                    return Discovered(tuple(attached), (_too_many(subjects[0]),), _frozen(tags))
                attached.append(item)
                listed.add((subject, digest))
                if digest not in seen:
                    seen.add(digest)
                    next_frontier.append(digest)
        frontier = next_frontier
        if not frontier:
            break
    return Discovered(tuple(attached), tags=_frozen(tags))


def _frozen(tags: set[str] | None) -> frozenset[str] | None:
    return None if tags is None else frozenset(tags)


def _digest_tags(found: Store, repository: Repository) -> set[str] | None:
    """The tag-schema names in ``repository`` (sha256-<hex>, its .sig/.att/.sbom, sha512);
    None when the registry refuses the tag list but may serve the manifests (an ACR token
    without ``metadata_read``: argoproj-labs/argocd-image-updater#473): each name is then
    looked up by HEAD."""
    try:
        return set(found.list_tags(repository, prefixes=("sha256-", "sha512-")))
    except RegistryError as error:
        if isinstance(error, AuthenticationFailed) or error.status in (401, 403):
            return None
        raise


def _listed(tag: str, tags: set[str] | None) -> bool:
    return tags is None or tag in tags


def _too_deep(subject: str) -> str:
    return (
        f"artifacts are attached to {subject}, {MAX_DEPTH} levels below the image (a signature "
        f"on a signature on …): what lies deeper than {MAX_DEPTH} levels is not copied"
    )


def _too_many(image: str) -> str:
    return (
        f"more than {MAX_ATTACHED} signatures, attestations and referrers are attached to "
        f"{image} and what is attached to it: the first {MAX_ATTACHED} are copied, the rest "
        "are not"
    )


def _cosign(
    found: Store, repository: Repository, subject: str, tags: set[str] | None
) -> list[Attached]:
    attached = []
    for suffix, kind in COSIGN_KINDS.items():
        tag = digest_tag(subject) + suffix
        if not _listed(tag, tags):
            continue
        descriptor = found.head_manifest(Reference(repository, tag))
        if descriptor is not None:
            attached.append(Attached(kind, subject, descriptor, tag))
    return attached


def _referrers(
    found: Store, repository: Repository, subject: str, tags: set[str] | None
) -> list[Attached]:
    listed = found.referrers(repository, subject)
    if listed is None:
        listed = _tag_schema_index(found, repository, subject, tags)
    return [Attached(REFERRER, subject, d) for d in listed]


def _tag_schema_index(
    found: Store, repository: Repository, subject: str, tags: set[str] | None
) -> list[Descriptor]:
    tag = digest_tag(subject)
    if not _listed(tag, tags) or (
        tags is None and found.head_manifest(Reference(repository, tag)) is None
    ):
        return []
    index = found.get_manifest(Reference(repository, tag))
    if not index.is_index:
        raise RegistryError(f"{repository}:{tag} should be a referrers index, it is not")
    return list(index.children)


def check_attached(
    sources: Store, repository: Repository, kind: str, subject: str, digest: str
) -> Manifest:
    """The manifest ``digest`` of ``repository``, read after the sources have shown that it is
    attached to ``subject``: a cosign tag (``sha256-<hex>.sig``) that resolves to ``digest``,
    or a referrer whose ``subject`` is ``subject``. Raises NotAttached otherwise.

    Reading a cosign artifact by its tag is the read its copy needs anyway; a tag moved since
    plan (a new signature) is reported, not copied under the old plan's name.
    """
    where = attached_source(kind, repository, subject, digest)
    if kind in COSIGN_SUFFIXES:
        manifest = sources.get_manifest(Reference(repository, where.tag))
        if manifest.digest != digest:
            raise NotAttached(
                f"{repository}:{where.tag} holds {manifest.digest} in the source, not the "
                f"planned {digest}",
                "re-run plan",
            )
        return manifest
    manifest = sources.get_manifest(Reference(repository, None, digest))
    _check_subject(manifest, subject, f"{repository}@{digest}")
    return manifest


def _check_subject(manifest: Manifest, subject: str, where: str) -> None:
    declared = manifest.subject
    if declared is None or declared.digest != subject:
        raise NotAttached(
            f"{where} is not a referrer of {subject} (its subject is "
            f"{declared.digest if declared else 'absent'})",
            "re-run plan",
        )


def referrers_index_problem(
    target: Store, repository: Repository, index: Manifest, subject: str
) -> str | None:
    """Why ``index`` (found at ``sha256-<hex of subject>``) is not a referrers index of
    ``subject``, or None when it is one: an OCI index whose every entry, where the manifest is
    in ``repository``, has ``subject`` as its subject. Anything else at that tag (an image
    someone tagged so, an index of platforms) is never written over."""
    if index.media_type != mediatypes.OCI_INDEX:
        return f"is a {excerpt(index.media_type, 100)}, not a referrers index"
    if len(index.children) > MAX_INDEX_ENTRIES:
        return f"lists more than {MAX_INDEX_ENTRIES} manifests, too many to be a referrers index"
    for entry in index.children:
        listed = target.find_manifest(Reference(repository, None, entry.digest))
        declared = listed.subject if listed is not None else None
        if listed is not None and (declared is None or declared.digest != subject):
            return (
                f"lists {entry.digest}, which is not a referrer of {subject}: it is not a "
                "referrers index"
            )
    return None


@dataclass(frozen=True)
class IndexNeed:
    """What the tag-schema index of a subject needs (:func:`referrers_index_need`).

    ``existing``: what its tag holds (not looked at when the target lists referrers itself);
    ``missing``: the referrers it lacks, to be added; ``unneeded``: why nothing is to be
    written; ``problem``: why what the tag holds is not written over.
    """

    existing: Manifest | None = None
    missing: tuple[str, ...] = ()
    unneeded: str | None = None
    problem: str | None = None


def referrers_index_need(
    target: Store, repository: Repository, subject: str, referrers: Sequence[str]
) -> IndexNeed:
    """Whether the tag-schema index of ``subject`` in ``repository`` of ``target`` must be
    written to list ``referrers`` (digests): the one decision plan predicts and apply makes.

    A target that lists referrers by their subject itself (a referrers API, a layout) needs no
    index. An index that lists them all needs no write. What the tag holds is written over
    only when it is a referrers index of ``subject`` (:func:`referrers_index_problem`), and
    only then is it looked at entry by entry.
    """
    if target.referrers(repository, subject) is not None:
        return IndexNeed(unneeded=LISTS_REFERRERS)
    existing = target.find_manifest(Reference(repository, digest_tag(subject)))
    listed = {c.digest for c in existing.children} if existing else set()
    missing = tuple(d for d in dict.fromkeys(referrers) if d not in listed)
    if not missing:
        return IndexNeed(existing, unneeded="lists every referrer")
    if existing is not None:
        problem = referrers_index_problem(target, repository, existing, subject)
        if problem is not None:
            return IndexNeed(existing, missing, problem=problem)
    return IndexNeed(existing, missing)


def referrer_descriptor(
    target: Store, repository: Repository, digest: str, subject: str
) -> Descriptor:
    """The tag-schema index entry for referrer ``digest`` of ``repository``, described from
    the manifest (:func:`described_as_referrer`); NotAttached when its subject is not
    ``subject``."""
    manifest = target.get_manifest(Reference(repository, None, digest))
    _check_subject(manifest, subject, f"{repository}@{digest}")
    return described_as_referrer(manifest)
