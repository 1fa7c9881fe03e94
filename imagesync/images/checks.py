"""The checks of an images file, every problem of every pass, each located.

Three passes, and every problem of every pass is reported, each with its file, line and entry:

1. YAML, composed into nodes (:mod:`imagesync.images.yamlnodes`), so every key and value keeps
   its line and a scalar in a text field keeps the text the user wrote;
2. ``schemas/images.schema.json``, the published contract (editors can use it too), its
   findings said in the user's words;
3. semantic checks the schema cannot express: reference grammar, digests without ``tag``,
   duplicates and target collisions, the target prefix.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from imagesync import schemas
from imagesync.diagnostics import Problem, Severity, closest
from imagesync.errors import InvalidReference
from imagesync.images.entry import ImageEntry
from imagesync.images.mapping import target_reference
from imagesync.images.yamlnodes import (
    Document,
    DocumentReader,
    NodePath,
    Where,
    describe,
    double_quoted,
    is_null,
    line_of,
    quoted,
    shown,
)
from imagesync.reference import (
    DOCKER_HUB,
    Reference,
    Repository,
    is_valid_tag,
    parse_reference,
    parse_registry_prefix,
    without_userinfo,
)

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

# A real images file is a few hundred lines, and the pure-Python YAML reader needs seconds per
# MiB: a larger file is the wrong file, and saying so beats a long wait.
MAX_FILE_BYTES = 1024 * 1024

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
# an error, so no ImagesFile is made).
_PLACEHOLDER_PREFIX = Repository("target.invalid", "")


class Problems:
    """The problems found in one file so far, each located: a path into the document is
    turned into its line and entry as it is reported."""

    def __init__(self, path: str, document: Document) -> None:
        self.path = path
        self.document = document
        self.problems: list[Problem] = []

    def error(
        self, where: Where, message: str, hint: str | None = None, *, entry: int | None = None
    ) -> None:
        self._add(where, message, hint, Severity.ERROR, entry)

    def warn(
        self, where: Where, message: str, hint: str | None = None, *, entry: int | None = None
    ) -> None:
        self._add(where, message, hint, Severity.WARNING, entry)

    def _add(
        self,
        where: Where,
        message: str,
        hint: str | None,
        severity: Severity,
        entry: int | None,
    ) -> None:
        """``where`` is a path into the document, or a line number (None: no line)."""
        if isinstance(where, tuple):
            line, entry = self.document.line(where), _entry_index(where)
        else:
            line = where
        self.problems.append(Problem(self.path, line, entry, message, hint, severity))


class Checker(Problems):
    """Runs the three passes over one file and collects what it finds."""

    def __init__(self, path: str) -> None:
        self.reader = DocumentReader(self.error, TEXT_KEYS)
        super().__init__(path, self.reader.document)
        # Values the schema already complained about: the semantic pass leaves them alone,
        # so one mistake gives one message.
        self.flagged: set[NodePath] = set()

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
        composed, root = self.reader.compose(text)
        if not composed:
            return False
        if root is None:
            self.error(1, "the file is empty", LIST_IMAGES)
            return False
        return self.reader.build(root)

    def check_schema(self) -> None:
        for error in schemas.validator("images").iter_errors(self.document.value):
            self.schema_problem(error)

    def schema_problem(self, error: ValidationError) -> None:
        """Say what the schema found in the user's words, one case per keyword."""
        path: NodePath = tuple(error.absolute_path)
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
            node = self.document.nodes.get(path)
            self.error(path, *_wrong_type(path, node, shown(self.document.text(path)), expected))
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
            self.error(path, f"tag {quoted(instance)} is not valid", TAG_RULE)
        else:
            self.error(path, f"{name}: {error.message}")

    def unknown_key(self, path: NodePath, key: str, known: Sequence[str]) -> None:
        match = closest(key, known)
        key_node = self.document.key_nodes.get((*path, key))
        line = line_of(key_node) if key_node is not None else self.document.line(path)
        message = f"unknown key {quoted(key)}"
        message += f": did you mean {match}?" if match else " (it would be ignored)"
        hint = f"rename it to {match}" if match else f"the known keys are {', '.join(known)}"
        self.error(line, message, hint, entry=_entry_index(path))

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
            line = self.document.line
            (first, first_prefix), (second, second_prefix) = sorted(
                prefixes.items(), key=lambda item: line((item[0],)) or 0
            )
            self.error(
                (second,),
                f"{first}: (line {line((first,))}) and {second}: (line "
                f"{line((second,))}) name different prefixes, {first_prefix} and "
                f"{second_prefix}",
                f"keep one of them; {TARGET_KEYS[1]} is the image-syncer's older name for "
                f"{TARGET_KEYS[0]}",
            )
            return None
        return next(iter(prefixes.values()), None)

    def parse_prefix(self, path: NodePath | None, text: str, what: str) -> Repository | None:
        try:
            prefix = parse_registry_prefix(text)
        except InvalidReference as error:
            self.error(path, f"{what} {without_userinfo(text)!r}: {error.message}", error.hint)
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
        self, path: NodePath, item: dict[str, Any], prefix: Repository, known_prefix: bool
    ) -> ImageEntry | None:
        source_path = (*path, "source")
        source_text = item.get("source")
        if not isinstance(source_text, str) or source_path in self.flagged:
            return None
        ok = self.fields_usable(path, item)
        source = self.parse_source(source_path, source_text)
        if source is None:
            return None
        if capitals := _capitals_as_host(source):
            self.warn(source_path, *capitals)
        ok = self.check_pinning(source_path, source_text, source, "tag" in item) and ok
        tag = item.get("tag")
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
        amd64_only = item.get("amd64Only", False)
        return _entry(self.document, path, source_text, source, tag, amd64_only, target)

    def fields_usable(self, path: NodePath, item: dict[str, Any]) -> bool:
        """Whether ``tag`` and ``amd64Only`` can be used (the schema said what is wrong with
        them when it found it; an invalid tag is said here)."""
        tag_path = (*path, "tag")
        tag = item.get("tag")
        ok = True
        if "tag" in item and (not isinstance(tag, str) or tag_path in self.flagged):
            ok = False
        elif isinstance(tag, str) and not is_valid_tag(tag):
            self.error(tag_path, f"tag {quoted(tag)} is not valid", TAG_RULE)
            ok = False
        return isinstance(item.get("amd64Only", False), bool) and ok

    def parse_source(self, path: NodePath, source_text: str) -> Reference | None:
        """The entry's source, when it names an image in a registry."""
        try:
            source = parse_reference(source_text)
        except InvalidReference as error:
            shown = without_userinfo(source_text)
            self.error(path, f"source {shown!r}: {error.message}", error.hint)
            return None
        if source.repository.is_layout:
            self.error(
                path,
                f"source {source_text!r} is an OCI layout: sources are images in registries",
                "write the registry image; to read every source from a layout tree that "
                "--target oci:DIR wrote, give --source-layout DIR",
            )
            return None
        return source

    def check_pinning(
        self, path: NodePath, source_text: str, source: Reference, has_tag: bool
    ) -> bool:
        """A digest needs a tag to be called by; no tag and no digest is a moving ``latest``.
        False when the entry cannot be mapped."""
        if source.digest and not source.tag and not has_tag:
            self.error(
                path,
                "a source with a digest needs tag: the digest says what to copy, "
                "tag what to call it in the target",
                'add a line under it: tag: "<version>"',
            )
            return False
        if not source.digest and not source.tag:
            self.warn(
                path,
                f"source {source_text} has neither tag nor digest, so it means :latest, a moving "
                "tag: once it moves, the target tag conflicts",
                f"pin it: source: {source_text}:<version> or {source_text}@sha256:<digest>",
            )
        return True

    def check_duplicates(self, entries: Iterable[ImageEntry], *, known_prefix: bool) -> None:
        first_for_target: dict[str, ImageEntry] = {}
        for entry in entries:
            target = str(entry.target)
            first = first_for_target.setdefault(target, entry)
            if first is entry:
                continue
            shown_target = target
            if not known_prefix:
                shown_target = target.replace(_PLACEHOLDER_PREFIX.registry, "<target>", 1)
            if first.sync_key == entry.sync_key:
                self.warn(
                    entry.line,
                    f"repeats entry {first.index} (line {first.line}): same source, same target "
                    f"{shown_target}; listed twice, synced once",
                    "remove one of the two entries",
                    entry=entry.index,
                )
            else:
                self.error(
                    entry.line,
                    f"maps to {shown_target} like entry {first.index} (line {first.line}), but "
                    f"from another source ({entry.source_text} here, {first.source_text} there); "
                    "one target tag holds one image",
                    "give one of them another tag, or remove the one that is stale",
                    entry=entry.index,
                )


