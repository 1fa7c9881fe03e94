"""Plans and apply reports as text (Terraform-like), JSON and Markdown.

:mod:`.text` writes text and JSON, :mod:`.markdown` Markdown for GitHub; what they say alike
is in :mod:`.common`, which both import and which imports neither. Markdown is loaded only when
it is asked for: outside GitHub Actions nobody reads it, and it costs start-up time.
"""

from __future__ import annotations

from imagesync.apply.report import ApplyReport
from imagesync.defaults import MARKDOWN_MAX_BYTES
from imagesync.plan.document import Plan
from imagesync.render.text import plan_text, report_json, report_text

__all__ = ["plan_text", "render_plan", "render_report"]


def render_plan(
    plan: Plan,
    fmt: str,
    *,
    changed_only: bool = False,
    plan_file: str | None = None,
    merged_from: int = 0,
    max_bytes: int = MARKDOWN_MAX_BYTES,
) -> str:
    """``plan`` as text, JSON or Markdown; ``plan_file``, where it is saved, is named by the
    Markdown when it leaves images out (it stays within ``max_bytes``, UTF-8); ``merged_from``:
    the plan was put together from that many shards' plans (``show`` of a plan's shards)."""
    if fmt == "json":
        return plan.to_json()
    if fmt == "markdown":
        from imagesync.render.markdown import plan_markdown

        return plan_markdown(
            plan,
            changed_only=changed_only,
            plan_file=plan_file,
            merged_from=merged_from,
            max_bytes=max_bytes,
        )
    return plan_text(plan, changed_only=changed_only, merged_from=merged_from)


def render_report(
    report: ApplyReport,
    fmt: str,
    *,
    report_file: str | None = None,
    max_bytes: int = MARKDOWN_MAX_BYTES,
) -> str:
    """``report`` as text, JSON or Markdown; ``report_file``, where it is saved, is named by the
    Markdown when it leaves images out (it stays within ``max_bytes``)."""
    if fmt == "json":
        return report_json(report)
    if fmt == "markdown":
        from imagesync.render.markdown import report_markdown

        return report_markdown(report, report_file=report_file, max_bytes=max_bytes)
    return report_text(report)
