"""What a saved plan must pass before apply sends a single request (design.md §5).

A plan travels: it is reviewed on a pull request and applied after the merge, often as a
build artifact. Its checksum catches accidents, but anyone can recompute it, so apply also
checks the plan against what it is applied to: the target given, the source layout given, and
the images file given with ``-i``, entry by entry. The same checks hold for layouts: a target
in a layout tree lies inside the plan's tree, a source read from a source layout lies inside
the plan's source layout, and a plan made without one reads no source from disk.
"""

from __future__ import annotations

from imagesync.content.referrers import (
    MADE_IN_TARGET,
    SIGNING,
    attached_source,
    attached_target,
)
from imagesync.errors import ImagesyncError, PlanRejected, shorten
from imagesync.images.file import ImagesFile
from imagesync.images.shard import outsider
from imagesync.plan.document import Change, Plan
from imagesync.reference import (
    Repository,
    parse_layout_tree,
    parse_reference,
    parse_registry_prefix,
)

_EDITED = "re-run plan; do not edit plan files by hand"
# A hostile plan can hold huge strings; messages quote only the start of them.
_QUOTED = 200


def check_plan(
    plan: Plan,
    images: ImagesFile | None = None,
    target: str | None = None,
    source_layout: str | None = None,
) -> None:
    """Refuse a plan that is not for this images file, target or source layout, before any
    request."""
    prefix = plan.prefix
    if target is not None and parse_registry_prefix(target) != prefix:
        raise PlanRejected(
            f"the plan was made for target {plan.target_prefix}, not {target}",
            "re-run plan with this --target",
        )
    if source_layout is not None and parse_layout_tree(source_layout) != plan.source_tree:
        made_with = plan.source_layout or "the source registries (no --source-layout)"
        raise PlanRejected(
            f"the plan reads its sources from {made_with}, not {parse_layout_tree(source_layout)}",
            "re-run plan with this --source-layout",
        )
    if images is not None:
        if images.sha256 != plan.images_file.sha256:
            made, given = plan.images_file.path, str(images.path)
            source = f"another version of {given}" if made == given else made
            raise PlanRejected(
                f"the plan was made from {source} (sha256 {plan.images_file.sha256[:12]}…), "
                f"not from {given} as it is now (sha256 {images.sha256[:12]}…)",
                f"re-run plan on {given}" + ("" if made == given else f", or apply with -i {made}"),
            )
        if images.target_prefix != prefix:
            raise PlanRejected(
                f"the plan targets {plan.target_prefix}, the images file {images.target_prefix}",
                "re-run plan",
            )
        if images.source_layout != plan.source_tree:
            raise PlanRejected(
                f"the plan reads its sources from {plan.source_layout or 'their registries'}, "
                f"not {images.source_layout or 'their registries'}",
                "re-run plan",
            )
    for change in plan.changes:
        _check_inside(prefix, change.target, change.entry)
        _check_source(plan.source_tree, change)
        _check_attached_names(change, plan)
    _check_repositories(plan)
    check_shard(plan)
    if images is not None:
        _check_entries(plan, images)


def check_shard(plan: Plan) -> None:
    """A shard's plan holds only that shard's entries: a shard plan artifact cannot write
    images of another shard (whose own job would write them too)."""
    shard = plan.shard
    if shard is None:
        return
    found = outsider(shard, plan.prefix, ((c.entry, c.target) for c in plan.changes))
    if found is not None:
        entry, target, number = found
        raise PlanRejected(
            f"the plan is shard {shard}, but its entry {entry} "
            f"({shorten(target, _QUOTED)}) is in shard {number}/{shard.count}",
            _EDITED,
        )


def _check_attached_names(change: Change, plan: Plan) -> None:
    """Every sub-change names what its kind, subject and digest imply, in the image's own
    repositories (:func:`attached_target`): a signature ``sha256-<hex>.sig`` of its subject,
    a referrer by its digest, a tag-schema index ``sha256-<hex>`` of its subject, a signature
    imagesync adds ``sha256-<hex>.sig`` of its subject, in a plan made with a signing key.

    Apply writes those names and no others; this check makes the plan say so, so a reviewer
    never reads one name where another would be written. Whether the subject belongs to the
    image, and the artifact to the subject, only the registries can tell: apply asks them.
    """
    name = f"entry {change.entry} ({shorten(change.target, _QUOTED)})"
    source, target = _repository(change.source), _repository(change.target)
    for sub in change.subchanges:
        what = shorten(sub.kind, 40)
        if sub.subject is None or change.digest is None:
            raise PlanRejected(f"the plan's {name} has a {what} without a subject", _EDITED)
        if sub.kind in MADE_IN_TARGET and sub.digest != sub.subject:
            verb = "signs" if sub.kind == SIGNING else "lists"
            raise PlanRejected(
                f"the plan's {name} has a {what} for {sub.subject} that {verb} {sub.digest}",
                _EDITED,
            )
        if sub.kind == SIGNING and plan.signing is None:
            raise PlanRejected(
                f"the plan's {name} adds a signature, and the plan names no signing key",
                _EDITED,
            )
        if source is None or target is None:
            return  # _check_inside has refused the plan already
        expected = {
            "target": attached_target(sub.kind, target, sub.subject, sub.digest),
            "source": (
                attached_target(sub.kind, target, sub.subject, sub.digest)
                if sub.kind in MADE_IN_TARGET
                else attached_source(sub.kind, source, sub.subject, sub.digest)
            ),
        }
        for field, written in (("target", sub.target), ("source", sub.source)):
            if written != str(expected[field]):
                raise PlanRejected(
                    f"the plan's {name} has a {what} {field} {shorten(written, _QUOTED)}; a "
                    f"{what} of {sub.subject} is {expected[field]}",
                    _EDITED,
                )


