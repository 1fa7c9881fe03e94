"""The planner: resolves every entry against its source and the target and decides.

Per entry (design.md §3): resolve the source (HEAD first), refuse what cannot be synced whole,
HEAD the target tag, then create / skip / conflict — or error, with the registry's own words.
Entries resolve concurrently; the plan keeps file order.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from imagesync import __version__
from imagesync.content import mediatypes
from imagesync.content.documents import json_object
from imagesync.content.manifest import LINUX_AMD64, Descriptor, Manifest, Platform
from imagesync.content.referrers import (
    REFERRER,
)
from imagesync.defaults import DEFAULT_PARALLELISM
from imagesync.errors import ImagesyncError
from imagesync.images.file import ImageEntry, ImagesFile
from imagesync.images.rewrite import next_tag, pinned_source
from imagesync.plan.attached import discover_attached, plan_attached, source_has
from imagesync.plan.document import (
    CREATE_REPOSITORY_REASON,
    Action,
    Change,
    EntryFix,
    Fix,
    ImagesFileInfo,
    Plan,
    RepositoryChange,
)
from imagesync.plan.mounts import with_mounts
from imagesync.reference import Reference, Repository
from imagesync.stores.graph import fetch_image

if TYPE_CHECKING:
    from imagesync.plan.signing import Signing, Verifying
    from imagesync.signing import VerificationKey
    from imagesync.stores.run import RunContext
    from imagesync.stores.store import Store, Stores


@dataclass(frozen=True)
class PlanOptions:
    parallelism: int = DEFAULT_PARALLELISM
    signatures: bool = True
    require_signatures: bool = False
    # The key imagesync signs what lands with (--sign-key), and the keys sources must be
    # signed with (--verify-key, the registries config's verify:).
    signing: Signing | None = None
    verifying: Verifying | None = None


# A pull allowance at or below this is shown in the plan.
LOW_PULLS = 20


class EntryError(ImagesyncError):
    """An entry that cannot be synced as written; becomes an ``error`` change."""


def make_plan(
    images: ImagesFile,
    stores: Stores,
    options: PlanOptions | None = None,
    on_change: Callable[[Change], None] | None = None,
) -> Plan:
    """Plan every entry of ``images`` against the sources and the target of ``stores``,
    concurrently; the plan keeps file order.

    ``on_change`` hears of each entry as soon as its action is known (its sub-changes are
    looked up after that, unless they decide the action: --require-signatures), so that apply
    in the same run can begin a create's copy while the rest is planned.
    """
    options = options or PlanOptions()
    entries = _unique(images.entries)
    kept = {entry.index for entry in entries}
    # Lookups of one entry that need not wait for each other go out at once (the source and
    # the target tag, the children of an index, the target repository); nothing in this
    # pool waits on another of its tasks.
    lookups = ThreadPoolExecutor(max_workers=max(4, 2 * options.parallelism))
    planner = _EntryPlanner(stores, options, lookups, on_change)

    by_entry: dict[int, list[str]] = {}
    for problem in images.warnings:
        if problem.entry_index is not None:
            by_entry.setdefault(problem.entry_index, []).append(problem.message)

    def plan_one(entry: ImageEntry) -> Change:
        return planner.plan(entry, tuple(by_entry.get(entry.index, ())))

    with lookups, ThreadPoolExecutor(max_workers=max(1, options.parallelism)) as pool:
        planned = list(pool.map(plan_one, entries))
    changes = list(with_mounts(stores.run, stores.target, planned, planner.missing))
    creating = {c.target_reference.repository for c in changes if c.action is Action.CREATE}
    repositories = tuple(
        RepositoryChange(str(r), Action.CREATE, CREATE_REPOSITORY_REASON)
        for r in sorted(planner.to_create & creating, key=str)
    )
    # Warnings of the file as a whole, and of entries planned once under an earlier entry.
    plan_warnings = tuple(str(p) for p in images.warnings if p.entry_index not in kept)
    plan_warnings += _rate_limit_warnings(changes, stores.run)
    return Plan(
        tool_version=__version__,
        created=datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        target_prefix=str(images.target_prefix),
        source_layout=str(images.source_layout) if images.source_layout else None,
        images_file=ImagesFileInfo(str(images.path), images.sha256),
        changes=tuple(changes),
        repositories=repositories,
        warnings=plan_warnings,
        shard=images.shard,
        signing=options.signing.planned if options.signing else None,
    )


def _rate_limit_warnings(changes: list[Change], run: RunContext) -> tuple[str, ...]:
    """The pull allowance a registry said is left (Docker Hub's ``ratelimit-remaining``),
    shown when it is low or apply needs more than it."""
    needed: dict[str, int] = {}
    for change in changes:
        if change.digest is None:
            continue
        host = change.source_reference.repository.endpoint
        needed.setdefault(host, 0)
        if change.action is Action.CREATE:
            # The index (or manifest) and one manifest per platform are GETs that count.
            needed[host] += 1 + len(change.platforms)
    warnings = []
    for host, count in sorted(needed.items()):
        remaining = run.pulls_left(host)
        if remaining is not None and count > remaining:
            warnings.append(
                f"{host} allows {remaining} more pulls now, apply needs about {count}: it would "
                "hit the rate limit (log in for a higher limit, use a mirror, or apply in parts)"
            )
        elif remaining is not None and remaining <= LOW_PULLS:
            warnings.append(
                f"{host} allows only {remaining} more pulls now (ratelimit-remaining); apply "
                f"needs about {count}"
            )
    return tuple(warnings)


def _unique(entries: Iterable[ImageEntry]) -> list[ImageEntry]:
    """The same source for the same target twice is one change (the loader warned of it)."""
    seen: set[tuple[str, str]] = set()
    unique = []
    for entry in entries:
        if entry.sync_key not in seen:
            seen.add(entry.sync_key)
            unique.append(entry)
    return unique


class _EntryPlanner:
    def __init__(
        self,
        stores: Stores,
        options: PlanOptions,
        lookups: ThreadPoolExecutor,
        on_change: Callable[[Change], None] | None = None,
    ) -> None:
        self.sources = stores.sources
        self.target = stores.target
        self.run = stores.run
        self.options = options
        self.lookups = lookups
        self.on_change = on_change or (lambda change: None)
        # Per create's target, the blobs its repository lacks.
        self.missing: dict[str, tuple[Descriptor, ...]] = {}
        # Target repositories apply creates before its first write (ECR's, with
        # create_repositories: true).
        self.to_create: set[Repository] = set()
        self._lock = threading.Lock()

    def plan(self, entry: ImageEntry, warnings: tuple[str, ...]) -> Change:
        base = Change(
            entry=entry.index,
            line=entry.line,
            source_text=entry.source_text,
            source=str(entry.origin),
            target=str(entry.target),
            action=Action.ERROR,
            reason="",
            warnings=warnings,
        )
        told = False
        verify_with = self._verify_keys(entry)
        try:
            base, existing, found = self._resolve(entry, base)
            change, manifest = self._decide(entry, base, existing)
            if not self.options.require_signatures and not verify_with:
                # Told before its signatures are looked up, which no longer changes its action
                # (a failed lookup is a warning).
                self.on_change(change)
                told = True
            if verify_with and change.action in (Action.CREATE, Action.SKIP):
                _verify(found, entry, change, verify_with)
            if self.options.signatures and change.action in (Action.CREATE, Action.SKIP):
                change = self._attach(entry, change, manifest, found)
            if self.options.require_signatures and change.action is not Action.CONFLICT:
                _require_signature(change)
            if self.options.signing and change.action in (Action.CREATE, Action.SKIP):
                change = self._sign(change, manifest, found)
        except ImagesyncError as error:
            change = replace(base, action=Action.ERROR, reason=str(error))
        if not told:
            self.on_change(change)
        return change

    def _verify_keys(self, entry: ImageEntry) -> tuple[VerificationKey, ...]:
        """The keys the entry's source must be signed with: those for every source and those
        of its registry, as the images file names it (a mirror serves it, the publisher's key
        signed it)."""
        verifying = self.options.verifying
        return verifying.keys_for(entry.source.repository.registry) if verifying else ()

    def _sign(self, change: Change, manifest: Manifest | None, found: Store) -> Change:
        from imagesync.plan.signing import plan_signing

        assert self.options.signing is not None and manifest is not None
        signing = plan_signing(self.target, found, change, manifest, self.options.signing)
        return replace(change, subchanges=(*change.subchanges, *signing))

    def _resolve(self, entry: ImageEntry, base: Change) -> tuple[Change, Descriptor | None, Store]:
        """The source's digest and media type, what the target tag holds, and where the
        source was found. Both HEADs: a skip costs no manifest GET anywhere (design §16:
        Docker Hub's quota and Harbor's retention count GETs, not HEADs)."""
        target = self.lookups.submit(self.target.head_manifest, entry.target)
        located = self.sources.locate(entry.origin)
        if located is None:
            raise EntryError(
                f"source {entry.origin} not found",
                "check the name, the tag or digest, and that the image is public or you are "
                "logged in; with --source-layout, that the export wrote it",
            )
        existing = target.result()
        found = located.descriptor
        change = replace(
            base,
            digest=found.digest,
            media_type=found.media_type,
            target_digest=existing.digest if existing else None,
        )
        return change, existing, located.found

    def _attach(
        self, entry: ImageEntry, change: Change, manifest: Manifest | None, found: Store
    ) -> Change:
        """The change with what is attached to the image (and, for an index, to its children)
        as sub-changes, looked up where the image was found.

        A lookup that fails leaves the image planned without them and says so: signatures are
        copied by the next plan that can read them, an image held back now is not. With
        --require-signatures it is an error: whether the image is signed is not known.
        """
        try:
            attached = discover_attached(entry, change, manifest, found)
        except ImagesyncError as error:
            if self.options.require_signatures:
                raise EntryError(
                    f"cannot tell whether {entry.origin} is signed (--require-signatures): its "
                    f"signatures could not be looked up at {found.where}: {error.message}",
                    error.hint,
                ) from None
            warning = (
                f"signatures and referrers could not be looked up at {found.where}, so none "
                f"are planned with the image: {error}"
            )
            return replace(change, warnings=(*change.warnings, warning))
        return replace(
            change,
            subchanges=plan_attached(self.target, entry, attached.attached, found),
            warnings=change.warnings + attached.warnings,
        )

    def _decide(
        self, entry: ImageEntry, base: Change, existing: Descriptor | Manifest | None
    ) -> tuple[Change, Manifest | None]:
        source = entry.origin
        assert base.digest is not None
        pinned = source.with_tag(None).with_digest(base.digest)
        if existing is not None and existing.digest == base.digest:
            manifest = _skipped_manifest(self.target, entry, base, self.options.signing is not None)
            skip = replace(base, action=Action.SKIP, reason="already in the target")
            if manifest is None:
                return skip, None
            in_target = entry.target.with_tag(None).with_digest(manifest.digest)
            return self._with_contents(entry, skip, manifest, self.target, in_target), manifest
        held = existing if isinstance(existing, Manifest) or existing is None else None
        if existing is not None and held is None:  # a conflict: its fix needs the manifest
            held = self.target.get_manifest(
                entry.target.with_tag(None).with_digest(existing.digest)
            )
        return self._decide_held(entry, base, held, pinned)

    def _decide_held(
        self, entry: ImageEntry, base: Change, existing: Manifest | None, pinned: Reference
    ) -> tuple[Change, Manifest]:
        # A create asks whether the target repository holds anything while the source's
        # manifests come.
        probe = None
        if base.target_digest is None:
            probe = self.lookups.submit(self.run.is_new, entry.target.repository)
        manifest = self.sources.get_manifest(pinned)
        base = self._with_contents(entry, base, manifest, self.sources, pinned)
        if probe is None:
            assert existing is not None  # a conflict: the target tag holds another digest
            return self._conflict(entry, base, existing), manifest
        new = probe.result()
        if new and must_create(self.run, entry.target.repository):
            with self._lock:
                self.to_create.add(entry.target.repository)
        missing = self._missing_blobs(manifest, pinned, entry.target.repository, new)
        self.missing[str(entry.target)] = missing
        blobs, size = len(missing), sum(b.size for b in missing)
        create = replace(
            base,
            action=Action.CREATE,
            reason="not in the target",
            blobs_to_transfer=blobs,
            bytes_to_transfer=size,
        )
        return create, manifest

    def _conflict(self, entry: ImageEntry, base: Change, existing: Manifest) -> Change:
        """The conflict, with its fix: the entry pinned to the target's digest when the
        source still serves it and that entry plans to a skip (re-published upstream tags are
        the usual cause), else the source's content under a new tag."""
        assert base.digest is not None and base.target_digest is not None
        held = source_has(self.sources, entry.origin.repository, base.target_digest)
        why = (
            f"target tag {entry.target} holds {base.target_digest}, the source "
            f"{entry.source_text} is now {base.digest}; tags are immutable, so it is not "
            "overwritten. "
        )
        if held is None:
            return replace(
                base,
                action=Action.CONFLICT,
                reason=why + "Pin the source by digest to the target's digest, or pick a new tag",
            )
        tag = entry.target.tag
        assert tag is not None
        if held:
            pin = _pinned_entry(entry, base.target_digest, existing)
            refused = self._refuses(pin, base, existing)
            if refused is None:
                fix = f"The source still serves {base.target_digest}: pin the entry to it"
                edit = _entry_fix(entry, pin.source_text, tag, pin.amd64_only)
                return replace(
                    base,
                    action=Action.CONFLICT,
                    reason=why + fix,
                    fix=Fix(target_digest_at_source=True, entry=edit),
                )
            why += (
                f"The source still serves {base.target_digest}, but no entry of the file can "
                "keep this tag (the target holds an image the source no longer offers under "
                f"it): the entry pinned to it would be an error, {refused}. "
            )
        else:
            why += f"{base.target_digest} is gone from the source: no entry of the file can keep "
            why += "this tag. "
        return self._new_tag(entry, base, why, held)

    def _refuses(self, pin: ImageEntry, base: Change, existing: Manifest) -> str | None:
        """Why the entry ``pin`` (the conflict's entry pinned to what the target tag holds)
        would not plan to a skip, or None: it is planned in memory by the planner's own
        decision against what plan read of the target (for a single image, its config). The
        platform rule is asked too, though a skip is decided by HEADs alone: a fix is an entry
        that stays right when the tag has to be copied again."""
        digest = existing.digest
        held = replace(base, digest=digest, media_type=existing.media_type, warnings=())
        in_target = pin.target.with_tag(None).with_digest(digest)
        try:
            self._with_contents(pin, held, existing, self.target, in_target)
            change, _ = self._decide(pin, held, existing)
        except EntryError as error:
            return error.message
        return None if change.action is Action.SKIP else f"it would be a {change.action.value}"

    def _new_tag(self, entry: ImageEntry, base: Change, why: str, held: bool) -> Change:
        """The conflict whose target tag no entry can keep: the source's content suggested
        under a new tag. Its entry is given when the source no longer serves the target's
        digest (``held`` False); a fix that says the source serves it pins it, so otherwise
        the reason alone names the new tag."""
        assert base.digest is not None and entry.target.tag is not None
        to = next_tag(entry.target.tag)
        source = pinned_source(entry, base.digest)
        if held:
            advice = f'Mirror the source\'s content under a new tag: source "{source}", tag "{to}"'
            fix = Fix(target_digest_at_source=True)
            return replace(base, action=Action.CONFLICT, reason=why + advice, fix=fix)
        advice = f"Give its new content a new tag, e.g. {to}"
        edit = _entry_fix(entry, source, to, entry.amd64_only)
        return replace(
            base,
            action=Action.CONFLICT,
            reason=why + advice,
            fix=Fix(target_digest_at_source=False, entry=edit),
        )

    def _with_contents(
        self, entry: ImageEntry, change: Change, manifest: Manifest, store: Store, at: Reference
    ) -> Change:
        """``change`` with what it copies (``manifest``, read from ``at`` in ``store``): the
        platforms of an image, the types of an artifact.

        The platform rule is for images: an image manifest alone only with amd64Only, and then
        linux/amd64. An artifact (a Helm chart, a WASM module, …; the content layer says what
        is one) has no platform: it is copied as it is, and amd64Only on it is a warning.
        """
        if manifest.is_index:
            platforms, artifacts = _index_contents(self.lookups, manifest, store, at)
        elif manifest.is_artifact:
            assert manifest.artifact_type is not None  # an artifact says its type
            platforms, artifacts = (), (manifest.artifact_type,)
        else:
            platform = _single_platform(entry, manifest, store, at.repository)
            return replace(change, platforms=(str(platform),))
        warnings = change.warnings
        if entry.amd64_only and artifacts and not platforms:
            warnings += (
                f"amd64Only means nothing for an artifact ({', '.join(artifacts)}): it has no "
                "platform and is copied as it is; remove amd64Only from the entry",
            )
        return replace(change, platforms=platforms, artifact_types=artifacts, warnings=warnings)

    def _missing_blobs(
        self, manifest: Manifest, source: Reference, target: Repository, new: bool
    ) -> tuple[Descriptor, ...]:
        """The blobs of this image that the target lacks (all of them when the target
        repository is ``new``)."""
        # The children of an index at once (fetch_image then finds them known), and the
        # blobs at once; none is asked for in a new repository, nor handed to a thread.
        list(self.lookups.map(lambda c: _fetch_quietly(self.sources, source, c), manifest.children))
        image = fetch_image(self.sources, source, manifest)
        if new:
            return image.blobs
        held = self.lookups.map(lambda b: self.target.has_blob(target, b), image.blobs)
        return tuple(b for b, there in zip(image.blobs, held, strict=True) if not there)


def _index_contents(
    lookups: ThreadPoolExecutor, index: Manifest, store: Store, at: Reference
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The platforms an index lists, and the types of the artifacts in it: its own
    artifactType, a child's as its entry says, else as the child's manifest says. Only a
    child whose entry says neither platform nor artifactType is read for it (entries of
    image indexes carry a platform)."""
    platforms = {str(c.platform) for c in index.children if c.platform is not None}
    artifacts = {c.artifact_type for c in index.children if c.artifact_type}
    if index.is_artifact and index.artifact_type:
        artifacts.add(index.artifact_type)
    unknown = [c for c in index.children if c.platform is None and not c.artifact_type]
    for child in lookups.map(lambda c: _fetch_quietly(store, at, c), unknown):
        if child is not None and child.is_artifact and child.artifact_type:
            artifacts.add(child.artifact_type)
    return tuple(sorted(platforms)), tuple(sorted(artifacts))


def _skipped_manifest(
    target: Store, entry: ImageEntry, base: Change, needed: bool
) -> Manifest | None:
    """A skip's manifest, decided by two HEADs: read only where reading is free (a layout) or
    ``needed`` (signing). A skip costs no manifest GET at a registry (design §16), so its
    platforms are not shown; its children's signatures are looked up all the same
    (:func:`imagesync.plan.attached.discover_attached`)."""
    assert base.digest is not None
    in_target = entry.target.with_tag(None).with_digest(base.digest)
    manifest = target.known_manifest(in_target)
    if manifest is None and needed:
        manifest = target.get_manifest(in_target)
    return manifest


def must_create(run: RunContext, repository: Repository) -> bool:
    """Whether new target ``repository`` is to be created by apply before its first write (its
    registry creates none on push: ECR). EntryError names the command that creates it when
    the registries config does not let imagesync do so: nothing is written to it."""
    missing = run.missing_repository(repository)
    if missing is None:
        return False
    if not missing.may_create:
        raise EntryError(missing.problem, missing.hint)
    return True


def _fetch_quietly(store: Store, at: Reference, child: Descriptor) -> Manifest | None:
    """Read a child manifest ahead; a failure is left for fetch_image to meet and say."""
    with contextlib.suppress(ImagesyncError):
        return store.get_manifest(at.with_digest(child.digest))
    return None


def _pinned_entry(entry: ImageEntry, digest: str, held: Manifest) -> ImageEntry:
    """The entry pinned to ``digest``, the manifest the target tag holds, as its fix writes
    it: same target, and amd64Only where only it lets a single image through (an index
    keeps the entry's; an artifact has no platform, and amd64Only on it is a warning)."""
    single_image = not held.is_index and not held.is_artifact
    amd64_only = single_image or (entry.amd64_only and held.is_index)
    return replace(
        entry,
        source_text=pinned_source(entry, digest),
        source=entry.source.with_tag(None).with_digest(digest),
        origin=entry.origin.with_tag(None).with_digest(digest),
        amd64_only=amd64_only,
    )


def _entry_fix(entry: ImageEntry, source: str, tag: str, amd64_only: bool) -> EntryFix:
    """A fix's entry, written where ``entry`` is (its lines, its indentation)."""
    return EntryFix(
        source=source,
        tag=tag,
        amd64_only=amd64_only,
        first_line=entry.line,
        last_line=max(entry.line, entry.last_line),
        indent=entry.indent,
        key_indent=entry.key_indent,
    )


def _single_platform(
    entry: ImageEntry, manifest: Manifest, store: Store, repository: Repository
) -> Platform:
    """The platform of a single image manifest, which the platform rule must allow."""
    platform = _config_platform(manifest, store, repository)
    if not entry.amd64_only:
        raise EntryError(
            f"source {entry.origin} is a single-platform image ({platform}), not an index",
            "sync its multi-platform index instead, or set 'amd64Only: true' on the entry "
            "if a single linux/amd64 image is what you want",
        )
    if platform != LINUX_AMD64:
        raise EntryError(
            f"source {entry.origin} is {platform}, but amd64Only allows only linux/amd64",
            "pick the linux/amd64 image's digest, or sync the multi-platform index",
        )
    return platform


def _config_platform(manifest: Manifest, store: Store, repository: Repository) -> Platform:
    config = manifest.config
    if config is None:
        raise EntryError(f"manifest {manifest.digest} has no config")
    raw = store.get_blob(repository, config.digest)
    platform = Platform.from_json(json_object(raw, f"the image config {config.digest}"))
    assert platform is not None  # from a JSON object, always
    return platform


def _verify(
    found: Store, entry: ImageEntry, change: Change, keys: tuple[VerificationKey, ...]
) -> None:
    """Raise EntryError unless the image carries a cosign signature by one of ``keys``."""
    from imagesync.plan.signing import verify_source

    assert change.digest is not None
    try:
        verification = verify_source(found, entry.origin.repository, change.digest, keys)
    except ImagesyncError as error:
        names = ", ".join(key.name for key in keys)
        raise EntryError(
            f"cannot verify source {change.source} with the keys given ({names}): its cosign "
            f"signatures could not be read at {found.where}: {error.message}",
            error.hint,
        ) from None
    if not verification.ok:
        raise EntryError(
            f"source {change.source}: {verification.message}",
            "sync only images signed with one of the keys: check the key (--verify-key, the "
            "registries config's verify:), or that the publisher signed this digest",
        )


def _require_signature(change: Change) -> None:
    signed = any(
        s.subject == change.digest
        and (
            s.kind == "signature"
            or (s.kind == REFERRER and s.artifact_type in mediatypes.SIGNATURE_ARTIFACT_TYPES)
        )
        for s in change.subchanges
    )
    if not signed:
        raise EntryError(
            f"source {change.source} has no signature (--require-signatures): no cosign "
            "signature tag, and no Sigstore or Notary Project signature among its referrers",
            "sign the image (cosign sign, notation sign) or sync it without --require-signatures",
        )
