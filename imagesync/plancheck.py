"""What a saved plan must pass before apply sends a single request (design.md §5).

A plan travels: it is reviewed on a pull request and applied after the merge, often as a
build artifact. Its checksum catches accidents, but anyone can recompute it, so apply also
checks the plan against what it is applied to: the target given, and the images file given with
``-i``, entry by entry.
"""

from __future__ import annotations

from imagesync.errors import ImagesyncError, PlanRejected, shorten
from imagesync.imagesfile import ImagesFile
from imagesync.plan import Plan
from imagesync.reference import Repository, parse_reference, parse_registry_prefix

_EDITED = "re-run plan; do not edit plan files by hand"
# A hostile plan can hold huge strings; messages quote only the start of them.
_QUOTED = 200


def check_plan(plan: Plan, images: ImagesFile | None = None, target: str | None = None) -> None:
    """Refuse a plan that is not for this images file or target, before any request."""
    prefix = plan.prefix
    if target is not None and parse_registry_prefix(target) != prefix:
        raise PlanRejected(
            f"the plan was made for target {plan.target_prefix}, not {target}",
            "re-run plan with this --target",
        )
    if images is not None:
        if images.sha256 != plan.images_file.sha256:
            raise PlanRejected(
                f"the plan was made from another version of {images.path} "
                f"(sha256 {plan.images_file.sha256[:12]}…, the file is now {images.sha256[:12]}…)",
                "re-run plan on the current images file",
            )
        if images.target_prefix != prefix:
            raise PlanRejected(
                f"the plan targets {plan.target_prefix}, the images file {images.target_prefix}",
                "re-run plan",
            )
    for change in plan.changes:
        _check_inside(prefix, change.target, change.entry)
        for sub in change.subchanges:
            _check_inside(prefix, sub.target, change.entry)
    if images is not None:
        _check_entries(plan, images)


def _check_entries(plan: Plan, images: ImagesFile) -> None:
    """Every change must be the one plan makes for an entry of the images file.

    Anyone can recompute a plan's checksum, so an edited plan can pass it; this is what keeps
    such a plan from writing an image, a tag or a signature the images file does not ask for.
    Duplicated entries (same sync key) are planned once, under the first of them.
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
            ("normalised source", change.source, str(entry.source)),
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
        repositories = {entry.source.repository, entry.target.repository}
        for sub in change.subchanges:
            for what, reference, allowed in (
                ("target", sub.target, {entry.target.repository}),
                ("source", sub.source, repositories),
            ):
                if _repository(reference) not in allowed:
                    raise PlanRejected(
                        f"the plan's {name} has a {shorten(sub.kind, 40)} {what} "
                        f"{shorten(reference, _QUOTED)} outside the image's own repositories "
                        f"({', '.join(sorted(str(r) for r in allowed))})",
                        _EDITED,
                    )


def _repository(reference: str) -> Repository | None:
    try:
        return parse_reference(reference).repository
    except ImagesyncError:
        return None


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
