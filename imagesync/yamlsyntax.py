"""YAML syntax errors in plain words, placed at their cause.

PyYAML says what its parser expected ("expected <block end>, but found '<scalar>'") where it
noticed, often a line after the mistake: an unclosed quote runs on into the next entry, a key
without ``:`` is noticed at the next key. Users need the mistake and its line. The images
file and the registries config both read YAML, and both say it this way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml

# Where a value can begin on a line: after "- " markers and a "key: ".
_VALUE_START = re.compile(r"^\s*(?:-\s+)*(?:[^\s\"'#-][^:#]*:\s+)?(?P<quote>[\"'])")
_INDENT = re.compile(r"^[ \t]*")


@dataclass(frozen=True)
class SyntaxProblem:
    """What is wrong, on which 1-based line (None when unknown), and how to fix it."""

    line: int | None
    message: str
    hint: str


def explain(error: yaml.MarkedYAMLError, text: str) -> SyntaxProblem:
    lines = text.split("\n")
    mark = error.problem_mark or error.context_mark
    noticed = mark.line if mark is not None else len(lines) - 1
    problem = error.problem or "a syntax error"
    tab = _tab_line(lines, noticed) if "'\\t'" in problem else None
    if tab is not None:
        return SyntaxProblem(
            tab + 1,
            f"line {tab + 1} is indented with a tab; YAML indents with spaces only",
            "replace the tab with spaces",
        )
    unclosed = _unclosed_quote(lines, noticed)
    if unclosed is not None:
        number, quote = unclosed
        shown = lines[number].strip()
        return SyntaxProblem(
            number + 1,
            f"the quote {quote} opened on line {number + 1} is not closed",
            f"close it: {shown}{quote}",
        )
    if "could not find expected ':'" in problem and error.context_mark is not None:
        number = error.context_mark.line
        return SyntaxProblem(
            number + 1,
            f"line {number + 1} has no ':' after its key",
            f"write the key with a value: {lines[number].strip()}: <value>",
        )
    if "mapping values are not allowed" in problem:
        if _deeper_than_above(lines, noticed):
            return _misaligned(noticed)
        written = re.match(r"^\s*((?:-\s+)*[^:]+:\s+)(.*?)\s*$", lines[noticed])
        quoted = f'{written[1]}"{written[2]}"' if written else 'key: "value: with a colon"'
        return SyntaxProblem(
            noticed + 1,
            f"line {noticed + 1} has ': ' inside a value, which YAML reads as another key",
            f"quote the value: {quoted}",
        )
    if problem.startswith("expected <block end>") or "did not find expected" in problem:
        return _misaligned(noticed)
    if "found undefined alias" in problem:
        return SyntaxProblem(
            noticed + 1,
            f"line {noticed + 1} uses an alias (*name) that no anchor (&name) defines",
            "define the anchor before it, or quote the value if '*' is part of it",
        )
    if "another document" in problem:
        return SyntaxProblem(
            noticed + 1,
            f"expected a single document, but a second one starts on line {noticed + 1}",
            "keep one document: remove that '---' and what follows, or merge the two",
        )
    context = f" ({error.context})" if error.context else ""
    return SyntaxProblem(
        noticed + 1,
        f"not valid YAML on line {noticed + 1}: {problem}{context}",
        "check the indentation and the quotes on this line and the one before",
    )


def _misaligned(line: int) -> SyntaxProblem:
    return SyntaxProblem(
        line + 1,
        f"line {line + 1} is not lined up with the lines above it",
        "indent each key of an entry by the same spaces as the first one after '- '",
    )


def _tab_line(lines: list[str], noticed: int) -> int | None:
    """The first line at or before ``noticed`` with a tab in its indentation (or anywhere)."""
    for number in range(min(noticed, len(lines) - 1) + 1):
        if "\t" in _INDENT.match(lines[number]).group():  # type: ignore[union-attr]
            return number
    return noticed if 0 <= noticed < len(lines) else None


def _unclosed_quote(lines: list[str], noticed: int) -> tuple[int, str] | None:
    """The nearest line at or before ``noticed`` where a quoted value opens and does not close."""
    for number in range(min(noticed, len(lines) - 1), -1, -1):
        found = _VALUE_START.match(lines[number])
        if found is None:
            continue
        quote, rest = found.group("quote"), lines[number][found.end() :]
        closed = (
            re.search(r'(?<!\\)"', rest.replace("\\\\", ""))
            if quote == '"'
            else "'" in rest.replace("''", "")
        )
        if not closed:
            return number, quote
    return None


def _deeper_than_above(lines: list[str], noticed: int) -> bool:
    """Whether line ``noticed`` is indented deeper than the key of the line above it."""
    if not 0 < noticed < len(lines):
        return False
    above = next((line for line in reversed(lines[:noticed]) if line.strip()), "")
    key_column = len(re.match(r"^\s*(?:-\s+)*", above).group())  # type: ignore[union-attr]
    return len(_INDENT.match(lines[noticed]).group()) > key_column  # type: ignore[union-attr]
