"""The Markdown within any bound names every conflict and error first (issue 32).

A pull-request comment holds 65,536 characters at most; the action asks for 60,000 bytes
(``show --format markdown --max-bytes 60000``). A plan of 10,000 images with 1,250 conflicts
once rendered 396 KiB and left 50 conflicts out: here, at every bound, the page stays within
it and names every conflict and every error, and what it leaves out is counted.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from imagesync.cli import main
from imagesync.defaults import MARKDOWN_MAX_BYTES
from imagesync.plan.document import Action, Change, Plan
from imagesync.render import render_plan, render_report
from tests.harness.plans import PREFIX, generated_change, generated_plan, generated_report

BOUNDS = (65_536, 60_000, MARKDOWN_MAX_BYTES)
# A change of each action, as the generated plans make them (reasons, fixes, signatures).
TEMPLATE = {Action.SKIP: 0, Action.CREATE: 16, Action.CONFLICT: 18, Action.ERROR: 97}


def conflicted_plan(count: int = 10_000) -> Plan:
    """Issue 32's plan: ``count`` images, one in 8 a conflict (1,250 of 10,000), one in 200 an
    error, one in 8 a create, the rest skips; names as a platform team's."""
    changes = []
    for number in range(count):
        if number % 8 == 3:
            action = Action.CONFLICT
        elif number % 200 == 5:
            action = Action.ERROR
        else:
            action = Action.CREATE if number % 8 == 1 else Action.SKIP
        template = generated_change(TEMPLATE[action])
        name = f"ghcr.io/team-{number % 40:02d}/service-{number:05d}"
        tag, line = f"1.{number % 17}.{number % 50}", 3 + 2 * number
        fix = template.fix
        if fix is not None and fix.entry is not None:
            pinned = f"{name}@{template.target_digest}"
            entry = replace(fix.entry, source=pinned, tag=tag, first_line=line, last_line=line + 1)
            fix = replace(fix, entry=entry)
        changes.append(
            replace(
                template,
                entry=number + 1,
                line=line,
                source_text=f"{name}:{tag}",
                source=f"{name}:{tag}",
                target=f"{PREFIX}/{name}:{tag}",
                fix=fix,
            )
        )
    return replace(generated_plan(0), changes=tuple(changes))


def demo_plan() -> Plan:
    """The demo's review plan: a conflict with its fix, an error, a create, skips."""
    plan = generated_plan(100)
    keep = (0, 1, 16, 18, 97)
    return replace(plan, changes=tuple(plan.changes[n] for n in keep))


def problems(plan: Plan) -> list[Change]:
    return [c for c in plan.changes if c.action in (Action.CONFLICT, Action.ERROR)]


def named(markdown: str, change: Change) -> bool:
    return f"`{change.target.removeprefix(PREFIX + '/')}`" in markdown


@pytest.fixture(scope="module")
def big() -> Plan:
    plan = conflicted_plan()
    assert plan.summary() == {"create": 1_250, "skip": 7_450, "conflict": 1_250, "error": 50}
    return plan


@pytest.mark.parametrize("bound", BOUNDS)
def test_every_conflict_and_error_is_named_within_the_bound(big: Plan, bound: int) -> None:
    for plan in (big, demo_plan()):
        markdown = render_plan(plan, "markdown", plan_file="imagesync-plan.json", max_bytes=bound)
        assert len(markdown.encode("utf-8")) <= bound
        missing = [c.target for c in problems(plan) if not named(markdown, c)]
        assert not missing, f"{len(missing)} not named at {bound}: {missing[:3]}"
        assert "not named" not in markdown


def test_the_comment_keeps_names_before_details_and_counts_the_rest(big: Plan) -> None:
    markdown = render_plan(big, "markdown", plan_file="imagesync-plan.json", max_bytes=60_000)
    # Names before anything else: the creates and skips did not fit, and are counted with
    # where the whole plan is.
    footer = markdown[markdown.index("**Not shown here") :]
    assert re.search(r"[\d,]+ images to create", footer)
    assert "The run's step summary shows more." in footer
    assert "the plan artifact" in footer and "`imagesync show imagesync-plan.json`" in footer
    # The comment's demo plan has room for everything: a block, the fix, no footer.
    demo = render_plan(demo_plan(), "markdown", max_bytes=60_000)
    assert "```yaml" in demo and "Not shown here" not in demo


def test_past_the_bound_the_names_that_fit_and_how_many_more() -> None:
    """Names too long for a line each within the bound: the first ones, then how many more,
    and the footer says where they all are."""
    plan = generated_plan(10_000)
    markdown = render_plan(plan, "markdown", plan_file="plan.json", max_bytes=30_000)
    assert len(markdown.encode("utf-8")) <= 30_000
    shown = sum(named(markdown, c) for c in problems(plan))
    more = sum(int(n.replace(",", "")) for n in re.findall(r"and ([\d,]+) more", markdown))
    assert 0 < shown < len(problems(plan))
    assert shown + more == len(problems(plan))
    assert re.search(r"Not shown here.*(conflicts|errors) not named", markdown)


def test_the_apply_report_names_every_failure_within_the_bound(big: Plan) -> None:
    report = render_report(generated_report(big), "markdown", max_bytes=60_000)
    assert len(report.encode("utf-8")) <= 60_000
    assert all(named(report, c) for c in problems(big))


def test_show_takes_the_bound_the_comment_asks_for(big: Plan, tmp_path: Path) -> None:
    big.write(tmp_path / "plan.json")
    runner = CliRunner()
    args = ["show", str(tmp_path / "plan.json"), "--format", "markdown", "--max-bytes", "60000"]
    result = runner.invoke(main, args)
    assert result.exit_code == 1, result.output  # as plan: the plan holds conflicts
    assert len(result.output.encode("utf-8")) <= 60_000
    assert all(named(result.output, c) for c in problems(big))
    too_small = runner.invoke(main, [*args[:-1], "100"])
    assert too_small.exit_code == 2 and "--max-bytes" in too_small.output
