"""The images file's YAML, composed into nodes rather than loaded.

A loader turns ``tag: 3.10`` into the float 3.1 and forgets where anything was written; the
image-syncer (Go, yaml.v3 into string fields) read the scalar's text. So the file is composed:
every key and value keeps its node (its line, its column, whether it was quoted) and a scalar in
a text field keeps the characters the user wrote. Composing is bounded (nesting, what aliases
repeat), so a hostile file is refused on its line instead of exhausting the stack or the memory.

What the images file means is not known here: :mod:`imagesync.images.checks` says which keys
are text and what to do about what this module reports.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml._yaml import CParser
from yaml.composer import Composer
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.events import AliasEvent, NodeEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.reader import ReaderError
from yaml.resolver import Resolver

from imagesync.errors import shorten
from imagesync.yamlsyntax import explain as explain_syntax

# The file needs four levels (the file, images, an entry, its keys). Beyond a few hundred the
# reader would hit Python's recursion limit; the margin lets a mistake be reported as itself.
MAX_DEPTH = 32
# Values aliases may repeat, in all: plenty for any use (one alias per entry), and a few lines
# of nested aliases (an "alias bomb") would otherwise expand to billions of values.
MAX_ALIASED_VALUES = 10_000
# A message quotes at most this much of a value: the user needs to recognise it, not reread it.
MAX_QUOTED = 80

# A JSON path into the document: keys and list positions from the root.
NodePath = tuple[str | int, ...]
# Where a problem is: a path into the document, a line number, or nowhere in the file.
Where = NodePath | int | None
# Says a problem found while reading: where, what, and how to fix it.
Report = Callable[[Where, str, str | None], None]

_AS_WRITTEN = frozenset(
    {"tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:timestamp"}
)
_YAML12_BOOLS = frozenset({"true", "false"})
_RESOLVER = Resolver()

# What YAML makes of a plain scalar, in the words a user knows.
_SCALAR_KINDS = {
    "tag:yaml.org,2002:int": "a number",
    "tag:yaml.org,2002:float": "a number",
    "tag:yaml.org,2002:bool": "a boolean",
    "tag:yaml.org,2002:null": "empty (null)",
    "tag:yaml.org,2002:timestamp": "a date",
    "tag:yaml.org,2002:binary": "binary data",
}


@dataclass
class Document:
    """The composed YAML as plain values, with the node of every value and every key."""

    value: Any
    nodes: dict[NodePath, Node] = field(default_factory=dict)
    key_nodes: dict[NodePath, Node] = field(default_factory=dict)

    def line(self, path: NodePath) -> int | None:
        """The line of the value at ``path``, or of the nearest enclosing value that exists."""
        # The key's line: an empty value or one that spans lines has no better line of its own.
        key_node = self.key_nodes.get(path)
        if key_node is not None:
            return line_of(key_node)
        for end in range(len(path), -1, -1):
            node = self.nodes.get(path[:end])
            if node is not None:
                return line_of(node)
        return None

    def text(self, path: NodePath) -> str:
        """A value as the user wrote it (for scalars: the exact characters)."""
        node = self.nodes.get(path)
        if isinstance(node, ScalarNode):
            return str(node.value)
        if isinstance(node, SequenceNode):
            return "a list"
        if isinstance(node, MappingNode):
            return "a mapping"
        return "nothing"


class DocumentReader:
    """Reads one file's YAML into :attr:`document`, reporting what stops it on its line.

    ``text_keys``: keys whose value is text, whatever type YAML would give a plain scalar.
    """

    def __init__(self, report: Report, text_keys: frozenset[str]) -> None:
        self.report = report
        self.text_keys = text_keys
        self.document = Document(None)
        # Builds the file's scalars, one by one (one constructor for all of them).
        self.constructor = SafeConstructor()

    def compose(self, text: str) -> tuple[bool, Node | None]:
        """The root node (None: the file is empty); False when reading stopped."""
        try:
            # libyaml's parser first: the pure-Python one needs seconds for a file of 10,000
            # entries. Whatever it refuses is read again by the pure-Python parser, whose
            # messages and positions are the ones users are told.
            return True, _compose(FastLoader(text), whole=not _may_have_aliases(text))
        except Refused as refused:
            self.report(refused.line, refused.message, refused.hint)
            return False, None
        except (yaml.YAMLError, ValueError):
            return self._compose_exactly(text)

    def _compose_exactly(self, text: str) -> tuple[bool, Node | None]:
        """Compose with the pure-Python parser, reporting what stops it on its line; False
        when it stops."""
        try:
            loader = Loader(text)
        except ReaderError as error:
            # Raised before any token, with a position and no mark: the line is ours to find.
            character = error.character
            code = ord(character) if isinstance(character, str) else int(character)
            self.report(
                text.count("\n", 0, error.position) + 1,
                f"not valid YAML: character U+{code:04X} is not allowed (an invisible or control "
                "character)",
                "delete it; most editors do not show it",
            )
            return False, None
        try:
            return True, _compose(loader)
        except Refused as refused:
            self.report(refused.line, refused.message, refused.hint)
        except yaml.MarkedYAMLError as error:
            problem = explain_syntax(error, text)
            self.report(problem.line, problem.message, problem.hint)
        except ValueError as error:
            # PyYAML's scanner hands a "\U" escape beyond U+10FFFF to chr() unchecked; it stops
            # right after the escape.
            message = f"not valid YAML: {error}"
            if "chr()" in str(error):
                message = "not valid YAML: a \\U escape beyond U+10FFFF, the last character"
            self.report(
                loader.get_mark().line + 1, message, "fix the escape or write the character"
            )
        except yaml.YAMLError as error:
            self.report(None, f"not valid YAML: {error}", "fix the YAML syntax")
        finally:
            loader.dispose()
        return False, None

    def build(self, root: Node) -> bool:
        """Fill :attr:`document` from ``root``; False when it is refused (too deep)."""
        try:
            self.document.value = self._to_python(root, (), active=set())
        except Refused as refused:
            self.report(refused.line, refused.message, refused.hint)
            return False
        return True

    def _to_python(self, node: Node, path: NodePath, active: set[int]) -> Any:
        """Plain values for the schema, recording the node of each; keys stay as written."""
        self.document.nodes[path] = node
        if len(path) >= MAX_DEPTH:
            # Only aliases get here (the loader stops deeper nesting): each adds its anchor's
            # depth to its own.
            raise Refused(self.document.line(path) or 1, *_TOO_DEEP)
        if id(node) in active:  # an alias inside its own anchor
            self.report(path, "a YAML alias refers to itself", "remove the alias")
            return None
        if isinstance(node, MappingNode):
            active.add(id(node))
            mapping = self._mapping(node, path, active)
            active.discard(id(node))
            return mapping
        if isinstance(node, SequenceNode):
            active.add(id(node))
            items = [
                self._to_python(item, (*path, position), active)
                for position, item in enumerate(node.value)
            ]
            active.discard(id(node))
            return items
        if path and path[-1] in self.text_keys and _written_as_text(node):
            return str(node.value)
        return self._scalar(node, path)

    def _mapping(self, node: MappingNode, path: NodePath, active: set[int]) -> dict[str, Any]:
        mapping: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self.report(
                    line_of(key_node), "a key must be a plain name", "write it as a name: source:"
                )
                continue
            key = str(key_node.value)
            self.document.key_nodes[(*path, key)] = key_node
            if key in mapping:
                self.report(
                    (*path, key),
                    f"key {quoted(key)} appears twice here; YAML would silently keep the last one",
                    "remove one of them",
                )
            mapping[key] = self._to_python(value_node, (*path, key), active)
        return mapping

    def _scalar(self, node: Node, path: NodePath) -> Any:
        try:
            return self.constructor.construct_object(node)
        except ConstructorError as error:
            self.report(
                path,
                f"YAML cannot read {quoted(node.value)} as {node.tag}: {error.problem}",
                "remove the explicit !tag",
            )
            return str(node.value)
        except ValueError:
            # What looks like a date or a number and is none (2001-13-45, 0x_, 5000 digits):
            # Python's own reason names Python internals, so it is left out.
            written = shown(str(node.value))
            self.report(
                path, f"YAML cannot read {written!r} as {describe(node)}", f'quote it: "{written}"'
            )
            return str(node.value)


_TOO_DEEP = (
    f"the YAML nests more than {MAX_DEPTH} levels deep",
    "an images file needs four: the file, images, an entry and its keys",
)


class Refused(Exception):
    """Reading stops: going on would exhaust the stack or the memory."""

    def __init__(self, line: int, message: str, hint: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message
        self.hint = hint


class Limits(Composer):
    """Limits on nesting and on what aliases repeat, checked while composing.

    The composer shares an anchored node between its aliases, so composing costs nothing; the
    values an alias stands for are counted here, before anything expands them.
    """

    def start_counting(self) -> None:
        self.depth = 0
        self.composed = 0  # values so far, each alias counted as what it repeats
        self.aliased = 0
        self.sizes: dict[int, int] = {}  # anchored node id: the values it stands for

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        event = self.peek_event()  # type: ignore[attr-defined] # the parser's, beside this
        line = event.start_mark.line + 1
        if isinstance(event, AliasEvent):
            node = self.anchors.get(event.anchor)
            if node is not None:  # (None: an unknown alias, which the composer reports)
                # Inside its own anchor the size is not known yet; _to_python refuses the loop.
                size = self.sizes.get(id(node), 1)
                self.composed += size
                self.aliased += size
                if self.aliased > MAX_ALIASED_VALUES:
                    raise Refused(
                        line,
                        f"YAML aliases (*name) repeat more than {MAX_ALIASED_VALUES} values, "
                        "as in an alias bomb",
                        "write the values out: an images file needs no anchors (&) or aliases",
                    )
            return super().compose_node(parent, index)
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise Refused(line, *_TOO_DEEP)
        before = self.composed
        self.composed += 1
        node = super().compose_node(parent, index)
        self.depth -= 1
        if isinstance(event, NodeEvent) and event.anchor is not None and node is not None:
            self.sizes[id(node)] = self.composed - before
        return node


class Loader(Limits, yaml.SafeLoader):
    """PyYAML's own parser, with the limits: its messages say what is wrong, and where."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.start_counting()


