"""Text from outside made safe to print: shown, never acted on.

A registry's error message, an ``artifactType``, a platform variant, a tag read from a file:
any of them can hold a newline (a line of its own in a CI log, where ``::error ...::`` is a
GitHub workflow command), a carriage return (a line drawn over another), or an escape
sequence (colours, a cursor move, an OSC 8 link). Every output that shows such text passes
it through :func:`printable`, which writes each of those characters as its escape, so a
reader sees exactly what was sent and the terminal does nothing with it.
"""

from __future__ import annotations

import unicodedata

# Besides C0/C1 controls and DEL (category Cc): characters that reorder or hide what follows
# them on screen (bidirectional overrides and isolates, "Trojan Source"), and the line and
# paragraph separators some viewers break lines on.
_INVISIBLE = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u2028\u2029"
)
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x1b": "\\e"}


def printable(text: str) -> str:
    """``text`` with every control, escape and bidirectional-override character written as a
    visible escape (``\\n``, ``\\e``, ``\\x07``, ``\\u202e``); a backslash stays as it is."""
    if text.isprintable() and not _INVISIBLE.intersection(text):
        return text
    return "".join(_shown(character) for character in text)


def _shown(character: str) -> str:
    if character in _NAMED:
        return _NAMED[character]
    # "C": controls, formats, surrogates, private use, unassigned; none has a glyph to show.
    if character in _INVISIBLE or unicodedata.category(character)[0] == "C":
        code = ord(character)
        if code < 0x100:
            return f"\\x{code:02x}"
        return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
    return character


def printable_json(text: str) -> str:
    """JSON text with every character :func:`printable` would escape written as JSON's own
    ``\\uXXXX`` escape: the same JSON value, with nothing a terminal acts on.

    ``json.dumps`` escapes C0 controls but, without ``ensure_ascii``, lets DEL, the C1
    controls (``\\x9b`` is a one-byte CSI) and bidirectional overrides through raw; with it,
    every accent would become an escape too. JSON's structure is ASCII, so every character
    changed here sits inside a string."""
    if text.isprintable() and not _INVISIBLE.intersection(text):
        return text
    return "".join(_json_escaped(character) for character in text)


def _json_escaped(character: str) -> str:
    if character in "\n\r\t" or _shown(character) == character:
        return character  # JSON's own layout between values, or printable as it is
    code = ord(character)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # JSON writes astral code points as a UTF-16 surrogate pair
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
