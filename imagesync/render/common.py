"""What the text and the Markdown of plans and apply reports say alike: the symbols of
actions and outcomes, counts, sizes and the sentences that sum a plan or a report up.

A reader who sees both (the log and the pull request) reads the same words in each.
"""

from __future__ import annotations

from imagesync.apply.report import ApplyReport, Outcome
from imagesync.plan.document import Action, Change, EntryFix, Plan
from imagesync.words import human_bytes, plural

SYMBOL = {Action.CREATE: "+", Action.SKIP: "=", Action.CONFLICT: "!", Action.ERROR: "x"}
OUTCOME_SYMBOL = {
    Outcome.CREATED: "+",
    Outcome.SKIPPED: "=",
    Outcome.CONFLICT: "!",
    Outcome.FAILED: "x",
}


def short_digest(digest: str | None) -> str:
    return digest.split(":", 1)[-1][:12] if digest else "-"


def summary_line(plan: Plan) -> str:
    """``Plan: 3 to create, 10 to skip, 1 conflict.``: the actions' own words, in every format
    (``Plan: 2 repositories to create, 3 to create, …`` when it creates repositories: ECR)."""
    parts = [_counted(plan.summary())]
    if plan.repositories:
        parts.insert(0, f"{plural(len(plan.repositories), 'repository', 'repositories')} to create")
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


def no_changes(plan: Plan) -> str:
    """What --changed-only shows when there is nothing else to show."""
    if not plan.changes:
        return "No changes: the plan holds no images."
    count = len(plan.changes)
    every = "the image is" if count == 1 else f"all {count} images are"
    return f"No changes: {every} in the target already."


def artifact_text(change: Change) -> str:
    """What an artifact is, where an image shows its platforms: ``artifact: <type>``."""
    label = "artifact" if len(change.artifact_types) == 1 else "artifacts"
    return f"{label}: {', '.join(change.artifact_types)}"


def lines_of(entry: EntryFix) -> str:
    """The lines a fix replaces, as a sentence names them: ``line 4``, ``lines 4 to 6``."""
    if entry.first_line == entry.last_line:
        return f"line {entry.first_line}"
    return f"lines {entry.first_line} to {entry.last_line}"


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
    text = (
        f"Blobs: {t.copied} copied ({human_bytes(t.bytes_copied)}), {t.mounted} mounted, "
        f"{t.present} already there."
    )
    if t.resumes:
        count = sum(n for _, n, _ in t.resumes)
        spared = sum(b for _, _, b in t.resumes)
        text += (
            f" {count} resume{'s' if count != 1 else ''} of {len(t.resumes)} "
            f"blob{'s' if len(t.resumes) != 1 else ''} ({human_bytes(spared)} not sent again)."
        )
    return text