class FastLoader(Limits, Resolver, CParser):
    """libyaml's parser (events) under the same composer and limits, tens of times faster.

    It accepts a little more than PyYAML (a tab after ``key:``, as Go's yaml.v3, a port of
    libyaml, does); what it refuses, :class:`Loader` reads again to say why. Its nesting is
    bounded by libyaml itself, and then by MAX_DEPTH here.
    """

    def __init__(self, text: str) -> None:
        CParser.__init__(self, text)
        Composer.__init__(self)
        Resolver.__init__(self)
        self.start_counting()


def _compose(loader: Limits, *, whole: bool = False) -> Node | None:
    """The document's root node, composed with the limits (Composer's composer). ``whole``:
    by libyaml's own composer in C, three times as fast, for a text without aliases: there is
    nothing then for the limits on aliases to count, libyaml stops at 1,000 levels of nesting,
    and _to_python at MAX_DEPTH."""
    if whole and isinstance(loader, CParser):
        node: Node | None = CParser.get_single_node(loader)
        return node
    return Composer.get_single_node(loader)


def _may_have_aliases(text: str) -> bool:
    # An anchor needs "&", an alias "*": without either character anywhere there are none.
    return "&" in text or "*" in text


def line_of(node: Node) -> int:
    return int(node.start_mark.line) + 1


