"""printable(): someone else's text shown, never acted on by a terminal or a CI log."""

from __future__ import annotations

import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from imagesync.printable import printable


def test_plain_text_is_unchanged() -> None:
    assert (
        printable("sha256:abc linux/arm64/v8 äöü 日本 a\\b")
        == "sha256:abc linux/arm64/v8 äöü 日本 a\\b"
    )


def test_line_breaks_and_escapes_are_shown() -> None:
    assert printable("x\n::error title=a::b") == "x\\n::error title=a::b"
    assert printable("ok\rFAKE") == "ok\\rFAKE"
    assert printable("\x1b]8;;https://e.example\x07link\x1b]8;;\x07") == (
        "\\e]8;;https://e.example\\x07link\\e]8;;\\x07"
    )
    assert printable("\x9b31m") == "\\x9b31m"
    assert printable("abc\u202etxt.exe") == "abc\\u202etxt.exe"
    assert printable("a\u2028b") == "a\\u2028b"


@given(st.text())
def test_nothing_unprintable_is_left(text: str) -> None:
    shown = printable(text)
    # What is left is printable, or a space of another width (U+00A0, U+2003: shown as space).
    assert all(c.isprintable() or unicodedata.category(c) == "Zs" for c in shown)
    assert "\n" not in shown and "\r" not in shown and "\x1b" not in shown
