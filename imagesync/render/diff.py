"""Two plans' differences as a reviewer reads them: text, JSON and Markdown
(:mod:`imagesync.plan.diff` finds them)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict

from imagesync.defaults import FORMATS
from imagesync.plan.diff import (
    FieldChange,
    JsonValue,
    PlanDiff,
    SubChangeDiff,
    diff_plans,
    json_value,
)
from imagesync.plan.document import Change
from imagesync.printable import printable, printable_json
from imagesync.render.escape import code, row, table


def summary_line(diff: PlanDiff) -> str:
    if diff.same:
        return f"No differences: {diff.unchanged} images with the same decisions."
    text = (
        f"Diff: {len(diff.added)} added, {len(diff.removed)} removed, "
        f"{len(diff.changed)} changed, {diff.unchanged} unchanged"
    )
    if diff.plan_fields:
        text += "; plan: " + ", ".join(f.field for f in diff.plan_fields) + " changed"
    return text + "."


def render_diff(diff: PlanDiff, fmt: str) -> str:
    if fmt == "json":
        return printable_json(json.dumps(diff_document(diff), indent=2, ensure_ascii=False)) + "\n"
    if fmt == "markdown":
        return diff_markdown(diff)
    if fmt == "text":
        return diff_text(diff)
    raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


def show_value(value: JsonValue) -> str:
    """A field value in one line: lists joined, digests kept whole, absent as "-"."""
    if value is None or value == []:
        return "-"
    if isinstance(value, list):
        return ", ".join(show_value(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={show_value(v)}" for k, v in value.items())
    return str(value)


def _field_line(change: FieldChange) -> str:
    return f"{change.field}: {show_value(change.old)} -> {show_value(change.new)}"


def _brief(change: Change) -> str:
    digest = f", {change.digest}" if change.digest else ""
    return f"{change.action.value}{digest}; source {change.source_text}"


def diff_text(diff: PlanDiff) -> str:
    lines = [f"Old plan: {diff.old_created}", f"New plan: {diff.new_created}", ""]
    lines.extend(f"plan {_field_line(f)}" for f in diff.plan_fields)
    for change in diff.added:
        lines.append(f"+ added    {change.target} ({_brief(change)})")
    for change in diff.removed:
        lines.append(f"- removed  {change.target} ({_brief(change)})")
    for image in diff.changed:
        lines.append(f"~ changed  {image.target}")
        lines.extend(f"    {_field_line(f)}" for f in image.fields)
        lines.extend(f"    {line}" for line in _sub_lines(image.subchanges))
    lines += ["", summary_line(diff)]
    # Values come from plan files: each line made printable stays one line.
    return "".join(printable(line) + "\n" for line in lines)


_SUB_SYMBOL = {"added": "+", "removed": "-", "changed": "~"}


def _sub_lines(subs: Iterable[SubChangeDiff]) -> list[str]:
    lines: list[str] = []
    for sub in subs:
        present = sub.new or sub.old
        assert present is not None
        head = f"{_SUB_SYMBOL[sub.status]} {sub.kind} {sub.target}"
        if sub.status == "changed":
            lines.append(head + ": " + "; ".join(_field_line(f) for f in sub.fields))
        else:
            lines.append(f"{head} ({present.action.value}, {present.digest})")
    return lines


def diff_document(diff: PlanDiff) -> dict[str, JsonValue]:
    def field(change: FieldChange) -> JsonValue:
        return {"field": change.field, "old": change.old, "new": change.new}

    def sub(change: SubChangeDiff) -> JsonValue:
        return {
            "target": change.target,
            "kind": change.kind,
            "status": change.status,
            "old": json_value(asdict(change.old)) if change.old else None,
            "new": json_value(asdict(change.new)) if change.new else None,
            "fields": [field(f) for f in change.fields],
        }

    return {
        "same": diff.same,
        "old_created": diff.old_created,
        "new_created": diff.new_created,
        "summary": {
            "added": len(diff.added),
            "removed": len(diff.removed),
            "changed": len(diff.changed),
            "unchanged": diff.unchanged,
        },
        "plan": [field(f) for f in diff.plan_fields],
        "added": [json_value(asdict(c)) for c in diff.added],
        "removed": [json_value(asdict(c)) for c in diff.removed],
        "changed": [
            {
                "target": image.target,
                "fields": [field(f) for f in image.fields],
                "subchanges": [sub(s) for s in image.subchanges],
            }
            for image in diff.changed
        ],
    }


def diff_markdown(diff: PlanDiff) -> str:
    """A table row per difference; every value from the plans through
    :mod:`imagesync.render.escape`, so none can break the table or be acted on."""
    lines = ["### imagesync plan diff", "", f"**{summary_line(diff)}**", ""]
    if diff.same:
        return "\n".join(lines) + "\n"
    rows = [
        row(["plan", f.field, code(show_value(f.old)), code(show_value(f.new))])
        for f in diff.plan_fields
    ]
    rows += [row([code(c.target), "+ added", "-", code(_brief(c))]) for c in diff.added]
    rows += [row([code(c.target), "- removed", code(_brief(c)), "-"]) for c in diff.removed]
    for image in diff.changed:
        rows += [
            row([code(image.target), f.field, code(show_value(f.old)), code(show_value(f.new))])
            for f in image.fields
        ]
        rows += [row([code(image.target), code(s), "", ""]) for s in _sub_lines(image.subchanges)]
    lines += [*table(["image", "what", "old", "new"]), *rows, ""]
    return "\n".join(lines) + "\n"


def diff_command(old_path: str, new_path: str, fmt: str = "text") -> tuple[str, int]:
    """``imagesync diff OLD NEW``: the rendered diff and the exit code (0 same, 2 different).

    Each is a plan file or a directory of one plan's shards (:func:`read_plans`), read with
    :meth:`Plan.from_document`, so a damaged or edited plan raises
    :class:`~imagesync.errors.PlanRejected` (the CLI's usual handling: message, fix, exit 1)
    instead of being compared.
    """
    from imagesync.plan.merge import read_plans

    diff = diff_plans(read_plans([old_path]).plan, read_plans([new_path]).plan)
    return render_diff(diff, fmt), diff.exit_code