def shown(text: str) -> str:
    return shorten(text, MAX_QUOTED, "…")


def double_quoted(text: str) -> str:
    """``text`` as a YAML double-quoted scalar, control characters escaped: a hint to copy
    must not carry a raw carriage return or tab into the one-line message."""
    return json.dumps(text, ensure_ascii=False)


def quoted(value: Any) -> str:
    return repr(shown(value)) if isinstance(value, str) else shown(repr(value))


def _written_as_text(node: Node) -> bool:
    """Whether a scalar in a text field is taken as its characters: numbers and dates (YAML
    1.1 ints, floats, timestamps) and the YAML 1.1 booleans that YAML 1.2 reads as words
    (yes, no, on, off: Go's yaml.v3 put them into a string field as written)."""
    if not isinstance(node, ScalarNode) or node.style:
        return False  # quoted (libyaml's plain style is "", PyYAML's None): text already
    implicit = _RESOLVER.resolve(ScalarNode, node.value, (True, False))  # type: ignore[no-untyped-call]
    if implicit != node.tag:
        return False  # an explicit !!tag the characters do not fit (!!int x): YAML says no
    if node.tag in _AS_WRITTEN:
        return True
    return node.tag == "tag:yaml.org,2002:bool" and str(node.value).lower() not in _YAML12_BOOLS


def is_null(node: Node | None) -> bool:
    return isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def describe(node: Node | None) -> str:
    """What YAML made of a value, in the words a user knows."""
    if isinstance(node, SequenceNode):
        return "a list"
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, ScalarNode):
        if node.tag == "tag:yaml.org,2002:str":
            return f"the text {node.value!r}"
        return _SCALAR_KINDS.get(node.tag, f"a {node.tag.rsplit(':', 1)[-1]}")
    return "nothing"
