"""The images file: read, check and turn into typed entries with their targets.

The file is the image-syncer's ``external-images.yaml`` (plus an optional ``target:``), so the
files people already have must keep working. Checking happens in three passes, and every
problem of every pass is reported, each with its file, line and entry:

1. YAML, composed into nodes rather than loaded, so every key and value keeps its line and a
   scalar keeps the text the user wrote: ``tag: 3.10`` is the float 3.1 to a YAML loader, and
   the tag "3.10" to the image-syncer (Go, yaml.v3 into string fields) and to imagesync;
2. ``schemas/images.schema.json``, the published contract (editors can use it too);
3. semantic checks the schema cannot express: reference grammar, digests without ``tag``,
   duplicates and target collisions, the target prefix.

Only ``imagesync.images.mapping`` decides where an entry lands; this module asks it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from yaml._yaml import CParser
from yaml.composer import Composer
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.events import AliasEvent, NodeEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.reader import ReaderError
from yaml.resolver import Resolver

from imagesync import schemas
from imagesync.diagnostics import InvalidFile, Problem, Severity, closest, sort_key
from imagesync.errors import ConfigError, InvalidReference, shorten
from imagesync.images.mapping import DEFAULT_TAG, layout_source, target_reference
from imagesync.images.shard import Shard
from imagesync.inputfile import InputTooLarge, UnreadableInput, read_input
from imagesync.reference import (
    DOCKER_HUB,
    Reference,
    Repository,
    is_valid_tag,
    parse_reference,
    parse_registry_prefix,
)
from imagesync.yamlsyntax import explain as explain_syntax

if TYPE_CHECKING:
    from jsonschema import ValidationError

ENTRY_KEYS = ("source", "tag", "amd64Only")
# targetRepoPrefix: the image-syncer's older name for the target prefix (it ends in "/").
TARGET_KEYS = ("target", "targetRepoPrefix")
TOP_LEVEL_KEYS = (*TARGET_KEYS, "images")
# Keys whose value is text, whatever type YAML would give a plain scalar: `tag: 3.10` is the
# tag "3.10", `tag: 010` the tag "010", as the image-syncer read them. YAML's true, false and
# null stay what they are (an error in a text field): nobody means them as a tag.
TEXT_KEYS = frozenset({"source", "tag", *TARGET_KEYS})
_AS_WRITTEN = frozenset(
    {"tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:timestamp"}
)

# A real images file is a few hundred lines, and the pure-Python YAML reader needs seconds per
# MiB: a larger file is the wrong file, and saying so beats a long wait.
MAX_FILE_BYTES = 1024 * 1024
# The file needs four levels (the file, images, an entry, its keys). Beyond a few hundred the
# reader would hit Python's recursion limit; the margin lets a mistake be reported as itself.
MAX_DEPTH = 32
# Values aliases may repeat, in all: plenty for any use (one alias per entry), and a few lines
# of nested aliases (an "alias bomb") would otherwise expand to billions of values.
MAX_ALIASED_VALUES = 10_000
# A message quotes at most this much of a value: the user needs to recognise it, not reread it.
MAX_QUOTED = 80

NO_TARGET = (
    "no target: set `target:` in the file, --target / -r, or SYNCER_TARGET_REPO / "
    "SYNCER_TARGET_REPO_PREFIX"
)
OVERRIDE = "--target / -r / SYNCER_TARGET_REPO"
TAG_RULE = "a tag is up to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-'"
# Hints stay on one line: problems are printed one per line, like a compiler's.
LIST_IMAGES = 'list the images under `images:`, one `- source: "<image>"` line each'

# Stands in for a missing target so that entries can still be mapped and compared: whether two
# entries collide does not depend on the prefix. Never leaves this module (a missing target is
# an error, so no ImagesFile is returned).
_PLACEHOLDER_PREFIX = Repository("target.invalid", "")

# A JSON path into the document: keys and list positions from the root.
_Path = tuple[str | int, ...]
# Where a problem is: a path into the document, a line number, or nowhere in the file.
_Where = _Path | int | None

# What YAML makes of a plain scalar, in the words a user knows.
_SCALAR_KINDS = {
    "tag:yaml.org,2002:int": "a number",
    "tag:yaml.org,2002:float": "a number",
    "tag:yaml.org,2002:bool": "a boolean",
    "tag:yaml.org,2002:null": "empty (null)",
    "tag:yaml.org,2002:timestamp": "a date",
    "tag:yaml.org,2002:binary": "binary data",
}


@dataclass(frozen=True)
class ImageEntry:
    """One ``- source: …`` entry, checked, with the reference it lands on in the target.

    ``index`` is 1-based in file order; ``line`` is where the entry starts; ``source_text`` is
    the source as written (the plan shows it, the mapping is defined on it); ``tag`` is the
    entry's ``tag`` key exactly as written, None when absent. ``origin`` is where the image is
    read: the source, or its copy in a source layout tree (``--source-layout``).
    """

    index: int
    line: int
    source_text: str
    source: Reference
    tag: str | None
    amd64_only: bool
    target: Reference
    origin: Reference
    # Where the entry is written: its last line, the column of its "-" (None when the list is
    # not in block style) and of its keys; a fix to paste goes in exactly there.
    last_line: int = 0
    indent: int | None = None
    key_indent: int = 2

    @property
    def sync_key(self) -> tuple[str, str]:
        """Entries with equal keys are the same work: same target tag, same source image.

        A tag-less source means ``latest``; with a digest, the digest is what is copied.
        """
        what = self.source.digest or self.source.tag or DEFAULT_TAG
        return str(self.target), f"{self.source.repository}@{what}"


@dataclass(frozen=True)
class ImagesFile:
    """A checked images file: no errors, only warnings are left for the plan to show.

    ``sha256`` is over the file's bytes, so a plan can tell whether it was made from them.
    ``source_layout``: the layout tree every source is read from, when one was given.
    """

    path: Path
    sha256: str
    target_prefix: Repository
    entries: tuple[ImageEntry, ...]
    warnings: tuple[Problem, ...] = ()
    source_layout: Repository | None = None
    # The part of the file these entries are (``--shard``); None: all of it.
    shard: Shard | None = None

    def in_shard(self, shard: Shard | None) -> ImagesFile:
        """The entries of one shard, with their warnings and the file's own."""
        if shard is None:
            return self
        entries = tuple(
            e for e in self.entries if shard.holds(self.target_prefix, e.target.repository)
        )
        kept = {entry.index for entry in entries}
        warnings = tuple(w for w in self.warnings if w.entry_index is None or w.entry_index in kept)
        return replace(self, entries=entries, warnings=warnings, shard=shard)


