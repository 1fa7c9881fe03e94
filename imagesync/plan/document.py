"""The plan document: what plan decided, in a form people review and apply executes.

The JSON form is versioned, validated by ``schemas/plan.schema.json``, deterministic, holds no
credentials, and carries a checksum over everything else so an edited plan is caught before
apply sends a single request.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imagesync.errors import ImagesyncError, PlanRejected, shorten
from imagesync.inputfile import InputTooLarge, UnreadableInput, read_input
from imagesync.plan.key import PLAN_KEY_ENV, PlanKey
from imagesync.reference import (
    Reference,
    Repository,
    parse_layout_tree,
    parse_reference,
    parse_registry_prefix,
)

if TYPE_CHECKING:
    from jsonschema import ValidationError
    from jsonschema.protocols import Validator

FORMAT_VERSION = 1
# A plan is a few KiB per image; anything near this is not a plan we wrote.
MAX_PLAN_BYTES = 64 * 1024 * 1024


class Action(StrEnum):
    CREATE = "create"
    SKIP = "skip"
    CONFLICT = "conflict"
    ERROR = "error"


@dataclass(frozen=True)
class SubChange:
    """A signature, attestation, SBOM or referrer that travels with an image."""

    kind: str
    source: str
    target: str
    digest: str
    media_type: str
    action: Action
    reason: str
    target_digest: str | None = None
    artifact_type: str | None = None
    subject: str | None = None
    size: int = 0


@dataclass(frozen=True)
class Change:
    """The decision for one entry of the images file."""

    entry: int
    line: int
    source_text: str
    source: str
    target: str
    action: Action
    reason: str
    digest: str | None = None
    media_type: str | None = None
    platforms: tuple[str, ...] = ()
    target_digest: str | None = None
    warnings: tuple[str, ...] = ()
    # What the target repository lacks; of that, what comes by cross-repository mount (no
    # bytes cross the wire) rather than by copy. Plans before the mount figures read as 0.
    blobs_to_transfer: int = 0
    bytes_to_transfer: int = 0
    subchanges: tuple[SubChange, ...] = ()
    blobs_to_mount: int = 0
    bytes_to_mount: int = 0
    # What an artifact (no platform) is: its artifactType, or its config's media type; for
    # an index, those of the artifacts in it. Empty for images, and in plans made before it.
    artifact_types: tuple[str, ...] = ()

    @property
    def blobs_to_copy(self) -> int:
        return self.blobs_to_transfer - self.blobs_to_mount

    @property
    def bytes_to_copy(self) -> int:
        return self.bytes_to_transfer - self.bytes_to_mount

    # The references a change names, parsed once (a plan that holds one that does not parse
    # is refused when it is read).

    @cached_property
    def source_reference(self) -> Reference:
        return parse_reference(self.source)

    @cached_property
    def target_reference(self) -> Reference:
        return parse_reference(self.target)

    @property
    def pinned_source(self) -> Reference:
        """The source by digest: what apply copies, whatever the tag points at by then."""
        if not self.digest:
            raise PlanRejected(f"entry {self.entry} has no source digest")
        return self.source_reference.with_tag(None).with_digest(self.digest)


@dataclass(frozen=True)
class ImagesFileInfo:
    path: str
    sha256: str


@dataclass(frozen=True)
class PlannedSigning:
    """The key plan planned the ``signing`` sub-changes for (``--sign-key``): apply signs with
    that key or not at all. ``fingerprint`` is the sha256 of its public key (DER), ``key_file``
    the file plan was given; ``children``: each platform manifest is signed too."""

    fingerprint: str
    key_file: str
    children: bool = False

    @property
    def key_name(self) -> str:
        """As :attr:`imagesync.signing.VerificationKey.name` names a key."""
        return f"{self.key_file} ({self.fingerprint[:19]})"


@dataclass(frozen=True)
class Plan:
    tool_version: str
    created: str
    target_prefix: str
    images_file: ImagesFileInfo
    changes: tuple[Change, ...]
    warnings: tuple[str, ...] = ()
    format_version: int = FORMAT_VERSION
    # Read from a document that carries an HMAC (made with IMAGESYNC_PLAN_KEY); not written.
    signed: bool = field(default=False, compare=False)
    # The layout tree every source is read from (``oci:DIR``), when plan was given one.
    source_layout: str | None = None
    # The key the signing sub-changes were planned for, when plan was given one.
    signing: PlannedSigning | None = None

    @cached_property
    def prefix(self) -> Repository:
        """The target: a registry prefix, or a layout tree (``oci:DIR``)."""
        return parse_registry_prefix(self.target_prefix)

    @cached_property
    def sources(self) -> Repository | None:
        """The source layout tree, or None: sources are read from their registries."""
        return parse_layout_tree(self.source_layout) if self.source_layout else None

    def summary(self) -> dict[str, int]:
        counts = {action.value: 0 for action in Action}
        for change in self.changes:
            counts[change.action.value] += 1
        return counts

    def subchange_summary(self) -> dict[str, int]:
        counts = {action.value: 0 for action in Action}
        for change in self.changes:
            for sub in change.subchanges:
                counts[sub.action.value] += 1
        return counts

    @property
    def has_changes(self) -> bool:
        return any(
            c.action is Action.CREATE or any(s.action is Action.CREATE for s in c.subchanges)
            for c in self.changes
        )

    @property
    def has_failures(self) -> bool:
        return any(
            c.action in (Action.CONFLICT, Action.ERROR)
            or any(s.action in (Action.CONFLICT, Action.ERROR) for s in c.subchanges)
            for c in self.changes
        )

    # -- JSON ------------------------------------------------------------------------------

    def to_document(self, key: PlanKey | None = None) -> dict[str, Any]:
        """The JSON document; with ``key``, it carries an HMAC that apply with the key checks."""
        document: dict[str, Any] = {
            "format_version": self.format_version,
            "tool": {"name": "imagesync", "version": self.tool_version},
            "created": self.created,
            "target_prefix": self.target_prefix,
            **({"source_layout": self.source_layout} if self.source_layout else {}),
            **({"signing": asdict(self.signing)} if self.signing else {}),
            "images_file": asdict(self.images_file),
            "summary": self.summary(),
            "warnings": list(self.warnings),
            "changes": [_change_document(c) for c in self.changes],
        }
        if key is not None:
            document["hmac"] = key.sign(canonical(document))
        document["checksum"] = checksum(document)
        return document

    def to_json(self, key: PlanKey | None = None) -> str:
        return json.dumps(self.to_document(key), indent=2, ensure_ascii=False) + "\n"

    def write(self, path: str | Path, key: PlanKey | None = None) -> None:
        Path(path).write_text(self.to_json(key), encoding="utf-8")

    @classmethod
    def from_document(cls, document: Any, where: str = "plan", key: PlanKey | None = None) -> Plan:
        """Check a plan document and build the Plan; PlanRejected says why it is refused.

        With ``key``, a plan without the HMAC that key gives is refused.
        """
        if not isinstance(document, dict):
            raise PlanRejected(f"{where} is not a JSON object", "re-run plan")
        version = document.get("format_version")
        if version != FORMAT_VERSION:
            raise PlanRejected(
                f"{where} has format_version {shorten(repr(version), 40)}; "
                f"this imagesync reads {FORMAT_VERSION}",
                "re-run plan with this version of imagesync",
            )
        try:
            errors = sorted(_validator().iter_errors(document), key=_error_order)
        except RecursionError:
            raise PlanRejected(f"{where} nests too deeply to be a plan", "re-run plan") from None
        if errors:
            first = errors[0]
            place = "/".join(str(p) for p in first.absolute_path) or "(top level)"
            raise PlanRejected(
                f"{where} does not match the plan schema at {shorten(place, 300)}: "
                f"{shorten(first.message, 300)}",
                "re-run plan; do not edit plan files by hand",
            )
        if document["checksum"] != checksum(document):
            raise PlanRejected(
                f"{where} was changed after plan wrote it (checksum mismatch)",
                "re-run plan; do not edit plan files by hand",
            )
        if key is not None:
            _check_hmac(document, key, where)
        plan = cls(
            tool_version=document["tool"]["version"],
            created=document["created"],
            target_prefix=document["target_prefix"],
            images_file=ImagesFileInfo(**document["images_file"]),
            changes=tuple(_change_from(c) for c in document["changes"]),
            warnings=tuple(document["warnings"]),
            format_version=version,
            signed="hmac" in document,
            source_layout=document.get("source_layout"),
            signing=PlannedSigning(**document["signing"]) if "signing" in document else None,
        )
        if document["summary"] != plan.summary():
            raise PlanRejected(f"{where}: the summary does not match the changes", "re-run plan")
        for change in plan.changes:
            if change.blobs_to_copy < 0 or change.bytes_to_copy < 0:
                raise PlanRejected(
                    f"{where}: entry {change.entry} mounts more than it transfers", "re-run plan"
                )
        _check_references(plan, where)
        return plan

    @classmethod
    def read(cls, path: str | Path, key: PlanKey | None = None) -> Plan:
        source = Path(path)
        try:
            document = json.loads(read_input(source, MAX_PLAN_BYTES).decode("utf-8"))
        except InputTooLarge:
            raise PlanRejected(f"{source} is too large to be a plan", "re-run plan") from None
        except UnreadableInput as error:
            raise PlanRejected(
                f"cannot read plan {source}: {error.reason}", "give the plan file plan wrote"
            ) from None
        except ValueError as error:
            raise PlanRejected(
                f"{source} is not JSON: {shorten(str(error), 300)}", "re-run plan"
            ) from None
        except RecursionError:
            raise PlanRejected(f"{source} nests too deeply to be a plan", "re-run plan") from None
        return cls.from_document(document, str(source), key)


def _error_order(error: ValidationError) -> list[tuple[int, int, str]]:
    # Paths mix list positions and keys; compare them without comparing an int to a str.
    return [(0, p, "") if isinstance(p, int) else (1, 0, str(p)) for p in error.absolute_path]


def _check_references(plan: Plan, where: str) -> None:
    """Every name apply will parse must parse: a plan is refused whole, before any request."""
    for what, name, parse in (
        ("target_prefix", plan.target_prefix, parse_registry_prefix),
        ("source_layout", plan.source_layout, parse_layout_tree),
    ):
        try:
            if name is not None:
                parse(name)
        except ImagesyncError as error:
            raise PlanRejected(
                f"{where}: {what} {shorten(name or '', 100)!r}: {error.message}", "re-run plan"
            ) from None
    for change in plan.changes:
        names = [("source", change.source), ("target", change.target)]
        names += [(f"{sub.kind} source", sub.source) for sub in change.subchanges]
        names += [(f"{sub.kind} target", sub.target) for sub in change.subchanges]
        for what, name in names:
            try:
                parse_reference(name)
            except ImagesyncError as error:
                raise PlanRejected(
                    f"{where}: entry {change.entry}: {what} {shorten(name, 100)!r}: "
                    f"{error.message}",
                    "re-run plan",
                ) from None


def canonical(document: dict[str, Any], leave_out: tuple[str, ...] = ("checksum", "hmac")) -> bytes:
    """The canonical JSON of a plan document without ``leave_out``: what the HMAC is over."""
    body = {k: v for k, v in document.items() if k not in leave_out}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


def checksum(document: dict[str, Any]) -> str:
    """sha256 over the canonical JSON of everything but the checksum itself."""
    return "sha256:" + hashlib.sha256(canonical(document, ("checksum",))).hexdigest()


def _check_hmac(document: dict[str, Any], key: PlanKey, where: str) -> None:
    written = document.get("hmac")
    if written is None:
        raise PlanRejected(
            f"{where} has no hmac, and {PLAN_KEY_ENV} is set: only plans made with the key "
            "are applied",
            f"re-run plan with {PLAN_KEY_ENV} set",
        )
    if not key.verifies(canonical(document), written):
        raise PlanRejected(
            f"{where}: its hmac does not match {PLAN_KEY_ENV}: the plan was changed after plan "
            "wrote it, or made with another key",
            f"re-run plan with this {PLAN_KEY_ENV}",
        )


def _change_document(change: Change) -> dict[str, Any]:
    document = asdict(change)
    document["action"] = change.action.value
    document["platforms"] = list(change.platforms)
    document["artifact_types"] = list(change.artifact_types)
    document["warnings"] = list(change.warnings)
    document["subchanges"] = [
        {**asdict(sub), "action": sub.action.value} for sub in change.subchanges
    ]
    return document


def _change_from(document: dict[str, Any]) -> Change:
    fields = dict(document)
    fields["action"] = Action(fields["action"])
    fields["platforms"] = tuple(fields["platforms"])
    fields["artifact_types"] = tuple(fields.get("artifact_types", ()))
    fields["warnings"] = tuple(fields["warnings"])
    fields["subchanges"] = tuple(
        SubChange(**{**sub, "action": Action(sub["action"])}) for sub in fields["subchanges"]
    )
    return Change(**fields)


@functools.cache
def _validator() -> Validator:
    # Loaded when a plan is first read: writing one, or --help, needs no jsonschema.
    from jsonschema import Draft202012Validator

    text = resources.files("imagesync.schemas").joinpath("plan.schema.json").read_text()
    validator: Validator = Draft202012Validator(json.loads(text))
    return validator