def _check_entries(plan: Plan, images: ImagesFile) -> None:
    """Every change must be the one plan makes for an entry of the images file.

    Anyone can recompute a plan's checksum, so an edited plan can pass it; this is what keeps
    such a plan from writing an image or a tag the images file does not ask for (what its
    sub-changes write follows from the change, :func:`_check_attached_names`). Duplicated
    entries (same sync key) are planned once, under the first of them.
    """
    entries = {entry.index: entry for entry in images.entries}
    planned: dict[tuple[str, str], int] = {}
    indices: set[int] = set()
    for change in plan.changes:
        name = f"entry {change.entry} ({shorten(change.target, _QUOTED)})"
        entry = entries.get(change.entry)
        if entry is None:
            raise PlanRejected(f"the plan has {name}, which {images.path} does not have", _EDITED)
        expected = (
            ("source", change.source_text, entry.source_text),
            ("normalised source", change.source, str(entry.origin)),
            ("target", change.target, str(entry.target)),
            ("line", str(change.line), str(entry.line)),
        )
        for what, in_plan, in_file in expected:
            if in_plan != in_file:
                raise PlanRejected(
                    f"the plan's {name} has {what} {shorten(in_plan, _QUOTED)!r}, but entry "
                    f"{entry.index} of {images.path} has {shorten(in_file, _QUOTED)!r}",
                    _EDITED,
                )
        pinned = entry.source.digest
        if pinned and change.digest is not None and change.digest != pinned:
            raise PlanRejected(
                f"the plan's {name} copies {shorten(change.digest, _QUOTED)}, but its source is "
                f"pinned to {pinned}",
                _EDITED,
            )
        first = planned.setdefault(entry.sync_key, entry.index)
        if first != entry.index or entry.index in indices:
            raise PlanRejected(
                f"the plan has {name} more than once (entry {first} is the same work)", _EDITED
            )
        indices.add(entry.index)


def _repository(reference: str) -> Repository | None:
    try:
        return parse_reference(reference).repository
    except ImagesyncError:
        return None


def _check_repositories(plan: Plan) -> None:
    """A repository to create lies inside the plan's prefix, and an image of the plan is to
    be created in it (§14: what a plan asks for is derivable from what it claims)."""
    targets = {str(c.target_reference.repository) for c in plan.changes}
    for repository in plan.repositories:
        name = repository.name
        if not plan.prefix.contains(name) or name == plan.prefix:
            raise PlanRejected(
                f"repository to create {shorten(repository.repository, _QUOTED)} lies outside "
                f"the plan's prefix {plan.prefix}",
                _EDITED,
            )
        if str(name) not in targets:
            raise PlanRejected(
                f"repository to create {shorten(repository.repository, _QUOTED)} is the target "
                "of no image of the plan",
                _EDITED,
            )


def _check_inside(prefix: Repository, target: str, entry: int) -> None:
    try:
        repository = parse_reference(target).repository
    except ImagesyncError as error:
        raise PlanRejected(f"entry {entry}: target {target!r}: {error}", "re-run plan") from None
    if not prefix.contains(repository) or repository == prefix:
        raise PlanRejected(
            f"entry {entry}: target {target} lies outside the plan's prefix {prefix}",
            _EDITED,
        )


def _check_source(sources: Repository | None, change: Change) -> None:
    """A source read from disk comes from the plan's source layout tree, and only a plan made
    with one reads from disk: a plan cannot send a directory of this machine to the target."""
    source = _repository(change.source)
    if source is None:
        return  # the document's own checks refuse names that do not parse
    if sources is None and source.is_layout:
        raise PlanRejected(
            f"entry {change.entry}: source {shorten(change.source, _QUOTED)} is a layout, and "
            "the plan has no source layout",
            _EDITED,
        )
    if sources is not None and not (sources.contains(source) and source != sources):
        raise PlanRejected(
            f"entry {change.entry}: source {shorten(change.source, _QUOTED)} lies outside the "
            f"plan's source layout {sources}",
            _EDITED,
        )