class InvalidImagesFile(InvalidFile):
    """The images file has errors; ``problems`` holds all of them, and the warnings."""


def load_images_file(
    path: str | Path,
    target_override: str | None = None,
    default_target: str | None = None,
    source_layout: Repository | None = None,
) -> ImagesFile:
    """Read and check an images file; ``target_override`` (--target) wins over ``target:``,
    ``default_target`` (a saved plan's prefix) counts only when neither gives one. With
    ``source_layout`` every entry is read from that layout tree, where ``--target oci:`` of the
    same file put it.

    Raises ConfigError when the file cannot be read, InvalidImagesFile when it has errors.
    """
    source = Path(path)
    try:
        data = read_input(source, MAX_FILE_BYTES)
    except InputTooLarge:
        data = None  # the checker says so, as a located problem
    except UnreadableInput as error:
        raise ConfigError(
            f"{source}: cannot read the images file: {error.reason}",
            "pass the images file with -i/--images-file or SYNCER_IMAGES_FILE",
        ) from None
    checker = _Checker(str(source))
    entries, prefix = checker.check(data, target_override, default_target)
    problems = tuple(sorted(checker.problems, key=sort_key))
    if data is None or prefix is None or any(p.is_error for p in problems):
        raise InvalidImagesFile(source, problems)
    if source_layout is not None:
        entries = [
            replace(e, origin=layout_source(e.source, e.tag, source_layout)) for e in entries
        ]
    return ImagesFile(
        path=source,
        sha256=hashlib.sha256(data).hexdigest(),
        target_prefix=prefix,
        entries=tuple(entries),
        warnings=problems,
        source_layout=source_layout,
    )


