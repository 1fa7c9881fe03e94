"""Counts as a user reads them: "1 conflict", "2 conflicts"."""

from __future__ import annotations


def plural(number: int, word: str) -> str:
    return f"{number} {word}" if number == 1 else f"{number} {word}s"
