"""Values from outside (images files, registries, plan files) written into Markdown so that
GitHub shows them and does nothing else with them: one escaper for every Markdown output
(plans, apply reports, plan diffs, their footers).

What GitHub would act on, and what stops it here:

- raw HTML (``<img>``, ``</details>``), links and images (``[x](javascript:…)``), emphasis,
  headings and lists: every ASCII punctuation character Markdown reads is backslash-escaped in
  text (:func:`text`); in a code span (:func:`code`) nothing is read at all, and a fence longer
  than any run of backticks inside means nothing in the value closes it;
- a table cell split by a ``|``: GitHub splits rows on ``|`` before it reads code spans, so
  :func:`row` writes every ``|`` of a cell as ``\\|``, which the table parser turns back into
  ``|`` before inline parsing (GFM's rule, inside code spans too);
- mentions, issue references and bare links, which GitHub looks for in rendered text (a
  backslash does not stop them): outside code, a word joiner (U+2060, invisible) goes after
  each ``@`` and ``#``, inside ``://`` and after ``www``; code spans are not searched;
- control characters (a newline ending a table row, an escape sequence, a bidi override):
  :func:`~imagesync.printable.printable` writes each as its visible escape, before anything
  here adds its own invisible word joiners.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from imagesync.printable import printable

_JOINER = "\u2060"
# Every ASCII punctuation character CommonMark or GFM acts on somewhere in a line (CommonMark
# allows a backslash before any ASCII punctuation, so escaping one too many is harmless).
_SPECIAL = re.compile(r"([\\`*_{}\[\]<>#+!|~&])")
# What GitHub turns into a mention, a reference or a link in rendered text.
_NOTIFIES = re.compile(r"[@#]|(?<=:)(?=//)|(?<=www)(?=\.)", re.IGNORECASE)
# What starts a block at the start of a line: a heading, a list, a quote, a setext underline.
_AT_START = re.compile(r"^(\s*)([-=]|\d+)([.)]?)")


def text(words: str, *, line: bool = False) -> str:
    """``words`` (someone else's) as Markdown text on one line that renders to them and to
    nothing more. ``line``: they start a line of their own, where ``# `` or ``1.`` would
    count."""
    one_line = printable(" ".join(words.split()))
    escaped = _NOTIFIES.sub(lambda match: match.group(0) + _JOINER, _SPECIAL.sub(r"\\\1", one_line))
    return _AT_START.sub(_escape_start, escaped) if line else escaped


def _escape_start(match: re.Match[str]) -> str:
    space, mark, after = match.groups()
    if mark.isdigit():  # an ordered list's "1." or "1)": the dot or bracket is escaped
        return f"{space}{mark}\\{after}" if after else match.group(0)
    return f"{space}\\{mark}{after}"


def code(value: str, limit: int | None = None) -> str:
    """``value`` as inline code that nothing in it can close: a fence longer than any run of
    backticks inside. ``limit`` shortens it in the middle, keeping its end (a tag)."""
    shown = printable(" ".join(value.split()))
    if limit is not None and len(shown) > limit:
        keep = limit - 1
        shown = shown[: keep // 2] + "…" + shown[len(shown) - (keep - keep // 2) :]
    if not shown:
        return "` `"
    longest = max((len(run) for run in re.findall(r"`+", shown)), default=0)
    fence = "`" * (longest + 1)
    # CommonMark takes one space off each end of a code span that has both; a value that
    # starts or ends with a backtick needs a space to keep it apart from the fence.
    pad = " " if shown[0] == "`" or shown[-1] == "`" else ""
    return f"{fence}{pad}{shown}{pad}{fence}"


def fenced(lines: Sequence[str], info: str) -> list[str]:
    """``lines`` as a fenced code block that no line in it can close."""
    shown = [printable(line) for line in lines]
    longest = max((len(run) for line in shown for run in re.findall(r"`+", line)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + info, *shown, fence]


def row(cells: Iterable[str]) -> str:
    """A table row of ``cells`` (Markdown already escaped by :func:`text` or :func:`code`):
    each ``|`` inside a cell escaped for the table parser, which GitHub runs first."""
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def table(header: Sequence[str], align: str | None = None) -> list[str]:
    """A table's header row and its delimiter row (``align``: the delimiter row's cells)."""
    return [row(header), "|" + (align or "---|" * len(header))]
