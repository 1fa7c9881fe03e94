"""Plans and apply reports as text (Terraform-like), JSON and Markdown."""

from __future__ import annotations

import json
from collections.abc import Iterable

from imagesync.apply.report import ApplyReport, ImageResult, Outcome
from imagesync.plan.document import Action, Change, Plan, SubChange

_SYMBOL = {Action.CREATE: "+", Action.SKIP: "=", Action.CONFLICT: "!", Action.ERROR: "x"}
_OUTCOME_SYMBOL = {
    Outcome.CREATED: "+",
    Outcome.SKIPPED: "=",
    Outcome.CONFLICT: "!",
    Outcome.FAILED: "x",
}
# Reviewers need the problems first; the order within an action stays file order.
_REVIEW_ORDER = (Action.CONFLICT, Action.ERROR, Action.CREATE, Action.SKIP)
COLLAPSE_SKIPS_ABOVE = 10


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
    counts = plan.summary()
    parts = [f"{counts['create']} to create", f"{counts['skip']} unchanged"]
    if counts["conflict"]:
        parts.append(f"{counts['conflict']} conflict" + ("s" if counts["conflict"] > 1 else ""))
    if counts["error"]:
        parts.append(f"{counts['error']} error" + ("s" if counts["error"] > 1 else ""))
    subs = plan.subchange_summary()
    if any(subs.values()):
        text = f"signatures: {subs['create']} to create, {subs['skip']} unchanged"
        if subs["conflict"]:
            text += f", {subs['conflict']} conflict" + ("s" if subs["conflict"] > 1 else "")
        if subs["error"]:
            text += f", {subs['error']} error" + ("s" if subs["error"] > 1 else "")
        parts.append(text)
    return "Plan: " + ", ".join(parts) + "."


def transfer_text(blobs: int, size: int, mounts: int, mounted: int) -> str:
    """What a create (or a whole plan) moves: ``3 blobs, 1.2 MiB`` when all are copied, else
    ``8 blobs, 9.2 MiB: 2 to copy (400.0 KiB), 6 to mount (8.8 MiB)``."""
    text = f"{blobs} blobs, {human_bytes(size)}"
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


def render_plan(plan: Plan, fmt: str, *, changed_only: bool = False) -> str:
    if fmt == "json":
        return plan.to_json()
    if fmt == "markdown":
        return plan_markdown(plan, changed_only=changed_only)
    return plan_text(plan, changed_only=changed_only)


def _shown(plan: Plan, changed_only: bool) -> list[Change]:
    return [
        c
        for c in plan.changes
        if not changed_only
        or c.action is not Action.SKIP
        or any(s.action is not Action.SKIP for s in c.subchanges)
    ]


def plan_text(plan: Plan, *, changed_only: bool = False) -> str:
    lines = [f"Target: {plan.target_prefix}"]
    if plan.source_layout:
        lines.append(f"Sources: {plan.source_layout} (a layout tree; no source registry is asked)")
    lines.append("")
    for warning in plan.warnings:
        lines.append(f"warning: {warning}")
    for change in _shown(plan, changed_only):
        lines.extend(_change_text(change))
    lines += ["", summary_line(plan)]
    transfer = transfer_line(plan)
    if transfer:
        lines.append(transfer)
    return "\n".join(lines) + "\n"


def _change_text(change: Change) -> list[str]:
    head = f"{_SYMBOL[change.action]} {change.action.value:<8} {change.target}"
    lines = [head, f"    source: {change.source_text} (entry {change.entry}, line {change.line})"]
    if change.digest:
        lines.append(f"    digest: {change.digest}")
    if change.platforms:
        lines.append(f"    platforms: {', '.join(change.platforms)}")
    if change.artifact_types:
        lines.append(f"    {_artifact_text(change)}")
    if change.action is Action.CREATE:
        lines.append(f"    transfer: {_change_transfer(change)}")
    if change.action in (Action.CONFLICT, Action.ERROR):
        lines.append(f"    reason: {change.reason}")
    lines.extend(f"    warning: {w}" for w in change.warnings)
    lines.extend(_subchange_text(sub) for sub in change.subchanges)
    return lines


def _artifact_text(change: Change) -> str:
    """What an artifact is, where an image shows its platforms: ``artifact: <type>``."""
    label = "artifact" if len(change.artifact_types) == 1 else "artifacts"
    return f"{label}: {', '.join(change.artifact_types)}"


def _subchange_text(sub: SubChange) -> str:
    text = f"    {_SYMBOL[sub.action]} {sub.kind} {sub.target} ({short_digest(sub.digest)})"
    if sub.action in (Action.CONFLICT, Action.ERROR):
        text += f": {sub.reason}"
    return text


