"""The images file: read, check and turn into typed entries with their targets.

The file is the image-syncer's ``external-images.yaml`` (plus an optional ``target:``), so the
files people already have must keep working. Its YAML is composed into nodes so that scalars
keep the text the user wrote (:mod:`imagesync.images.yamlnodes`); every problem of every check
is reported, each with its file, line and entry (:mod:`imagesync.images.checks`). This module
is what the rest of imagesync calls.

Only ``imagesync.images.mapping`` decides where an entry lands; this module asks it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from imagesync import schemas
from imagesync.diagnostics import InvalidFile, Problem, sort_key
from imagesync.errors import ConfigError
from imagesync.images.checks import MAX_FILE_BYTES, TAG_RULE, Checker
from imagesync.images.entry import ImageEntry
from imagesync.images.mapping import layout_source
from imagesync.images.shard import Shard
from imagesync.inputfile import InputTooLarge, UnreadableInput, read_input
from imagesync.reference import Repository

__all__ = [
    "TAG_RULE",
    "ImageEntry",
    "ImagesFile",
    "InvalidImagesFile",
    "images_schema",
    "load_images_file",
]


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
    checker = Checker(str(source))
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
