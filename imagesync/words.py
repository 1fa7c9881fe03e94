"""Counts as a user reads them: "1 conflict", "2 conflicts", "1,200 images"."""

from __future__ import annotations


def plural(number: int, word: str, words: str | None = None) -> str:
    """``number`` and ``word``, or ``words`` (default: ``word`` + "s") when it is not 1."""
    return f"{number:,} {word if number == 1 else (words or word + 's')}"