def _entry(
    document: Document,
    path: NodePath,
    source_text: str,
    source: Reference,
    tag: str | None,
    amd64_only: bool,
    target: Reference,
) -> ImageEntry:
    """The checked entry at ``path``, with where it is written (for a fix to paste over it)."""
    node = document.nodes[path]
    listing = document.nodes[path[:1]]
    block = isinstance(listing, SequenceNode) and not listing.flow_style
    assert isinstance(node, MappingNode)
    return ImageEntry(
        index=int(path[1]) + 1,
        line=line_of(node),
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


def _wrong_type(path: NodePath, node: Node | None, written: str, expected: str) -> tuple[str, str]:
    """What is wrong with a value of the wrong type, and how to fix it: what remains after
    text fields took numbers and dates as written is booleans, nulls, lists, mappings and
    explicit YAML tags. ``written``: the value as the user wrote it."""
    kind = describe(node)
    if not path:
        hint = "put `images:` on the first line and indent the list under it"
        if not isinstance(node, SequenceNode):
            hint = LIST_IMAGES
        return f"the file must be a mapping with an `images:` list, not {kind}", hint
    if path == ("images",):
        if is_null(node):
            return "the images list is empty", LIST_IMAGES
        return f"`images` must be a list of entries, not {kind}", LIST_IMAGES
    if len(path) == 2 and path[0] == "images":
        hint = 'write each entry as - source: "<image>"'
        if isinstance(node, ScalarNode) and not is_null(node):
            hint = f"write it as - source: {double_quoted(written)}"
        return f"the entry is {kind}, not a mapping with `source:`", hint
    name = path[-1]
    if is_null(node):
        return f"{name} is empty", f"write the {name} or remove the key"
    if str(expected) == "boolean":
        hint = f"write {name}: true or {name}: false"
        if isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:str":
            hint += ", without quotes"
        return f"{name} must be true or false, not {written!r}", hint
    if isinstance(node, ScalarNode):
        # The heart of the `tag: 3.10` trap: show the characters written, never YAML's
        # reading of them, and ask for quotes rather than guess what was meant.
        return (
            f"{name} {written} is not text: YAML reads it as {kind}",
            f"quote it: {name}: {double_quoted(written)}",
        )
    return f"{name} must be text, not {kind}", f'write {name}: "<value>"'


def _capitals_as_host(source: Reference) -> tuple[str, str] | None:
    """A warning when capital letters alone make the first component a registry host.

    The grammar reads ``Bitnami/app`` as the registry ``Bitnami``; the user almost surely
    meant the Docker Hub organisation, and plan would only fail with a DNS error.
    """
    first, slash, _ = source.written_name.partition("/")
    hostlike = "." in first or ":" in first
    if slash and first == source.registry and not hostlike and first != first.lower():
        return (
            f"{first!r} is read as a registry host only because it has capital letters",
            f"for Docker Hub, write it in lower case: {first.lower()}/…",
        )
    return None


def _entry_index(path: NodePath) -> int | None:
    if len(path) >= 2 and path[0] == "images" and isinstance(path[1], int):
        return path[1] + 1
    return None


def _field_name(path: NodePath) -> str:
    if not path:
        return "the file"
    last = path[-1]
    return "the entry" if isinstance(last, int) else str(last)
