"""What apply did: outcomes per image and sub-change, and the blobs it moved.

Values only, apart from the machinery that produces them (``applier.py``), so that rendering a
report, or a progress display, loads no network code.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from imagesync import schemas
from imagesync.errors import ImagesyncError, shorten
from imagesync.images.shard import Piece, Shard, check_pieces, outsider
from imagesync.inputfile import InputTooLarge, UnreadableInput, json_files, read_input
from imagesync.plan.document import (
    REPORT_KIND,
    Change,
    Fix,
    ImagesFileInfo,
    fix_document,
    fix_from,
    is_report,
)
from imagesync.reference import parse_registry_prefix


class Outcome(StrEnum):
    CREATED = "created"
    SKIPPED = "skipped"
    CONFLICT = "conflict"
    FAILED = "failed"


@dataclass(frozen=True)
class Transfer:
    """How the blobs of an image got into the target: copied (bytes crossed the wire),
    mounted from another repository of the target (a registry's mount, a layout's link), or
    there already. ``resumes``: per copied blob whose transfer went on where it broke
    instead of starting over (design §17), its digest, how often, and the bytes those resumes
    did not send again."""

    copied: int = 0
    mounted: int = 0
    present: int = 0
    bytes_copied: int = 0
    resumes: tuple[tuple[str, int, int], ...] = ()

    def __add__(self, other: Transfer) -> Transfer:
        return Transfer(
            self.copied + other.copied,
            self.mounted + other.mounted,
            self.present + other.present,
            self.bytes_copied + other.bytes_copied,
            self.resumes + other.resumes,
        )


@dataclass(frozen=True)
class SubResult:
    kind: str
    target: str
    digest: str
    outcome: Outcome
    message: str


@dataclass(frozen=True)
class ImageResult:
    entry: int
    source: str
    target: str
    digest: str | None
    outcome: Outcome
    message: str
    transfer: Transfer = Transfer()
    subresults: tuple[SubResult, ...] = ()
    # A conflict's fix, as plan found it (see Fix).
    fix: Fix | None = None

    @property
    def failed(self) -> bool:
        return self.outcome in (Outcome.CONFLICT, Outcome.FAILED) or any(
            s.outcome in (Outcome.CONFLICT, Outcome.FAILED) for s in self.subresults
        )


@dataclass(frozen=True)
class ApplyReport:
    """What apply did with a plan; it names the plan's target, images file and shard, so
    that the reports of a plan's shards can be put together (and others refused)."""

    results: tuple[ImageResult, ...]
    interrupted: bool = False
    target_prefix: str = ""
    images_file: ImagesFileInfo | None = None
    shard: Shard | None = None

    @property
    def failed(self) -> bool:
        return self.interrupted or any(r.failed for r in self.results)

    def counts(self) -> dict[str, int]:
        counts = {outcome.value: 0 for outcome in Outcome}
        for result in self.results:
            counts[result.outcome.value] += 1
        return counts

    def transfer(self) -> Transfer:
        """The blobs of the whole run: each shared blob copied once, mounted elsewhere."""
        total = Transfer()
        for result in self.results:
            total = total + result.transfer
        return total


class ApplyListener:
    """Receives progress; the default does nothing. The CLI's progress display overrides it."""

    def image_started(self, change: Change) -> None:
        """Called when an image's copy begins."""

    def bytes_copied(self, change: Change, count: int) -> None:
        """Called as blob bytes pass through."""

    def bytes_resumed(self, change: Change, offset: int) -> None:
        """Called when a blob's transfer goes on at ``offset`` instead of starting over (those
        bytes are not sent again)."""

    def image_finished(self, result: ImageResult) -> None:
        """Called once per planned change with its outcome."""


# -- JSON (apply --format json), read back by `imagesync report` --------------------------------

REPORT_FORMAT_VERSION = 1
# A report is well under a KiB per image; anything near this is not one apply wrote.
MAX_REPORT_BYTES = 64 * 1024 * 1024


class ReportRejected(ImagesyncError):
    """A file given as an apply report is not one."""


def report_document(report: ApplyReport) -> dict[str, Any]:
    total = report.transfer()
    document: dict[str, Any] = {
        "format_version": REPORT_FORMAT_VERSION,
        "kind": REPORT_KIND,
        "target_prefix": report.target_prefix,
        "images_file": asdict(report.images_file) if report.images_file else None,
        **({"shard": asdict(report.shard)} if report.shard else {}),
        "summary": report.counts(),
        "blobs": _blobs(total),
        "bytes_copied": total.bytes_copied,
        "failed": report.failed,
        "interrupted": report.interrupted,
        "images": [_result_document(r) for r in report.results],
    }
    return document


def _blobs(transfer: Transfer) -> dict[str, int]:
    return {"copied": transfer.copied, "mounted": transfer.mounted, "present": transfer.present}


def _resumes(transfer: Transfer) -> dict[str, Any]:
    """The resumes of an image's blobs, when there were any."""
    if not transfer.resumes:
        return {}
    return {
        "resumes": [
            {"digest": digest, "count": count, "bytes_resumed": spared}
            for digest, count, spared in transfer.resumes
        ]
    }


