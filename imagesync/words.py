"""Counts as a user reads them: "1 conflict", "2 conflicts", "1,200 images", "3.5 MiB"."""

from __future__ import annotations


def plural(number: int, word: str, words: str | None = None) -> str:
    """``number`` and ``word``, or ``words`` (default: ``word`` + "s") when it is not 1."""
    return f"{number:,} {word if number == 1 else (words or word + 's')}"


def human_bytes(count: int) -> str:
    """``count`` bytes in binary units, one decimal from KiB up: "812 B", "3.5 MiB"."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
