"""Located problems: what is wrong, where (file, line, entry) and how to fix it.

Input files are checked as a whole and every problem is reported at once, the way a compiler
does: fixing one error per run is slow when the feedback loop is a pull request.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from imagesync.errors import ConfigError
from imagesync.words import plural


class Severity(StrEnum):
    """An error stops the run; a warning is shown and the run goes on."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Problem:
    """One finding in an input file.

    ``line`` is 1-based, None when the problem has no place in the file (a missing target that
    could also come from the command line); ``entry_index`` is the 1-based entry it belongs to.
    """

    path: str
    line: int | None
    entry_index: int | None
    message: str
    hint: str | None = None
    severity: Severity = Severity.ERROR

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def __str__(self) -> str:
        # file:line: is what editors and CI log viewers turn into a link.
        text = f"{self.path}:{self.line}: " if self.line is not None else f"{self.path}: "
        if self.entry_index is not None:
            text += f"entry {self.entry_index}: "
        if self.severity is Severity.WARNING:
            text += "warning: "
        text += self.message
        if self.hint:
            text += f" (fix: {self.hint})"
        return text


def sort_key(problem: Problem) -> tuple[int, int, int]:
    """File order; problems without a line come first, they concern the whole file."""
    return (
        problem.line if problem.line is not None else 0,
        problem.entry_index if problem.entry_index is not None else 0,
        0 if problem.is_error else 1,
    )


def count(problems: tuple[Problem, ...] | list[Problem]) -> str:
    """'2 errors, 1 warning' — the summary line under a list of problems."""
    errors = sum(1 for p in problems if p.is_error)
    warnings = len(problems) - errors
    parts = [plural(errors, "error")] if errors else []
    if warnings:
        parts.append(plural(warnings, "warning"))
    return ", ".join(parts) or "no problems"


def closest(word: str, known: Sequence[str]) -> str | None:
    """The known key ``word`` was meant as, for "did you mean …?": a slip of case first
    (``amd64only``; difflib scores those lower than real typos), else the nearest."""
    match = next((k for k in known if k.lower() == word.lower()), None)
    if match is None:
        close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
        match = close[0] if close else None
    return match


class InvalidFile(ConfigError):
    """An input file has errors. ``problems`` holds all of them, and the warnings, in order.

    The message lists every problem, so a caller that only prints the message loses nothing.
    """

    def __init__(self, path: str | Path, problems: tuple[Problem, ...]) -> None:
        self.path = str(path)
        self.problems = problems
        lines = "\n".join(f"  {problem}" for problem in problems)
        super().__init__(f"{path} is not valid ({count(problems)}):\n{lines}")

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.is_error)

    @property
    def warnings(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if not p.is_error)
