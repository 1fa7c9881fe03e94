"""JSON text as Go's ``encoding/json`` writes it, for the documents cosign writes.

cosign builds the simple-signing payload, the signature image's config and its manifest with
``json.Marshal``: no whitespace, keys in struct order (we pass dicts built in that order), and
inside strings ``<``, ``>``, ``&``, U+2028 and U+2029 escaped as ``\\u003c`` and so on,
other non-ASCII characters written as UTF-8. Matching it byte for byte means that what
imagesync writes is what cosign would have written for the same values: the same payload
digest for the same image (so cosign's own duplicate check sees our layer as its own), and
the same config bytes for the same list of layers.
"""

from __future__ import annotations

import json

# These characters can only occur inside JSON strings (none is structural), so replacing them
# in the whole text escapes exactly the strings' copies, as Go does.
_GO_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_GO_ESCAPE_TABLE = str.maketrans(_GO_ESCAPES)


def go_json(value: object) -> bytes:
    """``value`` encoded as Go's ``json.Marshal`` would encode the same keys in the same order."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.translate(_GO_ESCAPE_TABLE).encode("utf-8")
