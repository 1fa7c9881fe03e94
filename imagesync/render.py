"""Plans and apply reports as text (Terraform-like), JSON and Markdown."""

from __future__ import annotations

import json

from imagesync.apply.report import ApplyReport, ImageResult, Outcome, report_document
from imagesync.plan.document import Action, Change, EntryFix, Fix, Plan, SubChange
from imagesync.words import plural

SYMBOL = {Action.CREATE: "+", Action.SKIP: "=", Action.CONFLICT: "!", Action.ERROR: "x"}
OUTCOME_SYMBOL = {
    Outcome.CREATED: "+",
    Outcome.SKIPPED: "=",
    Outcome.CONFLICT: "!",
    Outcome.FAILED: "x",
}


def human_bytes(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def short_digest(digest: str | None) -> str:
    return digest.split(":", 1)[-1][:12] if digest else "-"


def summary_line(plan: Plan) -> str:
    """``Plan: 3 to create, 10 to skip, 1 conflict.``: the actions' own words, in every format."""
    parts = [_counted(plan.summary())]
    subs = plan.subchange_summary()
    if any(subs.values()):
        parts.append(f"signatures: {_counted(subs)}")
    return "Plan: " + ", ".join(parts) + "."


def _counted(counts: dict[str, int]) -> str:
    parts = [f"{counts['create']:,} to create", f"{counts['skip']:,} to skip"]
    if counts["conflict"]:
        parts.append(plural(counts["conflict"], "conflict"))
    if counts["error"]:
        parts.append(plural(counts["error"], "error"))
    return ", ".join(parts)


def transfer_text(blobs: int, size: int, mounts: int, mounted: int) -> str:
    """What a create (or a whole plan) moves: ``3 blobs, 1.2 MiB`` when all are copied, else
    ``8 blobs, 9.2 MiB: 2 to copy (400.0 KiB), 6 to mount (8.8 MiB)``."""
    text = f"{plural(blobs, 'blob')}, {human_bytes(size)}"
    if mounts:
        text += (
            f": {blobs - mounts} to copy ({human_bytes(size - mounted)}), "
            f"{mounts} to mount ({human_bytes(mounted)})"
        )
    return text


def _change_transfer(change: Change) -> str:
    return transfer_text(
        change.blobs_to_transfer,
        change.bytes_to_transfer,
        change.blobs_to_mount,
        change.bytes_to_mount,
    )


def transfer_line(plan: Plan) -> str | None:
    """The run as a whole: what will cross the wire, and what comes by mount."""
    creates = [c for c in plan.changes if c.action is Action.CREATE]
    if not creates:
        return None
    return (
        "Transfer: "
        + transfer_text(
            sum(c.blobs_to_transfer for c in creates),
            sum(c.bytes_to_transfer for c in creates),
            sum(c.blobs_to_mount for c in creates),
            sum(c.bytes_to_mount for c in creates),
        )
        + "."
    )


def render_plan(
    plan: Plan, fmt: str, *, changed_only: bool = False, plan_file: str | None = None
) -> str:
    """``plan`` as text, JSON or Markdown; ``plan_file``, where it is saved, is named by the
    Markdown when it leaves images out (it stays within GitHub's size limit)."""
    if fmt == "json":
        return plan.to_json()
    if fmt == "markdown":
        from imagesync.markdown import plan_markdown

        return plan_markdown(plan, changed_only=changed_only, plan_file=plan_file)
    return plan_text(plan, changed_only=changed_only)


def _shown(plan: Plan, changed_only: bool) -> list[Change]:
    return [
        c
        for c in plan.changes
        if not changed_only
        or c.action is not Action.SKIP
        or any(s.action is not Action.SKIP for s in c.subchanges)
    ]


def no_changes(plan: Plan) -> str:
    """What --changed-only shows when there is nothing else to show."""
    if not plan.changes:
        return "No changes: the plan holds no images."
    count = len(plan.changes)
    every = "the image is" if count == 1 else f"all {count} images are"
    return f"No changes: {every} in the target already."


def plan_text(plan: Plan, *, changed_only: bool = False) -> str:
    lines = [f"Target: {plan.target_prefix}"]
    if plan.source_layout:
        lines.append(f"Sources: {plan.source_layout} (a layout tree; no source registry is asked)")
    if plan.shard:
        lines.append(f"Shard: {plan.shard} of {plan.images_file.path}")
    elif plan.merged_from:
        lines.append(f"Shards: all {plan.merged_from} of {plan.images_file.path}")
    lines.append("")
    for warning in plan.warnings:
        lines.append(f"warning: {warning}")
    shown = _shown(plan, changed_only)
    for change in shown:
        lines.extend(_change_text(change, plan.images_file.path))
    if not shown:
        lines.append(no_changes(plan))
    lines += ["", summary_line(plan)]
    transfer = transfer_line(plan)
    if transfer:
        lines.append(transfer)
    return "\n".join(lines) + "\n"


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


def artifact_text(change: Change) -> str:
    """What an artifact is, where an image shows its platforms: ``artifact: <type>``."""
    label = "artifact" if len(change.artifact_types) == 1 else "artifacts"
    return f"{label}: {', '.join(change.artifact_types)}"


def fix_text(fix: Fix | None, images_file: str, indent: str = "    ") -> list[str]:
    """A conflict's fix to paste, as lines of text (none when there is no entry to paste)."""
    if fix is None or fix.entry is None:
        return []
    entry = fix.entry
    head = f"{indent}fix: put this in place of {lines_of(entry)} of {images_file}:"
    return [head, *(f"{indent}  {line}" for line in entry.yaml.rstrip("\n").split("\n"))]


def lines_of(entry: EntryFix) -> str:
    """The lines a fix replaces, as a sentence names them: ``line 4``, ``lines 4 to 6``."""
    if entry.first_line == entry.last_line:
        return f"line {entry.first_line}"
    return f"lines {entry.first_line} to {entry.last_line}"


def _subchange_text(sub: SubChange) -> str:
    text = f"    {SYMBOL[sub.action]} {sub.kind} {sub.target} (digest {short_digest(sub.digest)})"
    if sub.action in (Action.CONFLICT, Action.ERROR):
        text += f": {sub.reason}"
    return text


def render_report(report: ApplyReport, fmt: str, *, report_file: str | None = None) -> str:
    if fmt == "json":
        return json.dumps(report_document(report), indent=2) + "\n"
    if fmt == "markdown":
        from imagesync.markdown import report_markdown

        return report_markdown(report, report_file=report_file)
    return report_text(report)


def report_summary(report: ApplyReport) -> str:
    counts = report.counts()
    text = (
        f"Apply: {counts['created']:,} created, {counts['skipped']:,} skipped, "
        f"{plural(counts['conflict'], 'conflict')}, {counts['failed']:,} failed."
    )
    return text + (" Interrupted." if report.interrupted else "")


def report_transfer(report: ApplyReport) -> str:
    """The blobs of the whole run: what crossed the wire, what came by mount."""
    t = report.transfer()
    return (
        f"Blobs: {t.copied} copied ({human_bytes(t.bytes_copied)}), {t.mounted} mounted, "
        f"{t.present} already there."
    )


def report_text(report: ApplyReport) -> str:
    lines: list[str] = []
    images_file = report.images_file.path if report.images_file else "the images file"
    for result in report.results:
        lines.extend(_result_text(result))
        lines.extend(fix_text(result.fix, images_file))
    lines += ["", report_summary(report), report_transfer(report)]
    return "\n".join(lines) + "\n"


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
