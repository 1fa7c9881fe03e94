"""The JSON Schemas of the files imagesync reads: the images file, plans and apply reports.

They are the published contracts (editors and other tools can use them), and the validators
are built from them here, with their ``#/$defs/…`` references inlined: the same rules and the
same error paths, without a reference lookup per entry, which took two thirds of the time of
validating 10,000 entries.
"""

from __future__ import annotations

import functools
import json
from importlib.resources import files
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jsonschema.protocols import Validator


@functools.cache
def schema(name: str) -> dict[str, Any]:
    """``name`` (``images``, ``plan``, ``report``) as shipped in the package."""
    text = files(__name__).joinpath(f"{name}.schema.json").read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@functools.cache
def validator(name: str) -> Validator:
    # jsonschema takes longer to import than the rest of the command line together: only
    # commands that read an images file, a plan or a report pay for it.
    from jsonschema import Draft202012Validator

    built: Validator = Draft202012Validator(inlined(schema(name)))
    return built


def inlined(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with each reference to a definition, ``{"$ref": "#/$defs/X"}`` or one in
    a sibling schema (``"plan.schema.json#/$defs/X"``), replaced by what it names (the schemas
    have no recursive definitions)."""

    def inline(node: Any, home: dict[str, Any]) -> Any:
        if isinstance(node, dict):
            target = node.get("$ref")
            if isinstance(target, str) and len(node) == 1:
                where, _, pointer = target.partition("#/$defs/")
                named = schema(where.removesuffix(".schema.json")) if where else home
                return inline(named["$defs"][pointer], named)
            return {key: inline(value, home) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item, home) for item in node]
        return node

    result: dict[str, Any] = inline(document, document)
    return result