def images_schema() -> dict[str, Any]:
    """The JSON Schema of the images file, as shipped in the package."""
    return schemas.schema("images")


@dataclass
class _Document:
    """The composed YAML as plain values, with the node of every value and every key."""

    value: Any
    nodes: dict[_Path, Node] = field(default_factory=dict)
    key_nodes: dict[_Path, Node] = field(default_factory=dict)


class _Checker:
    """Runs the three passes over one file and collects what it finds."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[Problem] = []
        # Values the schema already complained about: the semantic pass leaves them alone,
        # so one mistake gives one message.
        self.flagged: set[_Path] = set()
        self.document = _Document(None)
        # Builds the file's scalars, one by one (one constructor for all of them).
        self.constructor = SafeConstructor()

    # -- reporting -----------------------------------------------------------------------

    def error(
        self, where: _Where, message: str, hint: str | None = None, *, entry: int | None = None
    ) -> None:
        self._add(where, message, hint, Severity.ERROR, entry)

    def warn(
        self, where: _Where, message: str, hint: str | None = None, *, entry: int | None = None
    ) -> None:
        self._add(where, message, hint, Severity.WARNING, entry)

    def _add(
        self,
        where: _Where,
        message: str,
        hint: str | None,
        severity: Severity,
        entry: int | None,
    ) -> None:
        """``where`` is a path into the document, or a line number (None: no line)."""
        if isinstance(where, tuple):
            line, entry = self.line(where), _entry_index(where)
        else:
            line = where
        self.problems.append(Problem(self.path, line, entry, message, hint, severity))

    def line(self, path: _Path) -> int | None:
        """The line of the value at ``path``, or of the nearest enclosing value that exists."""
        # The key's line: an empty value or one that spans lines has no better line of its own.
        key_node = self.document.key_nodes.get(path)
        if key_node is not None:
            return _line_of(key_node)
        for end in range(len(path), -1, -1):
            node = self.document.nodes.get(path[:end])
            if node is not None:
                return _line_of(node)
        return None

    def text(self, path: _Path) -> str:
        """A value as the user wrote it (for scalars: the exact characters)."""
        node = self.document.nodes.get(path)
        if isinstance(node, ScalarNode):
            return str(node.value)
        if isinstance(node, SequenceNode):
            return "a list"
        if isinstance(node, MappingNode):
            return "a mapping"
        return "nothing"

    # -- the passes ----------------------------------------------------------------------

    def check(
        self, data: bytes | None, target_override: str | None, default_target: str | None = None
    ) -> tuple[list[ImageEntry], Repository | None]:
        """``data`` is None when the file is larger than an images file can be."""
        if data is None or len(data) > MAX_FILE_BYTES:
            self.error(
                None,
                f"the file is larger than {MAX_FILE_BYTES // 1024 // 1024} MiB, too large to be "
                "an images file",
                "check the -i/--images-file path; split a list this long into several files",
            )
            return [], None
        if not self.read_yaml(data):
            return [], None
        self.check_schema()
        prefix = self.check_target(target_override, default_target)
        entries = self.check_entries(prefix or _PLACEHOLDER_PREFIX, known_prefix=prefix is not None)
        self.check_duplicates(entries, known_prefix=prefix is not None)
        return entries, prefix

    def read_yaml(self, data: bytes) -> bool:
        """Compose the YAML into ``self.document``; False when there is nothing to check."""
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            self.error(
                data[: error.start].count(b"\n") + 1,
                f"the file is not UTF-8 text (byte {error.start})",
                "save it as UTF-8",
            )
            return False
        try:
            # libyaml's parser first: the pure-Python one needs seconds for a file of 10,000
            # entries. Whatever it refuses is read again by the pure-Python parser, whose
            # messages and positions are the ones users are told.
            root = _compose(_FastLoader(text), whole=not _may_have_aliases(text))
        except _Refused as refused:
            self.error(refused.line, refused.message, refused.hint)
            return False
        except (yaml.YAMLError, ValueError):
            found, root = self.compose_exactly(text)
            if not found:
                return False
        if root is None:
            self.error(1, "the file is empty", LIST_IMAGES)
            return False
        try:
            self.document.value = self.to_python(root, (), active=set())
        except _Refused as refused:
            self.error(refused.line, refused.message, refused.hint)
            return False
        return True

    def compose_exactly(self, text: str) -> tuple[bool, Node | None]:
        """Compose with the pure-Python parser, reporting what stops it on its line; False
        when it stops."""
        try:
            loader = _Loader(text)
        except ReaderError as error:
            # Raised before any token, with a position and no mark: the line is ours to find.
            character = error.character
            code = ord(character) if isinstance(character, str) else int(character)
            self.error(
                text.count("\n", 0, error.position) + 1,
                f"not valid YAML: character U+{code:04X} is not allowed (an invisible or control "
                "character)",
                "delete it; most editors do not show it",
            )
            return False, None
        try:
            return True, _compose(loader)
        except _Refused as refused:
            self.error(refused.line, refused.message, refused.hint)
        except yaml.MarkedYAMLError as error:
            problem = explain_syntax(error, text)
            self.error(problem.line, problem.message, problem.hint)
        except ValueError as error:
            # PyYAML's scanner hands a "\U" escape beyond U+10FFFF to chr() unchecked; it stops
            # right after the escape.
            message = f"not valid YAML: {error}"
            if "chr()" in str(error):
                message = "not valid YAML: a \\U escape beyond U+10FFFF, the last character"
            self.error(loader.get_mark().line + 1, message, "fix the escape or write the character")
        except yaml.YAMLError as error:
            self.error(None, f"not valid YAML: {error}", "fix the YAML syntax")
        finally:
            loader.dispose()
        return False, None

    def to_python(self, node: Node, path: _Path, active: set[int]) -> Any:
        """Plain values for the schema, recording the node of each; keys stay as written."""
        self.document.nodes[path] = node
        if len(path) >= MAX_DEPTH:
            # Only aliases get here (the loader stops deeper nesting): each adds its anchor's
            # depth to its own.
            raise _Refused(self.line(path) or 1, *_TOO_DEEP)
        if id(node) in active:  # an alias inside its own anchor
            self.error(path, "a YAML alias refers to itself", "remove the alias")
            return None
        if isinstance(node, MappingNode):
            active.add(id(node))
            mapping: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, ScalarNode):
                    self.error(
                        _line_of(key_node),
                        "a key must be a plain name",
                        "write it as a name: source:",
                    )
                    continue
                key = str(key_node.value)
                self.document.key_nodes[(*path, key)] = key_node
                if key in mapping:
                    self.error(
                        (*path, key),
                        f"key {_quoted(key)} appears twice here; YAML would silently keep the "
                        "last one",
                        "remove one of them",
                    )
                mapping[key] = self.to_python(value_node, (*path, key), active)
            active.discard(id(node))
            return mapping
        if isinstance(node, SequenceNode):
            active.add(id(node))
            items = [
                self.to_python(item, (*path, position), active)
                for position, item in enumerate(node.value)
            ]
            active.discard(id(node))
            return items
        if path and path[-1] in TEXT_KEYS and _written_as_text(node):
            return str(node.value)
        try:
            return self.constructor.construct_object(node)
        except ConstructorError as error:
            self.error(
                path,
                f"YAML cannot read {_quoted(node.value)} as {node.tag}: {error.problem}",
                "remove the explicit !tag",
            )
            return str(node.value)
        except ValueError:
            # What looks like a date or a number and is none (2001-13-45, 0x_, 5000 digits):
            # Python's own reason names Python internals, so it is left out.
            written = _shown(str(node.value))
            self.error(
                path, f"YAML cannot read {written!r} as {_describe(node)}", f'quote it: "{written}"'
            )
            return str(node.value)

    def check_schema(self) -> None:
        for error in schemas.validator("images").iter_errors(self.document.value):
            self.schema_problem(error)

    def schema_problem(self, error: ValidationError) -> None:
        """Say what the schema found in the user's words, one case per keyword."""
        path: _Path = tuple(error.absolute_path)
        self.flagged.add(path)
        keyword = error.validator
        # Both are set on every error the validator yields (Unset only exists before that).
        instance: Any = error.instance
        expected: Any = error.validator_value
        name = _field_name(path)
        if keyword == "additionalProperties":
            known = TOP_LEVEL_KEYS if not path else ENTRY_KEYS
            for key in instance:
                if key not in known:
                    self.unknown_key(path, str(key), known)
        elif keyword == "required":
            for key in expected:
                if key in instance:
                    continue
                if key == "source":
                    self.error(path, "the entry has no source", 'add source: "<image>"')
                else:
                    self.error(path, f"the file has no `{key}:`", LIST_IMAGES)
        elif keyword == "type":
            self.type_problem(path, str(expected))
        elif keyword == "minItems":
            self.error(path, "the images list is empty", LIST_IMAGES)
        elif keyword == "minLength":
            self.error(path, f"{name} is empty", f"write the {name} or remove the key")
        elif keyword == "maxLength":
            self.error(
                path,
                f"{name} is {len(instance)} characters long, at most {expected} are allowed",
                "shorten it",
            )
        elif keyword == "pattern" and path[-1:] == ("tag",):
            self.error(path, f"tag {_quoted(instance)} is not valid", TAG_RULE)
        else:
            self.error(path, f"{name}: {error.message}")

    def unknown_key(self, path: _Path, key: str, known: Sequence[str]) -> None:
        match = closest(key, known)
        key_node = self.document.key_nodes.get((*path, key))
        line = _line_of(key_node) if key_node is not None else self.line(path)
        message = f"unknown key {_quoted(key)}"
        message += f": did you mean {match}?" if match else " (it would be ignored)"
        hint = f"rename it to {match}" if match else f"the known keys are {', '.join(known)}"
        self.error(line, message, hint, entry=_entry_index(path))

    def type_problem(self, path: _Path, expected: str) -> None:
        """A value of the wrong type: what remains after text fields took numbers and dates
        as written is booleans, nulls, lists, mappings and explicit YAML tags."""
        node = self.document.nodes.get(path)
        written = _shown(self.text(path))
        kind = _describe(node)
        if not path:
            hint = "put `images:` on the first line and indent the list under it"
            if not isinstance(node, SequenceNode):
                hint = LIST_IMAGES
            self.error(path, f"the file must be a mapping with an `images:` list, not {kind}", hint)
        elif path == ("images",):
            if _is_null(node):
                self.error(path, "the images list is empty", LIST_IMAGES)
            else:
                self.error(
                    path,
                    f"`images` must be a list of entries, not {kind}",
                    LIST_IMAGES,
                )
        elif len(path) == 2 and path[0] == "images":
            hint = 'write each entry as - source: "<image>"'
            if isinstance(node, ScalarNode) and not _is_null(node):
                hint = f"write it as - source: {_double_quoted(written)}"
            self.error(path, f"the entry is {kind}, not a mapping with `source:`", hint)
        elif _is_null(node):
            self.error(path, f"{path[-1]} is empty", f"write the {path[-1]} or remove the key")
        elif expected == "boolean":
            hint = f"write {path[-1]}: true or {path[-1]}: false"
            if isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:str":
                hint += ", without quotes"
            self.error(path, f"{path[-1]} must be true or false, not {written!r}", hint)
        elif isinstance(node, ScalarNode):
            # The heart of the `tag: 3.10` trap: show the characters written, never YAML's
            # reading of them, and ask for quotes rather than guess what was meant.
            self.error(
                path,
                f"{path[-1]} {written} is not text: YAML reads it as {kind}",
                f"quote it: {path[-1]}: {_double_quoted(written)}",
            )
        else:
            self.error(path, f"{path[-1]} must be text, not {kind}", f'write {path[-1]}: "<value>"')

    def check_target(self, override: str | None, default: str | None) -> Repository | None:
        value = self.document.value
        if not isinstance(value, dict):
            return None  # the schema reported it; a missing target would only add noise
        # Checked even when overridden: the next run without --target would use them.
        in_file: dict[str, Repository | None] = {
            key: self.parse_prefix((key,), text, key)
            for key in TARGET_KEYS
            if isinstance(text := value.get(key), str) and (key,) not in self.flagged
        }
        file_prefix = self.one_prefix(in_file)
        if override is not None and override.strip():
            return self.parse_prefix(None, override, OVERRIDE)
        if not any(key in value for key in TARGET_KEYS):
            if default:
                return self.parse_prefix(None, default, "the plan's target")
            self.error(None, NO_TARGET, "for example target: registry.example.com/external")
        return file_prefix

    def one_prefix(self, in_file: dict[str, Repository | None]) -> Repository | None:
        """The file's prefix from ``target:`` or ``targetRepoPrefix:``; both may be given only
        when they agree (a trailing "/" aside)."""
        prefixes = {key: prefix for key, prefix in in_file.items() if prefix is not None}
        if len(set(prefixes.values())) > 1:
            (first, first_prefix), (second, second_prefix) = sorted(
                prefixes.items(), key=lambda item: self.line((item[0],)) or 0
            )
            self.error(
                (second,),
                f"{first}: (line {self.line((first,))}) and {second}: (line "
                f"{self.line((second,))}) name different prefixes, {first_prefix} and "
                f"{second_prefix}",
                f"keep one of them; {TARGET_KEYS[1]} is the image-syncer's older name for "
                f"{TARGET_KEYS[0]}",
            )
            return None
        return next(iter(prefixes.values()), None)

    def parse_prefix(self, path: _Path | None, text: str, what: str) -> Repository | None:
        try:
            prefix = parse_registry_prefix(text)
        except InvalidReference as error:
            self.error(path, f"{what} {text!r}: {error.message}", error.hint)
            return None
        first = text.strip().split("/", 1)[0]
        if prefix.registry == DOCKER_HUB and "." not in first and ":" not in first:
            self.warn(
                path,
                f"{what} {text!r} has no registry host, so it means {prefix} on Docker Hub",
                "write the registry host first, e.g. registry.example.com/external",
            )
        return prefix

    def check_entries(self, prefix: Repository, *, known_prefix: bool) -> list[ImageEntry]:
        value = self.document.value
        items = value.get("images") if isinstance(value, dict) else None
        if not isinstance(items, list):
            return []
        entries = []
        for position, item in enumerate(items):
            if isinstance(item, dict):
                entry = self.check_entry(("images", position), item, prefix, known_prefix)
                if entry is not None:
                    entries.append(entry)
        return entries

    def check_entry(
        self, path: _Path, item: dict[str, Any], prefix: Repository, known_prefix: bool
    ) -> ImageEntry | None:
        source_path, tag_path = (*path, "source"), (*path, "tag")
        source_text = item.get("source")
        if not isinstance(source_text, str) or source_path in self.flagged:
            return None
        ok = True
        tag = item.get("tag")
        if "tag" in item and (not isinstance(tag, str) or tag_path in self.flagged):
            ok = False
        elif isinstance(tag, str) and not is_valid_tag(tag):
            self.error(tag_path, f"tag {_quoted(tag)} is not valid", TAG_RULE)
            ok = False
        amd64_only = item.get("amd64Only", False)
        if not isinstance(amd64_only, bool):
            ok = False
        try:
            source = parse_reference(source_text)
        except InvalidReference as error:
            self.error(source_path, f"source {source_text!r}: {error.message}", error.hint)
            return None
        if source.repository.is_layout:
            self.error(
                source_path,
                f"source {source_text!r} is an OCI layout: sources are images in registries",
                "write the registry image; to read every source from a layout tree that "
                "--target oci:DIR wrote, give --source-layout DIR",
            )
            return None
        self.check_registry_host(source_path, source)
        if source.digest and not source.tag and "tag" not in item:
            self.error(
                source_path,
                "a source with a digest needs tag: the digest says what to copy, "
                "tag what to call it in the target",
                'add a line under it: tag: "<version>"',
            )
            ok = False
        elif not source.digest and not source.tag:
            self.warn(
                source_path,
                f"source {source_text} has neither tag nor digest, so it means :latest, a moving "
                "tag: once it moves, the target tag conflicts",
                f"pin it: source: {source_text}:<version> or {source_text}@sha256:<digest>",
            )
        if not ok or not isinstance(tag, str | None):
            return None
        try:
            target = target_reference(source, tag, prefix)
        except InvalidReference as error:
            # With the placeholder prefix a length problem would be made up: report it only
            # against the real one.
            if known_prefix:
                self.error(source_path, f"its target: {error.message}", error.hint)
            return None
        node = self.document.nodes[path]
        listing = self.document.nodes[path[:1]]
        block = isinstance(listing, SequenceNode) and not listing.flow_style
        assert isinstance(node, MappingNode)
        return ImageEntry(
            index=int(path[1]) + 1,
            line=_line_of(node),
            source_text=source_text,
            source=source,
            tag=tag,
            amd64_only=amd64_only,
            target=target,
            origin=source,
            last_line=max(int(value.end_mark.line) + 1 for _, value in node.value),
            indent=int(listing.start_mark.column) if block else None,
            key_indent=int(node.start_mark.column),
        )

    def check_registry_host(self, path: _Path, source: Reference) -> None:
        """Warn when capital letters alone make the first component a registry host.

        The grammar reads ``Bitnami/app`` as the registry ``Bitnami``; the user almost surely
        meant the Docker Hub organisation, and plan would only fail with a DNS error.
        """
        first, slash, _ = source.written_name.partition("/")
        hostlike = "." in first or ":" in first
        if slash and first == source.registry and not hostlike and first != first.lower():
            self.warn(
                path,
                f"{first!r} is read as a registry host only because it has capital letters",
                f"for Docker Hub, write it in lower case: {first.lower()}/…",
            )

    def check_duplicates(self, entries: Iterable[ImageEntry], *, known_prefix: bool) -> None:
        first_for_target: dict[str, ImageEntry] = {}
        for entry in entries:
            target = str(entry.target)
            first = first_for_target.setdefault(target, entry)
            if first is entry:
                continue
            shown = target
            if not known_prefix:
                shown = target.replace(_PLACEHOLDER_PREFIX.registry, "<target>", 1)
            if first.sync_key == entry.sync_key:
                self.warn(
                    entry.line,
                    f"repeats entry {first.index} (line {first.line}): same source, same target "
                    f"{shown}; listed twice, synced once",
                    "remove one of the two entries",
                    entry=entry.index,
                )
            else:
                self.error(
                    entry.line,
                    f"maps to {shown} like entry {first.index} (line {first.line}), but from "
                    f"another source ({entry.source_text} here, {first.source_text} there); "
                    "one target tag holds one image",
                    "give one of them another tag, or remove the one that is stale",
                    entry=entry.index,
                )


