"""The plan document on its own: schema, checksum, refusal of edited or foreign plans."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from imagesync.errors import PlanRejected
from imagesync.plan.checks import check_plan
from imagesync.plan.document import Action, Change, ImagesFileInfo, Plan, SubChange, checksum
from imagesync.render import render_plan

DIGEST = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64


def make_plan() -> Plan:
    signature = SubChange(
        kind="signature",
        source=f"127.0.0.1:5000/library/busybox:sha256-{'a' * 64}.sig@{OTHER}",
        target=f"reg.io/ext/library/busybox:sha256-{'a' * 64}.sig",
        digest=OTHER,
        media_type="application/vnd.oci.image.manifest.v1+json",
        action=Action.CREATE,
        reason="not in the target",
        subject=DIGEST,
        size=400,
    )
    return Plan(
        tool_version="1.0",
        created="2026-11-26T00:00:00Z",
        target_prefix="reg.io/ext",
        images_file=ImagesFileInfo("external-images.yaml", "c" * 64),
        changes=(
            Change(
                entry=1,
                line=2,
                source_text="busybox:1.36",
                source="docker.io/library/busybox:1.36",
                target="reg.io/ext/library/busybox:1.36",
                action=Action.CREATE,
                reason="not in the target",
                digest=DIGEST,
                media_type="application/vnd.oci.image.index.v1+json",
                platforms=("linux/amd64", "linux/arm64"),
                blobs_to_transfer=3,
                bytes_to_transfer=1234,
                subchanges=(signature,),
                blobs_to_mount=2,
                bytes_to_mount=1000,
            ),
            Change(
                entry=2,
                line=3,
                source_text="nope:1",
                source="docker.io/library/nope:1",
                target="reg.io/ext/library/nope:1",
                action=Action.ERROR,
                reason="source docker.io/library/nope:1 not found",
            ),
        ),
    )


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    plan = make_plan()
    path = tmp_path / "plan.json"
    plan.write(path)
    assert Plan.read(path) == plan


def test_output_is_deterministic() -> None:
    assert make_plan().to_json() == make_plan().to_json()


def test_summary_counts_actions() -> None:
    assert make_plan().summary() == {"create": 1, "skip": 0, "conflict": 0, "error": 1}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["changes"][0].update(digest=OTHER), "checksum"),
        (lambda d: d.update(format_version=99), "format_version"),
        (lambda d: d["changes"][0].update(action="overwrite"), "schema"),
        (lambda d: d.update(extra=True), "schema"),
        (lambda d: d.pop("checksum"), "schema"),
    ],
)
def test_edited_plan_is_refused(
    tmp_path: Path, edit: Callable[[dict[str, Any]], None], message: str
) -> None:
    document = make_plan().to_document()
    edit(document)
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(document))
    with pytest.raises(PlanRejected) as caught:
        Plan.read(path)
    assert message in str(caught.value)
    assert "re-run plan" in str(caught.value)


def test_target_outside_prefix_is_refused_even_with_a_fixed_checksum(tmp_path: Path) -> None:
    document = make_plan().to_document()
    document["changes"][0]["target"] = "evil.io/other/busybox:1.36"
    document["checksum"] = checksum(document)
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(document))
    plan = Plan.read(path)
    with pytest.raises(PlanRejected, match="outside the plan's prefix"):
        check_plan(plan)


def test_plan_for_another_target_is_refused() -> None:
    with pytest.raises(PlanRejected, match="re-run plan"):
        check_plan(make_plan(), target="reg.io/other")


def test_not_json_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    path.write_text("{not json")
    with pytest.raises(PlanRejected, match="not JSON"):
        Plan.read(path)


def test_pinned_source_is_by_digest_only() -> None:
    change = make_plan().changes[0]
    assert str(change.pinned_source) == f"docker.io/library/busybox@{DIGEST}"


def write(tmp_path: Path, document: dict[str, Any]) -> Path:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(document))
    return path


def test_a_plan_from_before_the_mount_figures_still_reads(tmp_path: Path) -> None:
    document = make_plan().to_document()
    for change in document["changes"]:
        del change["blobs_to_mount"], change["bytes_to_mount"]
    document["checksum"] = checksum(document)
    create = Plan.read(write(tmp_path, document)).changes[0]
    assert (create.blobs_to_mount, create.blobs_to_copy) == (0, 3)
    assert "transfer: 3 blobs, 1.2 KiB\n" in render_plan(Plan.read(tmp_path / "plan.json"), "text")


def test_more_mounted_than_transferred_is_refused(tmp_path: Path) -> None:
    document = make_plan().to_document()
    document["changes"][0]["blobs_to_mount"] = 4
    document["checksum"] = checksum(document)
    with pytest.raises(PlanRejected, match="mounts more than it transfers"):
        Plan.read(write(tmp_path, document))


def test_the_rendered_plan_says_what_is_copied_and_what_mounted() -> None:
    text = render_plan(make_plan(), "text")
    assert "    transfer: 3 blobs, 1.2 KiB: 1 to copy (234 B), 2 to mount (1000 B)" in text
    assert "Transfer: 3 blobs, 1.2 KiB: 1 to copy (234 B), 2 to mount (1000 B)." in text
    markdown = render_plan(make_plan(), "markdown")
    assert "| 3 blobs, 1.2 KiB; 2 mounted |" in markdown
    assert json.loads(render_plan(make_plan(), "json"))["changes"][0]["blobs_to_mount"] == 2
