"""The plan document: what plan decided, in a form people review and apply executes.

The JSON form is versioned, validated by ``schemas/plan.schema.json``, deterministic, holds no
credentials, and carries a checksum over everything else so an edited plan is caught before
apply sends a single request.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imagesync import schemas
from imagesync.errors import ImagesyncError, PlanRejected, shorten
from imagesync.images.mapping import target_reference
from imagesync.images.rewrite import entry_yaml
from imagesync.images.shard import Shard
from imagesync.inputfile import InputTooLarge, UnreadableInput, read_input
from imagesync.outputs import write_output
from imagesync.plan.key import PLAN_KEY_ENV, PlanKey
from imagesync.printable import printable_json
from imagesync.reference import (
    Reference,
    Repository,
    parse_layout_tree,
    parse_reference,
    parse_registry_prefix,
)

if TYPE_CHECKING:
    from jsonschema import ValidationError

FORMAT_VERSION = 1
# A plan with repositories to create (ECR) is written as version 2: an imagesync that does not
# know them refuses it ("re-run plan with this version") rather than apply it without them.
REPOSITORIES_FORMAT_VERSION = 2
FORMAT_VERSIONS = (FORMAT_VERSION, REPOSITORIES_FORMAT_VERSION)
CREATE_REPOSITORY_REASON = (
    "not in the target registry, which creates no repository on push: apply creates it "
    "before its first write"
)
# A plan is a few KiB per image; anything near this is not a plan we wrote.
MAX_PLAN_BYTES = 64 * 1024 * 1024

_PLAN_OUTPUT_HINT = "give -o a path in a directory that exists, on a disk with room"


class Action(StrEnum):
    CREATE = "create"
    SKIP = "skip"
    CONFLICT = "conflict"
    ERROR = "error"


@dataclass(frozen=True)
class EntryFix:
    """The entry of the images file that resolves a conflict: paste :attr:`yaml` over lines
    ``first_line`` to ``last_line`` (the entry as it is written now)."""

    source: str
    tag: str
    amd64_only: bool
    first_line: int
    last_line: int
    # The columns of the entry's "-" (None: the list is in flow style) and of its keys.
    indent: int | None
    key_indent: int

    @property
    def yaml(self) -> str:
        return entry_yaml(self.source, self.tag, self.amd64_only, self.indent, self.key_indent)


@dataclass(frozen=True)
class Fix:
    """What to do about a conflict, from one look at the source (a HEAD by digest): does it
    still serve the digest the target tag holds?

    For an image, ``entry`` is the images-file entry to paste: pinned to the target's digest
    when the source still serves it (the entry becomes a skip), else the source's content
    under a new tag. A signature or referrer has no entry of its own in the file: ``entry``
    is None, and the reason says what can be done.
    """

    target_digest_at_source: bool
    entry: EntryFix | None = None


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
    fix: Fix | None = None


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
    fix: Fix | None = None
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
class RepositoryChange:
    """A target repository apply creates before its first write (a registry that creates
    none on push: ECR, with ``create_repositories: true``), reviewed like an image."""

    repository: str
    action: Action
    reason: str

    @cached_property
    def name(self) -> Repository:
        return parse_repository(self.repository)


def parse_repository(text: str) -> Repository:
    """A repository as a plan names it (``host/path``)."""
    reference = parse_reference(f"{text}:latest")
    if str(reference.repository) != text:
        raise PlanRejected(f"{shorten(text, 100)!r} is not a repository", "re-run plan")
    return reference.repository


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
    """What plan decided: exactly what the plan document holds, written by :meth:`to_document`
    and read back by :meth:`from_document` (what reading a file learns besides, such as
    whether it was signed, is a :class:`LoadedPlan`'s)."""

    tool_version: str
    created: str
    target_prefix: str
    images_file: ImagesFileInfo
    changes: tuple[Change, ...]
    warnings: tuple[str, ...] = ()
    format_version: int = FORMAT_VERSION
    # The part of the images file this plan covers (plan --shard); None: all of it. It is
    # part of what the checksum and the HMAC cover, so a shard cannot pass for another.
    shard: Shard | None = None
    # The layout tree every source is read from (``oci:DIR``), when plan was given one.
    source_layout: str | None = None
    # The key the signing sub-changes were planned for, when plan was given one.
    signing: PlannedSigning | None = None
    # Target repositories apply creates first (ECR); none in plans of other registries.
    repositories: tuple[RepositoryChange, ...] = ()

    @cached_property
    def prefix(self) -> Repository:
        """The target: a registry prefix, or a layout tree (``oci:DIR``)."""
        return parse_registry_prefix(self.target_prefix)

    def in_shard(self, shard: Shard) -> Plan:
        """The changes of one shard (apply --shard of a whole plan): what ``plan --shard``
        would have planned, as this plan decided it."""
        prefix = self.prefix
        return replace(
            self,
            changes=tuple(
                c for c in self.changes if shard.holds(prefix, c.target_reference.repository)
            ),
            repositories=tuple(r for r in self.repositories if shard.holds(prefix, r.name)),
            shard=shard,
        )

    @cached_property
    def source_tree(self) -> Repository | None:
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
        return bool(self.repositories) or any(
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
        version = REPOSITORIES_FORMAT_VERSION if self.repositories else FORMAT_VERSION
        document: dict[str, Any] = {
            "format_version": version,
            "tool": {"name": "imagesync", "version": self.tool_version},
            "created": self.created,
            "target_prefix": self.target_prefix,
            **({"source_layout": self.source_layout} if self.source_layout else {}),
            **({"signing": asdict(self.signing)} if self.signing else {}),
            "images_file": asdict(self.images_file),
            **({"shard": asdict(self.shard)} if self.shard else {}),
            "summary": self.summary(),
            "warnings": list(self.warnings),
            **(
                {"repositories": [_repository_document(r) for r in self.repositories]}
                if self.repositories
                else {}
            ),
            "changes": [_change_document(c) for c in self.changes],
        }
        if key is not None:
            document["hmac"] = key.sign(canonical(document))
        document["checksum"] = checksum(document)
        return document

    def to_json(self, key: PlanKey | None = None) -> str:
        text = json.dumps(self.to_document(key), indent=2, ensure_ascii=False)
        return printable_json(text) + "\n"

    def write(self, path: str | Path, key: PlanKey | None = None) -> None:
        """The plan as JSON in ``path``; :class:`~imagesync.outputs.OutputError` when it
        cannot be written."""
        write_output(path, self.to_json(key), "the plan", _PLAN_OUTPUT_HINT)

    @classmethod
    def from_document(cls, document: Any, where: str = "plan", key: PlanKey | None = None) -> Plan:
        """Check a plan document and build the Plan; PlanRejected says why it is refused.

        With ``key``, a plan without the HMAC that key gives is refused.
        """
        _check_document(document, where)
        if key is not None:
            _check_hmac(document, key, where)
        plan = cls(
            tool_version=document["tool"]["version"],
            created=document["created"],
            target_prefix=document["target_prefix"],
            images_file=ImagesFileInfo(**document["images_file"]),
            changes=tuple(_change_from(c) for c in document["changes"]),
            warnings=tuple(document["warnings"]),
            format_version=document["format_version"],
            shard=_shard_from(document.get("shard"), where),
            source_layout=document.get("source_layout"),
            signing=PlannedSigning(**document["signing"]) if "signing" in document else None,
            repositories=tuple(
                RepositoryChange(r["repository"], Action(r["action"]), r["reason"])
                for r in document.get("repositories", ())
            ),
        )
        _check_plan(plan, document, where)
        return plan

    @classmethod
    def read(cls, path: str | Path, key: PlanKey | None = None) -> Plan:
        """The plan a file holds (:func:`load_plan` also says whether it was signed)."""
        return cls.from_document(read_plan_document(path), str(path), key)


@dataclass(frozen=True)
class LoadedPlan:
    """A plan as it was read, with what reading it learnt that the plan itself does not say:
    nothing here is written back to a plan document."""

    plan: Plan
    # The document carries an HMAC (made with IMAGESYNC_PLAN_KEY); checked when a key is given.
    signed: bool = False
    # Put together from this many shards' plans for review (see plan/merge.py); 0: one plan.
    merged_from: int = 0

    @classmethod
    def from_document(
        cls, document: Any, where: str = "plan", key: PlanKey | None = None
    ) -> LoadedPlan:
        """:meth:`Plan.from_document`, and whether the document was signed."""
        return cls(Plan.from_document(document, where, key), signed="hmac" in document)


def load_plan(path: str | Path, key: PlanKey | None = None) -> LoadedPlan:
    """A plan file, checked (against ``key`` when given), and whether it was signed."""
    return LoadedPlan.from_document(read_plan_document(path), str(path), key)


def _check_document(document: Any, where: str) -> None:
    """A plan document of this version, as the schema says, with its checksum intact."""
    if not isinstance(document, dict):
        raise PlanRejected(f"{where} is not a JSON object", "re-run plan")
    version = document.get("format_version")
    if "format_version" not in document:
        raise PlanRejected(
            f"{where} is not an imagesync plan: it has no format_version",
            "give the file that imagesync plan -o wrote, or re-run plan",
        )
    if version not in FORMAT_VERSIONS or isinstance(version, bool):
        raise PlanRejected(
            f"{where} has format_version {shorten(repr(version), 40)}; "
            f"this imagesync reads {' and '.join(map(str, FORMAT_VERSIONS))}",
            "re-run plan with this version of imagesync",
        )
    try:
        errors = sorted(schemas.validator("plan").iter_errors(document), key=_error_order)
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


def _check_plan(plan: Plan, document: dict[str, Any], where: str) -> None:
    """What the schema cannot say: the plan agrees with itself, and everything it names
    parses (a plan is refused whole, before any request)."""
    if document["summary"] != plan.summary():
        raise PlanRejected(f"{where}: the summary does not match the changes", "re-run plan")
    for change in plan.changes:
        if change.blobs_to_copy < 0 or change.bytes_to_copy < 0:
            raise PlanRejected(
                f"{where}: entry {change.entry} mounts more than it transfers", "re-run plan"
            )
    _check_references(plan, where)
    for change, written in zip(plan.changes, document["changes"], strict=True):
        _check_fix(plan.prefix, change, written.get("fix"), where)


def read_plan_document(path: str | Path) -> Any:
    """The JSON of a plan file, read as an input file is (:func:`read_input`)."""
    source = Path(path)
    try:
        return json.loads(read_input(source, MAX_PLAN_BYTES).decode("utf-8"))
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


# What an apply report (apply --format json) says it is; a plan carries no "kind".
REPORT_KIND = "imagesync-apply-report"


def is_report(document: Any) -> bool:
    """Whether a JSON document is an apply report, not a plan."""
    return isinstance(document, dict) and document.get("kind") == REPORT_KIND


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
    for repository in plan.repositories:
        try:
            parse_repository(repository.repository)
        except ImagesyncError as error:
            raise PlanRejected(
                f"{where}: repository to create {shorten(repository.repository, 100)!r}: "
                f"{error.message}",
                "re-run plan",
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


def _repository_document(change: RepositoryChange) -> dict[str, Any]:
    return {"repository": change.repository, "action": change.action.value, "reason": change.reason}


def _change_document(change: Change) -> dict[str, Any]:
    document = asdict(change)
    document["action"] = change.action.value
    document["platforms"] = list(change.platforms)
    document["artifact_types"] = list(change.artifact_types)
    document["warnings"] = list(change.warnings)
    document["subchanges"] = [_subchange_document(sub) for sub in change.subchanges]
    _put_fix(document, change.fix)
    return document


def _subchange_document(sub: SubChange) -> dict[str, Any]:
    document = {**asdict(sub), "action": sub.action.value}
    _put_fix(document, sub.fix)
    return document


def _put_fix(document: dict[str, Any], fix: Fix | None) -> None:
    """A fix is written only where there is one (most changes have none)."""
    del document["fix"]
    if fix is not None:
        document["fix"] = fix_document(fix)


def fix_document(fix: Fix) -> dict[str, Any]:
    """A fix as JSON; an entry's YAML is written out too, for readers of the JSON, and
    checked against its fields when a plan is read."""
    written: dict[str, Any] = {"target_digest_at_source": fix.target_digest_at_source}
    if fix.entry is not None:
        written["entry"] = {**asdict(fix.entry), "yaml": fix.entry.yaml}
    return written


def fix_from(document: dict[str, Any] | None) -> Fix | None:
    if document is None:
        return None
    entry = document.get("entry")
    return Fix(
        target_digest_at_source=document["target_digest_at_source"],
        entry=EntryFix(**{k: v for k, v in entry.items() if k != "yaml"}) if entry else None,
    )


def _check_fix(
    prefix: Repository, change: Change, written: dict[str, Any] | None, where: str
) -> None:
    """A fix's YAML is what its fields say, and the entry lands where the change's target
    is (pinned to the target's digest and tag, when it says the source still serves that): a
    plan cannot show reviewers one thing to paste and mean another."""
    fix = change.fix
    if fix is None or fix.entry is None or written is None:
        return
    entry = fix.entry
    problem = None
    try:
        pinned, target = parse_reference(entry.source), parse_reference(change.target)
        lands = target_reference(pinned, entry.tag, prefix)
    except ImagesyncError:
        problem = "names no image"
    else:
        if written["entry"]["yaml"] != entry.yaml:
            problem = "has YAML that is not what its fields say"
        elif pinned.digest is None or pinned.tag is not None:
            problem = "does not pin a digest"
        elif lands.repository != target.repository:
            problem = f"lands in {shorten(str(lands.repository), 200)}"
        elif fix.target_digest_at_source and (
            lands != target or pinned.digest != change.target_digest
        ):
            problem = "does not pin the target's digest under the target's tag"
    if problem:
        raise PlanRejected(f"{where}: entry {change.entry}: its fix {problem}", "re-run plan")


def _shard_from(document: dict[str, Any] | None, where: str) -> Shard | None:
    if document is None:
        return None
    try:
        return Shard(document["index"], document["count"])
    except ImagesyncError as error:
        raise PlanRejected(f"{where}: {error.message}", "re-run plan") from None


def _change_from(document: dict[str, Any]) -> Change:
    fields = dict(document)
    fields["action"] = Action(fields["action"])
    fields["platforms"] = tuple(fields["platforms"])
    fields["artifact_types"] = tuple(fields.get("artifact_types", ()))
    fields["warnings"] = tuple(fields["warnings"])
    fields["subchanges"] = tuple(
        SubChange(**{**sub, "action": Action(sub["action"]), "fix": fix_from(sub.get("fix"))})
        for sub in fields["subchanges"]
    )
    fields["fix"] = fix_from(fields.get("fix"))
    return Change(**fields)
