"""The Markdown reviewers read (issue 20): bounded for any plan, readable at about 1,000 px.

GitHub refuses a step summary over 1 MiB. A plan of 10,000 images (every action, reasons as
long as registries make them) must render well under that with every conflict and error
listed and the counts right; any plan at all must stay under it. Rows are measured the way a
reader meets them: the Markdown parsed by markdown-it-py (CommonMark with tables, as GitHub),
each table row's text added up.
"""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from markdown_it import MarkdownIt
from markdown_it.token import Token

from imagesync.content.referrers import SIGNING
from imagesync.defaults import MARKDOWN_MAX_BYTES
from imagesync.plan.document import Action, Plan
from imagesync.redact import secrets
from imagesync.render import render_plan, render_report
from imagesync.render.markdown import ROW_WIDTH
from tests.harness.plans import PREFIX, generated_change, generated_plan, generated_report

KIB = 1024


@pytest.fixture(scope="module")
def plan() -> Plan:
    return generated_plan(10_000)


@pytest.fixture(scope="module")
def markdown(plan: Plan) -> str:
    return render_plan(plan, "markdown", plan_file="imagesync-plan.json")


def parsed(markdown: str) -> list[Token]:
    return MarkdownIt("commonmark", {"html": True}).enable("table").parse(markdown)


def table_rows(markdown: str) -> list[list[str]]:
    """Each table row's cells, as the text they render to (code spans as their content)."""
    rows: list[list[str]] = []
    cells: list[str] | None = None
    for token in parsed(markdown):
        if token.type == "tr_open":
            cells = []
        elif token.type == "tr_close" and cells is not None:
            rows.append(cells)
            cells = None
        elif token.type == "inline" and cells is not None:
            cells.append("".join(child.content for child in token.children or ()))
    return rows


def widest_row(markdown: str) -> tuple[int, list[str]]:
    rows = table_rows(markdown)
    assert rows
    # A cell's text and the gap to the next one (a rendered cell has padding on both sides).
    width = lambda row: sum(len(cell) + 2 for cell in row)  # noqa: E731
    widest = max(rows, key=width)
    return width(widest), widest


def assert_rows_fit(markdown: str) -> None:
    width, row = widest_row(markdown)
    assert width <= ROW_WIDTH, f"a row of {width} characters: {row}"


def fences(markdown: str) -> list[str]:
    return [t.content for t in parsed(markdown) if t.type == "fence"]


def test_ten_thousand_images_render_well_under_the_limit_with_every_problem(
    plan: Plan, markdown: str
) -> None:
    size = len(markdown.encode("utf-8"))
    assert size < 512 * KIB, f"{size / KIB:.0f} KiB"
    counts = plan.summary()
    assert counts == {"create": 1_200, "skip": 8_000, "conflict": 500, "error": 300}
    assert "**Plan: 1,200 to create, 8,000 to skip, 500 conflicts, 300 errors, " in markdown
    assert "#### ! 500 conflicts" in markdown and "#### x 300 errors" in markdown
    # Every conflict and error is listed, under its target below the prefix.
    for change in plan.changes:
        if change.action in (Action.CONFLICT, Action.ERROR):
            assert f"`{change.target.removeprefix(PREFIX + '/')}`" in markdown, change.target
    # The creates that fit are listed, the rest counted; shown + counted = all of them.
    shown = len([r for r in table_rows(markdown) if len(r) == 6]) - 1
    left = re.search(r"Not shown here[^:]*: (?:.*, )?([\d,]+) images to create", markdown)
    assert shown + (int(left.group(1).replace(",", "")) if left else 0) == counts["create"]
    # Skips: counted by source registry in a collapsed block.
    (folded,) = re.findall(r"<details>(.*?)</details>", markdown, flags=re.S)
    registries = dict(re.findall(r"^\| `([^`]+)` \| ([\d,]+) \|$", folded, flags=re.M))
    assert sum(int(n.replace(",", "")) for n in registries.values()) == counts["skip"]
    assert "`imagesync show imagesync-plan.json`" in markdown


def test_every_fix_is_a_yaml_block_outside_the_tables(plan: Plan, markdown: str) -> None:
    blocks = fences(markdown)
    conflicts = [c for c in plan.changes if c.action is Action.CONFLICT]
    shown_in_full = [c for c in conflicts if c.fix and c.fix.entry and c.fix.entry.yaml in blocks]
    assert len(shown_in_full) == min(len(conflicts), 50)
    for row in table_rows(markdown):
        assert not any("source:" in cell for cell in row), row


def test_no_table_row_is_wider_than_a_reader_can_take(markdown: str, plan: Plan) -> None:
    assert_rows_fit(markdown)
    assert_rows_fit(render_report(generated_report(plan), "markdown"))


def test_the_apply_report_of_ten_thousand_images_stays_well_under_the_limit(plan: Plan) -> None:
    report = render_report(generated_report(plan), "markdown")
    assert len(report.encode("utf-8")) < 512 * KIB
    assert "#### ! 800 images not applied" in report
    assert "#### + 1,200 images created" in report
    for change in plan.changes:
        if change.action in (Action.CONFLICT, Action.ERROR):
            assert change.target.removeprefix(PREFIX + "/") in report, change.target


def test_any_plan_stays_under_githubs_limit() -> None:
    """The worst a plan document may hold: every change a conflict with the longest reason,
    names as long as allowed, thousands of warnings."""
    long_name = "x" * 150
    changes = []
    for number in range(30_000):
        change = generated_change(number * 20 + 19)  # a conflict
        changes.append(
            replace(
                change,
                target=f"{PREFIX}/{long_name}/{number}:{'t' * 120}",
                reason="r" * 8192,
                warnings=("w" * 8192,) * 3,
            )
        )
    huge = replace(generated_plan(0), changes=tuple(changes), warnings=("p" * 8192,) * 500)
    plan = render_plan(huge, "markdown")
    for text in (plan, render_report(generated_report(huge), "markdown")):
        assert len(text.encode("utf-8")) <= MARKDOWN_MAX_BYTES
    assert "Not shown here" in plan


def test_long_reasons_are_shortened_after_redaction_never_before() -> None:
    """A secret across the cut would otherwise be printed in part, no longer matching it."""
    secret = "hunter2-" + "s" * 40
    secrets.add(secret)
    for at in range(400, 520, 7):
        error = replace(generated_change(99), reason="e" * at + secret + " and more")
        assert error.action is Action.ERROR
        text = render_plan(replace(generated_plan(0), changes=(error,)), "markdown")
        assert "hunter2" not in text and "s" * 10 not in text, at


def test_signatures_imagesync_adds_are_told_apart_from_copied_ones() -> None:
    """A reviewer sees what comes from upstream (+1) and what the mirror signs with its own
    key (signs 1), in the plan and in the apply report."""
    create = next(c for c in (generated_change(n) for n in range(100)) if c.action is Action.CREATE)
    (copied,) = [s for s in create.subchanges if s.kind == "signature"]
    signing = replace(copied, kind=SIGNING, source=copied.target)
    signed = replace(create, subchanges=(copied, signing))
    one = replace(generated_plan(1), changes=(signed,))
    (row,) = [r for r in table_rows(render_plan(one, "markdown")) if r[-1] != "signatures"]
    assert row[-1] == "+1; signs 1"
    report = render_report(generated_report(one), "markdown")
    (row,) = [r for r in table_rows(report) if r[-1] != "signatures"]
    assert row[-1] == "+1; signed 1"