_TOO_DEEP = (
    f"the YAML nests more than {MAX_DEPTH} levels deep",
    "an images file needs four: the file, images, an entry and its keys",
)


class _Refused(Exception):
    """Reading stops: going on would exhaust the stack or the memory."""

    def __init__(self, line: int, message: str, hint: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message
        self.hint = hint


class _Limits(Composer):
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
                # Inside its own anchor the size is not known yet; to_python refuses the loop.
                size = self.sizes.get(id(node), 1)
                self.composed += size
                self.aliased += size
                if self.aliased > MAX_ALIASED_VALUES:
                    raise _Refused(
                        line,
                        f"YAML aliases (*name) repeat more than {MAX_ALIASED_VALUES} values, "
                        "as in an alias bomb",
                        "write the values out: an images file needs no anchors (&) or aliases",
                    )
            return super().compose_node(parent, index)
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _Refused(line, *_TOO_DEEP)
        before = self.composed
        self.composed += 1
        node = super().compose_node(parent, index)
        self.depth -= 1
        if isinstance(event, NodeEvent) and event.anchor is not None and node is not None:
            self.sizes[id(node)] = self.composed - before
        return node


class _Loader(_Limits, yaml.SafeLoader):
    """PyYAML's own parser, with the limits: its messages say what is wrong, and where."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.start_counting()


class _FastLoader(_Limits, Resolver, CParser):
    """libyaml's parser (events) under the same composer and limits, tens of times faster.

    It accepts a little more than PyYAML (a tab after ``key:``, as Go's yaml.v3, a port of
    libyaml, does); what it refuses, :class:`_Loader` reads again to say why. Its nesting is
    bounded by libyaml itself, and then by MAX_DEPTH here.
    """

    def __init__(self, text: str) -> None:
        CParser.__init__(self, text)
        Composer.__init__(self)
        Resolver.__init__(self)
        self.start_counting()


def _compose(loader: _Limits, *, whole: bool = False) -> Node | None:
    """The document's root node, composed with the limits (Composer's composer). ``whole``:
    by libyaml's own composer in C, three times as fast, for a text without aliases: there is
    nothing then for the limits on aliases to count, libyaml stops at 1,000 levels of nesting,
    and to_python at MAX_DEPTH."""
    if whole and isinstance(loader, CParser):
        node: Node | None = CParser.get_single_node(loader)
        return node
    return Composer.get_single_node(loader)


def _may_have_aliases(text: str) -> bool:
    # An anchor needs "&", an alias "*": without either character anywhere there are none.
    return "&" in text or "*" in text


def _line_of(node: Node) -> int:
    return int(node.start_mark.line) + 1


def _entry_index(path: _Path) -> int | None:
    if len(path) >= 2 and path[0] == "images" and isinstance(path[1], int):
        return path[1] + 1
    return None


def _field_name(path: _Path) -> str:
    if not path:
        return "the file"
    last = path[-1]
    return "the entry" if isinstance(last, int) else str(last)


def _shown(text: str) -> str:
    return shorten(text, MAX_QUOTED, "…")


def _double_quoted(text: str) -> str:
    """``text`` as a YAML double-quoted scalar, control characters escaped: a hint to copy
    must not carry a raw carriage return or tab into the one-line message."""
    return json.dumps(text, ensure_ascii=False)


def _quoted(value: Any) -> str:
    return repr(_shown(value)) if isinstance(value, str) else _shown(repr(value))


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


_YAML12_BOOLS = frozenset({"true", "false"})
_RESOLVER = Resolver()


def _is_null(node: Node | None) -> bool:
    return isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def _describe(node: Node | None) -> str:
    if isinstance(node, SequenceNode):
        return "a list"
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, ScalarNode):
        if node.tag == "tag:yaml.org,2002:str":
            return f"the text {node.value!r}"
        return _SCALAR_KINDS.get(node.tag, f"a {node.tag.rsplit(':', 1)[-1]}")
    return "nothing"
