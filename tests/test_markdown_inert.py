"""Nothing a pull request or a registry wrote is active in the Markdown (issues 30, 32).

Every value from outside (targets, sources, tags, digests, media types, artifact types,
platforms, reasons, warnings, registry messages, file names) holds hostile strings; the plan,
the apply report, the shards' plan shown as one, the plan diff and the footers are parsed by
markdown-it-py (CommonMark with GFM tables, as GitHub) and walked: rows keep their cells, no
HTML but the renderer's own ``<details>``, no image, no link, and no mention, reference or
bare link in text outside code.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import replace

import pytest
from markdown_it import MarkdownIt
from markdown_it.token import Token

from imagesync.plan.diff import diff_plans
from imagesync.plan.document import Plan
from imagesync.render import render_plan, render_report
from imagesync.render.diff import render_diff
from tests.harness.plans import generated_plan, generated_report

HOSTILE = (
    "<img src=x onerror=alert(1)> <script>x</script> </details> @org/team #1 org/repo#2 "
    "`a``b``` | c || [x](javascript:alert(1)) ![i](http://e/i.png) <http://e> www.e.com "
    "https://e.com/x a@b.co \\ *em* _u_ ~~s~~ &amp; \x1b[31m\n# h\r\u202e"
)
# The renderer's own HTML: the collapsed block of skips.
OWN_HTML = re.compile(r"</?details>|<summary><b>[^<>]*</b>, by source registry</summary>")
ACTIVE_TEXT = re.compile(r"@\w|#\d|://|www\.", re.IGNORECASE)


def hostile_plan() -> Plan:
    plan = generated_plan(100)
    changes = tuple(
        replace(
            change,
            source_text=HOSTILE,
            source=f"{HOSTILE}/x",
            target=f"{plan.target_prefix}/{HOSTILE}:{number}",
            reason=HOSTILE,
            media_type=HOSTILE,
            platforms=(HOSTILE,),
            artifact_types=(HOSTILE,) if number % 2 else (),
            warnings=(HOSTILE,),
            subchanges=tuple(
                replace(s, target=HOSTILE, reason=HOSTILE, kind="signature")
                for s in change.subchanges
            ),
        )
        for number, change in enumerate(plan.changes)
    )
    return replace(plan, changes=changes, warnings=(HOSTILE,))


def parsed(markdown: str) -> list[Token]:
    parser = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
    # Every link counts, ``javascript:`` ones too (markdown-it-py would leave those as text).
    parser.validateLink = lambda url: True
    return parser.parse(markdown)


def walk(tokens: list[Token], inside_code: bool = False) -> list[tuple[Token, bool]]:
    flat: list[tuple[Token, bool]] = []
    for token in tokens:
        code = inside_code or token.type in ("code_inline", "fence", "code_block")
        flat.append((token, code))
        flat += walk(token.children or [], code)
    return flat


def assert_inert(markdown: str) -> None:
    assert not [c for c in markdown if c != "\n" and unicodedata.category(c) == "Cc"]
    assert "\u202e" not in markdown
    tokens = parsed(markdown)
    for token, inside_code in walk(tokens):
        assert token.type not in ("image", "link_open"), token
        if token.type in ("html_inline", "html_block"):
            lines = [line for line in token.content.splitlines() if line]
            assert all(OWN_HTML.fullmatch(line) for line in lines), token.content
        if token.type == "text" and not inside_code:
            assert not ACTIVE_TEXT.search(token.content), token.content
        if token.type == "heading_open":
            assert token.tag in ("h3", "h4"), token
    assert_rows_keep_their_cells(markdown, tokens)


def assert_rows_keep_their_cells(markdown: str, tokens: list[Token]) -> None:
    """Each row's source line splits (as GitHub does: on every ``|`` not after a backslash)
    into as many cells as the table's header has (markdown-it-py drops a row's extra cells,
    so the source is counted)."""
    lines = markdown.splitlines()
    columns = 0
    for token in tokens:
        if token.type == "th_open":
            columns += 1
        if token.type == "thead_close":
            assert columns
        if token.type == "tr_open" and token.map and columns:
            line = lines[token.map[0]].strip()
            assert line.startswith("|") and line.endswith(" |"), line
            assert len(re.split(r"(?<!\\)\|", line[1:-1])) == columns, line
        if token.type == "table_close":
            columns = 0


@pytest.mark.parametrize("bound", [60_000, 1024 * 1024])
def test_the_plan_and_its_footer_are_inert(bound: int) -> None:
    plan = hostile_plan()
    for markdown in (
        render_plan(plan, "markdown", plan_file=HOSTILE, max_bytes=bound),
        render_plan(plan, "markdown", changed_only=True, merged_from=3, max_bytes=bound),
        render_plan(plan, "markdown", plan_file=HOSTILE, max_bytes=8_000),
    ):
        assert len(markdown.encode("utf-8")) <= max(bound, 8_000)
        assert_inert(markdown)
    footer = render_plan(plan, "markdown", plan_file=HOSTILE, max_bytes=8_000)
    assert "Not shown here" in footer


def test_the_apply_report_is_inert() -> None:
    report = generated_report(hostile_plan())
    assert_inert(render_report(report, "markdown", report_file=HOSTILE))
    assert_inert(render_report(report, "markdown", report_file=HOSTILE, max_bytes=8_000))


def test_the_plan_diff_is_inert() -> None:
    hostile = hostile_plan()
    old = replace(hostile, changes=hostile.changes[:60])
    new = replace(
        hostile,
        changes=tuple(replace(c, digest=HOSTILE) for c in hostile.changes[10:]),
        warnings=(HOSTILE + "!",),
    )
    markdown = render_diff(diff_plans(old, new), "markdown")
    assert markdown.count("\n| ") > 50
    assert_inert(markdown)


def test_a_fix_cannot_close_its_yaml_block() -> None:
    plan = generated_plan(20)
    conflict = plan.changes[18]
    assert conflict.fix is not None and conflict.fix.entry is not None
    entry = replace(conflict.fix.entry, tag="````\n# closed")
    changed = replace(conflict, fix=replace(conflict.fix, entry=entry))
    markdown = render_plan(replace(plan, changes=(changed,)), "markdown")
    (fence,) = [t for t in parsed(markdown) if t.type == "fence"]
    assert "````" in fence.content
    assert_inert(markdown)