def plan_markdown(plan: Plan, *, changed_only: bool = False) -> str:
    counts = plan.summary()
    title = f"### imagesync plan for `{plan.target_prefix}`"
    if plan.source_layout:
        title += f", sources from `{plan.source_layout}`"
    lines = [title, "", f"**{summary_line(plan)}**", ""]
    transfer = transfer_line(plan)
    if transfer:
        lines += [transfer, ""]
    lines.extend(f"> :warning: {w}" for w in plan.warnings)
    shown = _shown(plan, changed_only)
    for action in _REVIEW_ORDER:
        group = [c for c in shown if c.action is action]
        if not group:
            continue
        title = f"{_SYMBOL[action]} {action.value} ({counts[action.value]})"
        table = _markdown_table(group, action)
        if action is Action.SKIP and len(group) > COLLAPSE_SKIPS_ABOVE:
            lines += ["<details>", f"<summary>{title}</summary>", "", *table, "", "</details>", ""]
        else:
            lines += [f"#### {title}", "", *table, ""]
    problems = [
        (c, s) for c in shown for s in c.subchanges if s.action in (Action.CONFLICT, Action.ERROR)
    ]
    if problems:
        lines += [f"#### ! signatures and referrers ({len(problems)})", ""]
        lines += ["| image | kind | target | reason and fix |", "|---|---|---|---|"]
        lines.extend(
            f"| `{c.target}` | {_SYMBOL[s.action]} {s.kind} | `{s.target}` | {_md(s.reason)} |"
            for c, s in problems
        )
        lines.append("")
    warned = [(c, w) for c in shown for w in c.warnings]
    if warned:
        lines += [f"#### :warning: warnings ({len(warned)})", ""]
        lines += ["| image | warning |", "|---|---|"]
        lines.extend(f"| `{c.target}` | {_md(w)} |" for c, w in warned)
        lines.append("")
    return "\n".join(lines) + "\n"


def _markdown_table(changes: Iterable[Change], action: Action) -> list[str]:
    fix_column = action in (Action.CONFLICT, Action.ERROR)
    header = "| target | source | digest | platforms | transfer | signatures |"
    if fix_column:
        header += " reason and fix |"
    rows = [header, "|" + "---|" * header.count(" |")]
    for c in changes:
        transfer = _change_transfer(c) if c.action is Action.CREATE else "-"
        signatures = ", ".join(f"{_SYMBOL[s.action]} {s.kind}" for s in c.subchanges) or "-"
        contents = [", ".join(c.platforms)] if c.platforms else []
        contents += [_md(_artifact_text(c))] if c.artifact_types else []
        row = (
            f"| `{c.target}` | `{_md(c.source_text)}` (line {c.line}) | "
            f"`{short_digest(c.digest)}` | {'; '.join(contents) or '-'} | {transfer} | "
            f"{signatures} |"
        )
        if fix_column:
            row += f" {_md(c.reason)} |"
        rows.append(row)
    return rows


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_report(report: ApplyReport, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(report_document(report), indent=2) + "\n"
    if fmt == "markdown":
        return report_markdown(report)
    return report_text(report)


def report_document(report: ApplyReport) -> dict[str, object]:
    total = report.transfer()
    return {
        "summary": report.counts(),
        "blobs": {"copied": total.copied, "mounted": total.mounted, "present": total.present},
        "bytes_copied": total.bytes_copied,
        "failed": report.failed,
        "interrupted": report.interrupted,
        "images": [
            {
                "entry": r.entry,
                "source": r.source,
                "target": r.target,
                "digest": r.digest,
                "outcome": r.outcome.value,
                "message": r.message,
                "blobs": {
                    "copied": r.transfer.copied,
                    "mounted": r.transfer.mounted,
                    "present": r.transfer.present,
                },
                "bytes_copied": r.transfer.bytes_copied,
                "signatures": [
                    {
                        "kind": s.kind,
                        "target": s.target,
                        "digest": s.digest,
                        "outcome": s.outcome.value,
                        "message": s.message,
                    }
                    for s in r.subresults
                ],
            }
            for r in report.results
        ],
    }


def report_summary(report: ApplyReport) -> str:
    counts = report.counts()
    text = (
        f"Apply: {counts['created']} created, {counts['skipped']} unchanged, "
        f"{counts['conflict']} conflicts, {counts['failed']} failed."
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
    for result in report.results:
        lines.extend(_result_text(result))
    lines += ["", report_summary(report), report_transfer(report)]
    return "\n".join(lines) + "\n"


def _result_text(result: ImageResult) -> list[str]:
    lines = [f"{_OUTCOME_SYMBOL[result.outcome]} {result.outcome.value:<8} {result.target}"]
    if result.outcome is Outcome.CREATED:
        t = result.transfer
        lines.append(
            f"    {t.copied} blobs copied ({human_bytes(t.bytes_copied)}), {t.mounted} mounted, "
            f"{t.present} already there"
        )
    elif result.outcome is not Outcome.SKIPPED:
        lines.append(f"    {result.message}")
    for sub in result.subresults:
        line = f"    {_OUTCOME_SYMBOL[sub.outcome]} {sub.kind} {sub.target}"
        if sub.outcome in (Outcome.CONFLICT, Outcome.FAILED):
            line += f": {sub.message}"
        lines.append(line)
    return lines


def report_markdown(report: ApplyReport) -> str:
    lines = ["### imagesync apply", "", f"**{report_summary(report)}**", ""]
    lines += [report_transfer(report), ""]
    lines += ["| outcome | target | digest | details |", "|---|---|---|---|"]
    for r in report.results:
        details = [r.message] if r.message else []
        details += [
            f"{_OUTCOME_SYMBOL[s.outcome]} {s.kind} `{s.target}`"
            + (f": {s.message}" if s.outcome in (Outcome.CONFLICT, Outcome.FAILED) else "")
            for s in r.subresults
            if s.outcome is not Outcome.SKIPPED
        ]
        lines.append(
            f"| {_OUTCOME_SYMBOL[r.outcome]} {r.outcome.value} | `{r.target}` | "
            f"`{short_digest(r.digest)}` | {_md('; '.join(details))} |"
        )
    return "\n".join(lines) + "\n"
