"""Plans and apply reports as text (Terraform-like) and JSON.

Every value in them may come from outside (a registry's artifactType, a platform variant, a
reason quoting a registry, a plan file's strings): each line of text passes through
:func:`printable` as it is joined, and JSON through :func:`printable_json`, so a newline or
an escape sequence in a value is shown and never starts a line of its own.
"""

from __future__ import annotations

import json

from imagesync.apply.report import ApplyReport, ImageResult, Outcome, report_document
from imagesync.plan.document import Action, Change, Fix, Plan, SubChange
from imagesync.printable import printable, printable_json
from imagesync.render.common import (
    OUTCOME_SYMBOL,
    SYMBOL,
    artifact_text,
    lines_of,
    no_changes,
    report_summary,
    report_transfer,
    short_digest,
    summary_line,
    transfer_line,
    transfer_text,
)
from imagesync.words import human_bytes, plural


def _change_transfer(change: Change) -> str:
    return transfer_text(
        change.blobs_to_transfer,
        change.bytes_to_transfer,
        change.blobs_to_mount,
        change.bytes_to_mount,
    )


def _shown(plan: Plan, changed_only: bool) -> list[Change]:
    return [
        c
        for c in plan.changes
        if not changed_only
        or c.action is not Action.SKIP
        or any(s.action is not Action.SKIP for s in c.subchanges)
    ]


def plan_text(plan: Plan, *, changed_only: bool = False, merged_from: int = 0) -> str:
    """``merged_from``: the plan was put together from that many shards' plans."""
    lines = [f"Target: {plan.target_prefix}"]
    if plan.source_layout:
        lines.append(f"Sources: {plan.source_layout} (a layout tree; no source registry is asked)")
    if plan.shard:
        lines.append(f"Shard: {plan.shard} of {plan.images_file.path}")
    elif merged_from:
        lines.append(f"Shards: all {merged_from} of {plan.images_file.path}")
    lines.append("")
    for warning in plan.warnings:
        lines.append(f"warning: {warning}")
    for repository in plan.repositories:
        lines += [f"{SYMBOL[repository.action]} repository {repository.repository}"]
        lines += [f"    reason: {repository.reason}"]
    shown = _shown(plan, changed_only)
    for change in shown:
        lines.extend(_change_text(change, plan.images_file.path))
    if not shown:
        lines.append(no_changes(plan))
    lines += ["", summary_line(plan)]
    transfer = transfer_line(plan)
    if transfer:
        lines.append(transfer)
    return joined(lines)


def joined(lines: list[str]) -> str:
    """The lines of a text output, each made printable: a line is one line, whatever its
    values hold."""
    return "".join(printable(line) + "\n" for line in lines)


def _change_text(change: Change, images_file: str) -> list[str]:
    head = f"{SYMBOL[change.action]} {change.action.value:<8} {change.target}"
    lines = [head, f"    source: {change.source_text} (entry {change.entry}, line {change.line})"]
    if change.digest:
        lines.append(f"    digest: {change.digest}")
    if change.platforms:
        lines.append(f"    platforms: {', '.join(change.platforms)}")
    if change.artifact_types:
        lines.append(f"    {artifact_text(change)}")
    if change.action is Action.CREATE:
        lines.append(f"    transfer: {_change_transfer(change)}")
    if change.action in (Action.CONFLICT, Action.ERROR):
        lines.append(f"    reason: {change.reason}")
    lines.extend(fix_text(change.fix, images_file))
    lines.extend(f"    warning: {w}" for w in change.warnings)
    lines.extend(_subchange_text(sub) for sub in change.subchanges)
    return lines


def fix_text(fix: Fix | None, images_file: str, indent: str = "    ") -> list[str]:
    """A conflict's fix to paste, as lines of text (none when there is no entry to paste)."""
    if fix is None or fix.entry is None:
        return []
    entry = fix.entry
    head = f"{indent}fix: put this in place of {lines_of(entry)} of {images_file}:"
    return [head, *(f"{indent}  {line}" for line in entry.yaml.rstrip("\n").split("\n"))]


def _subchange_text(sub: SubChange) -> str:
    text = f"    {SYMBOL[sub.action]} {sub.kind} {sub.target} (digest {short_digest(sub.digest)})"
    if sub.action in (Action.CONFLICT, Action.ERROR):
        text += f": {sub.reason}"
    return text


def report_json(report: ApplyReport) -> str:
    return printable_json(json.dumps(report_document(report), indent=2, ensure_ascii=False)) + "\n"


def report_text(report: ApplyReport) -> str:
    lines: list[str] = []
    images_file = report.images_file.path if report.images_file else "the images file"
    for result in report.results:
        lines.extend(_result_text(result))
        lines.extend(fix_text(result.fix, images_file))
    lines += ["", report_summary(report), report_transfer(report)]
    return joined(lines)


def _result_text(result: ImageResult) -> list[str]:
    lines = [f"{OUTCOME_SYMBOL[result.outcome]} {result.outcome.value:<8} {result.target}"]
    if result.outcome is Outcome.CREATED:
        t = result.transfer
        lines.append(
            f"    {plural(t.copied, 'blob')} copied ({human_bytes(t.bytes_copied)}), "
            f"{t.mounted} mounted, "
            f"{t.present} already there"
        )
    elif result.outcome is not Outcome.SKIPPED:
        lines.append(f"    {result.message}")
    for sub in result.subresults:
        line = f"    {OUTCOME_SYMBOL[sub.outcome]} {sub.kind} {sub.target}"
        if sub.outcome in (Outcome.CONFLICT, Outcome.FAILED):
            line += f": {sub.message}"
        lines.append(line)
    return lines