def _result_document(result: ImageResult) -> dict[str, Any]:
    document: dict[str, Any] = {
        "entry": result.entry,
        "source": result.source,
        "target": result.target,
        "digest": result.digest,
        "outcome": result.outcome.value,
        "message": result.message,
        "blobs": _blobs(result.transfer),
        "bytes_copied": result.transfer.bytes_copied,
        **_resumes(result.transfer),
        "signatures": [
            {
                "kind": s.kind,
                "target": s.target,
                "digest": s.digest,
                "outcome": s.outcome.value,
                "message": s.message,
            }
            for s in result.subresults
        ],
    }
    if result.fix is not None:
        document["fix"] = fix_document(result.fix)
    return document


def _read_json(path: str | Path) -> Any:
    source = Path(path)
    try:
        return json.loads(read_input(source, MAX_REPORT_BYTES).decode("utf-8"))
    except InputTooLarge:
        raise ReportRejected(f"{source} is too large to be an apply report") from None
    except UnreadableInput as error:
        raise ReportRejected(f"cannot read {source}: {error.reason}") from None
    except (ValueError, RecursionError) as error:
        raise ReportRejected(
            f"{source} is not JSON: {shorten(str(error), 200)}",
            "give the output of apply --format json",
        ) from None


def report_from(document: Any, where: str) -> ApplyReport:
    if not is_report(document):
        raise ReportRejected(
            f"{where} is not an apply report", "give the output of apply --format json"
        )
    try:
        errors = list(schemas.validator("report").iter_errors(document))
    except RecursionError:
        raise ReportRejected(f"{where} nests too deeply to be an apply report") from None
    if errors:
        first = min(errors, key=lambda e: len(e.absolute_path))
        place = "/".join(str(p) for p in first.absolute_path) or "(top level)"
        raise ReportRejected(
            f"{where} is not an apply report of this imagesync: at {shorten(place, 200)}: "
            f"{shorten(first.message, 200)}",
            "give the output of apply --format json of this version of imagesync",
        )
    shard = document.get("shard")
    images_file = document["images_file"]
    try:
        report = ApplyReport(
            results=tuple(_result_from(r) for r in document["images"]),
            interrupted=document["interrupted"],
            target_prefix=document["target_prefix"],
            images_file=ImagesFileInfo(**images_file) if images_file else None,
            shard=Shard(shard["index"], shard["count"]) if shard else None,
        )
        _check_shard(report)
    except ImagesyncError as error:
        raise ReportRejected(f"{where}: {error.message}", error.hint) from None
    return report


def _check_shard(report: ApplyReport) -> None:
    """A shard's report holds only that shard's images, by the rule that split the plan: a
    report edited to hold another shard's entry is not what the shard's apply did."""
    if report.shard is None:
        return
    prefix = parse_registry_prefix(report.target_prefix)
    found = outsider(report.shard, prefix, ((r.entry, r.target) for r in report.results))
    if found is not None:
        entry, target, number = found
        raise ReportRejected(
            f"it is the report of shard {report.shard}, but its entry {entry} "
            f"({shorten(target, 200)}) is in shard {number}/{report.shard.count}",
            "give the reports as apply wrote them (apply --format json); do not edit them",
        )


def _transfer_from(
    blobs: dict[str, int], bytes_copied: int, resumes: list[dict[str, Any]] | None = None
) -> Transfer:
    resumed = tuple((r["digest"], r["count"], r["bytes_resumed"]) for r in resumes or ())
    return Transfer(blobs["copied"], blobs["mounted"], blobs["present"], bytes_copied, resumed)


def _result_from(document: dict[str, Any]) -> ImageResult:
    return ImageResult(
        entry=document["entry"],
        source=document["source"],
        target=document["target"],
        digest=document["digest"],
        outcome=Outcome(document["outcome"]),
        message=document["message"],
        transfer=_transfer_from(
            document["blobs"], document["bytes_copied"], document.get("resumes")
        ),
        subresults=tuple(
            SubResult(s["kind"], s["target"], s["digest"], Outcome(s["outcome"]), s["message"])
            for s in document["signatures"]
        ),
        fix=fix_from(document.get("fix")),
    )


def read_reports(paths: list[str]) -> ApplyReport:
    """One report from apply reports (a directory stands for the reports in it, at any
    depth; plans beside them are not reports): the report itself when it is one, else the
    reports of a plan's shards put together."""
    try:
        files = json_files(paths)
    except UnreadableInput as error:
        raise ReportRejected(
            error.reason, "give the report files, or a directory of them"
        ) from None
    reports = []
    for path, found in files:
        document = _read_json(path)
        if found and not is_report(document):
            continue
        reports.append((path, report_from(document, path)))
    if not reports:
        raise ReportRejected(f"no apply report in {', '.join(paths)}", "give the report files")
    return merge_reports(reports)


def merge_reports(reports: Sequence[tuple[str, ApplyReport]]) -> ApplyReport:
    """What applying the shards of one plan did, as one report; reports of anything else
    are refused, with every reason at once."""
    if len(reports) == 1:
        return reports[0][1]
    check_pieces(
        [
            Piece(
                where,
                report.target_prefix,
                report.images_file.sha256 if report.images_file else "",
                report.shard,
            )
            for where, report in reports
        ],
        "apply reports",
    )
    first = reports[0][1]
    results = sorted((r for _, report in reports for r in report.results), key=lambda r: r.entry)
    return ApplyReport(
        results=tuple(results),
        interrupted=any(report.interrupted for _, report in reports),
        target_prefix=first.target_prefix,
        images_file=first.images_file,
    )
