"""Two plans compared image by image: what a reviewer needs to know changed between them.

The use is "is this still the plan I reviewed?": the plan from the pull request against a fresh
plan made right before apply, or yesterday's plan against today's. Images are matched by their
target reference (the tag that would be written), not by their position in the images file, so
moving an entry, adding comments or re-ordering the file is not a change.

Compared per image: the decision (``action``), the normalised ``source``, the source ``digest``
and ``media_type``, the ``platforms`` (an artifact's ``artifact_types``), the digest already in
the target (``target_digest``), the ``warnings``, and the signature/referrer sub-changes
(matched by their own target). Left out on purpose: what always differs between two runs
(``created``, ``checksum``, ``tool``), where the entry sits in the file (``entry``, ``line``),
the prose ``reason`` (it follows from the fields above), and the transfer estimates
(``blobs_to_transfer``, ``bytes_to_transfer``, and what of them comes by mount), which move
whenever the target gains a shared layer although no decision changed. Per plan: the target
prefix, the source layout, the images file's sha256 (not its path: the same file read from
another directory is the same input) and the plan-level warnings.

deepdiff finds the differences; this module groups them by field so that a list such as the
platforms is reported whole ("a, b -> a") rather than element by element.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TypeAlias

from imagesync.plan.document import Change, Plan, SubChange

JsonValue: TypeAlias = str | int | float | bool | list["JsonValue"] | dict[str, "JsonValue"] | None

# Exit codes of `imagesync diff`: the same convention as `plan --detailed-exitcode`
# (2 = there is something to look at); 1 stays reserved for errors (an unreadable plan).
EXIT_SAME = 0
EXIT_DIFFERENT = 2

IMAGE_FIELDS = (
    "action",
    "source",
    "digest",
    "media_type",
    "platforms",
    "artifact_types",
    "target_digest",
    "warnings",
)
SUBCHANGE_FIELDS = ("kind", "source", "digest", "media_type", "action", "target_digest")


@dataclass(frozen=True)
class FieldChange:
    """One field that differs; ``old``/``new`` are its whole JSON values (None: absent)."""

    field: str
    old: JsonValue
    new: JsonValue


@dataclass(frozen=True)
class SubChangeDiff:
    """A signature or referrer of an image that was added, removed or changed."""

    target: str
    kind: str
    status: str  # "added" | "removed" | "changed"
    old: SubChange | None
    new: SubChange | None
    fields: tuple[FieldChange, ...] = ()


@dataclass(frozen=True)
class ImageDiff:
    """An image (same target reference in both plans) whose compared fields differ."""

    target: str
    old: Change
    new: Change
    fields: tuple[FieldChange, ...]
    subchanges: tuple[SubChangeDiff, ...]


@dataclass(frozen=True)
class PlanDiff:
    old_created: str
    new_created: str
    plan_fields: tuple[FieldChange, ...]
    added: tuple[Change, ...]
    removed: tuple[Change, ...]
    changed: tuple[ImageDiff, ...]
    unchanged: int

    @property
    def same(self) -> bool:
        return not (self.plan_fields or self.added or self.removed or self.changed)

    @property
    def exit_code(self) -> int:
        return EXIT_SAME if self.same else EXIT_DIFFERENT


def diff_plans(old: Plan, new: Plan) -> PlanDiff:
    """Compare two plans; images are matched by target reference."""
    old_by_key = _keyed(old.changes)
    new_by_key = _keyed(new.changes)
    added = tuple(c for key, c in new_by_key.items() if key not in old_by_key)
    removed = tuple(c for key, c in old_by_key.items() if key not in new_by_key)
    changed: list[ImageDiff] = []
    unchanged = 0
    for key, after in new_by_key.items():
        before = old_by_key.get(key)
        if before is None:
            continue
        image = _image_diff(before, after)
        if image is None:
            unchanged += 1
        else:
            changed.append(image)
    return PlanDiff(
        old_created=old.created,
        new_created=new.created,
        plan_fields=_field_changes(_plan_view(old), _plan_view(new)),
        added=added,
        removed=removed,
        changed=tuple(changed),
        unchanged=unchanged,
    )


def _keyed(changes: Iterable[Change]) -> dict[str, Change]:
    """Changes by target reference, in plan order.

    A valid plan has each target once; a repeated one (an error entry can repeat a target) gets
    its occurrence number, so the n-th of one plan is compared with the n-th of the other.
    """
    seen: Counter[str] = Counter()
    keyed: dict[str, Change] = {}
    for change in changes:
        seen[change.target] += 1
        n = seen[change.target]
        keyed[change.target if n == 1 else f"{change.target} (#{n})"] = change
    return keyed


def _plan_view(plan: Plan) -> dict[str, JsonValue]:
    return {
        "target_prefix": plan.target_prefix,
        "source_layout": plan.source_layout,
        "images_file_sha256": plan.images_file.sha256,
        "warnings": list(plan.warnings),
    }


def _view(planned: Change | SubChange, fields: Sequence[str]) -> dict[str, JsonValue]:
    """The compared ``fields`` of an image or a sub-change, as the plan document has them."""
    document = json_value(asdict(planned))
    assert isinstance(document, dict)
    return {name: document[name] for name in fields}


def json_value(value: Any) -> JsonValue:
    """Tuples to lists and enums to their values: the plan document's own JSON shape."""
    loaded: JsonValue = json.loads(json.dumps(value))
    return loaded


def _field_changes(
    old: Mapping[str, JsonValue], new: Mapping[str, JsonValue]
) -> tuple[FieldChange, ...]:
    """The top-level fields deepdiff finds a difference under, each reported whole."""
    # Imported here: deepdiff costs every other command a twentieth of a second to import.
    from deepdiff import DeepDiff

    differences = DeepDiff(dict(old), dict(new), view="tree")
    names: set[str] = set()
    for levels in differences.values():
        for level in levels:
            path = level.path(output_format="list")
            if path:
                names.add(str(path[0]))
    order = list(old) + [name for name in new if name not in old]
    return tuple(FieldChange(name, old.get(name), new.get(name)) for name in order if name in names)


def _image_diff(old: Change, new: Change) -> ImageDiff | None:
    fields = _field_changes(_view(old, IMAGE_FIELDS), _view(new, IMAGE_FIELDS))
    subs = _sub_diffs(old.subchanges, new.subchanges)
    if not fields and not subs:
        return None
    return ImageDiff(new.target, old, new, fields, subs)


def _sub_diffs(old: Sequence[SubChange], new: Sequence[SubChange]) -> tuple[SubChangeDiff, ...]:
    old_by = {s.target: s for s in old}
    new_by = {s.target: s for s in new}
    result: list[SubChangeDiff] = []
    for target, after in new_by.items():
        before = old_by.get(target)
        if before is None:
            result.append(SubChangeDiff(target, after.kind, "added", None, after))
            continue
        fields = _field_changes(_view(before, SUBCHANGE_FIELDS), _view(after, SUBCHANGE_FIELDS))
        if fields:
            result.append(SubChangeDiff(target, after.kind, "changed", before, after, fields))
    result.extend(
        SubChangeDiff(target, before.kind, "removed", before, None)
        for target, before in old_by.items()
        if target not in new_by
    )
    return tuple(result)
