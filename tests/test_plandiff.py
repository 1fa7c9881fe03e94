"""diff_plans and its renderings, on plans built in memory (no registry, no network)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from imagesync.errors import PlanRejected
from imagesync.plan.diff import EXIT_DIFFERENT, EXIT_SAME, FieldChange, diff_plans
from imagesync.plan.document import Action, Change, ImagesFileInfo, Plan, SubChange
from imagesync.render.diff import diff_command, render_diff

A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64
C = "sha256:" + "c" * 64
INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def signature(image_digest: str = A, action: Action = Action.CREATE) -> SubChange:
    hex_ = image_digest.split(":", 1)[1]
    return SubChange(
        kind="signature",
        source=f"docker.io/library/busybox:sha256-{hex_}.sig@{C}",
        target=f"reg.io/ext/library/busybox:sha256-{hex_}.sig",
        digest=C,
        media_type=MANIFEST,
        action=action,
        reason="not in the target",
        subject=image_digest,
        size=400,
    )


def image(
    name: str,
    tag: str = "1.0",
    *,
    entry: int = 1,
    action: Action = Action.CREATE,
    digest: str | None = A,
    platforms: tuple[str, ...] = ("linux/amd64", "linux/arm64"),
    subchanges: tuple[SubChange, ...] = (),
    **fields: object,
) -> Change:
    change = Change(
        entry=entry,
        line=entry + 1,
        source_text=f"{name}:{tag}",
        source=f"docker.io/library/{name}:{tag}",
        target=f"reg.io/ext/library/{name}:{tag}",
        action=action,
        reason="not in the target" if action is Action.CREATE else "already there",
        digest=digest,
        media_type=INDEX if digest else None,
        platforms=platforms,
        target_digest=digest if action is Action.SKIP else None,
        blobs_to_transfer=3 if action is Action.CREATE else 0,
        bytes_to_transfer=4096 if action is Action.CREATE else 0,
        subchanges=subchanges,
    )
    return dataclasses.replace(change, **fields)  # type: ignore[arg-type]


def plan(*changes: Change, created: str = "2026-11-26T10:00:00Z", **fields: object) -> Plan:
    made = Plan(
        tool_version="0.1.0",
        created=created,
        target_prefix="reg.io/ext",
        images_file=ImagesFileInfo("external-images.yaml", "d" * 64),
        changes=changes,
    )
    return dataclasses.replace(made, **fields)  # type: ignore[arg-type]


def test_run_time_fields_position_prose_and_transfer_estimates_do_not_count() -> None:
    old = plan(image("busybox", entry=1), image("alpine", entry=2, digest=B))
    # Another run: new time and tool version; the file was re-ordered; the target gained a
    # shared layer (smaller transfer) and the reason was worded differently.
    new = plan(
        image("alpine", entry=1, digest=B),
        image("busybox", entry=2, blobs_to_transfer=1, bytes_to_transfer=10, reason="missing"),
        created="2026-11-27T08:00:00Z",
        tool_version="0.2.0",
    )
    diff = diff_plans(old, new)
    assert diff.same
    assert diff.exit_code == EXIT_SAME
    assert (diff.added, diff.removed, diff.changed, diff.plan_fields) == ((), (), (), ())
    assert diff.unchanged == 2
    assert render_diff(diff, "text").endswith("No differences: 2 images with the same decisions.\n")


def test_added_removed_and_changed_images_are_matched_by_target() -> None:
    old = plan(image("busybox"), image("gone", digest=B), image("alpine", digest=B))
    new = plan(
        image("busybox", action=Action.SKIP),  # created by an apply in between
        image("alpine", digest=C, platforms=("linux/amd64",)),  # the tag moved
        image("fresh", digest=C),
    )
    diff = diff_plans(old, new)
    assert not diff.same
    assert diff.exit_code == EXIT_DIFFERENT
    assert [c.target for c in diff.added] == ["reg.io/ext/library/fresh:1.0"]
    assert [c.target for c in diff.removed] == ["reg.io/ext/library/gone:1.0"]
    assert diff.unchanged == 0
    by_target = {d.target: d for d in diff.changed}
    assert list(by_target) == ["reg.io/ext/library/busybox:1.0", "reg.io/ext/library/alpine:1.0"]
    assert by_target["reg.io/ext/library/busybox:1.0"].fields == (
        FieldChange("action", "create", "skip"),
        FieldChange("target_digest", None, A),
    )
    # Lists are reported whole, not element by element.
    assert by_target["reg.io/ext/library/alpine:1.0"].fields == (
        FieldChange("digest", B, C),
        FieldChange("platforms", ["linux/amd64", "linux/arm64"], ["linux/amd64"]),
    )


def test_source_media_type_and_warnings_are_compared() -> None:
    old = plan(image("busybox"))
    new = plan(
        image(
            "busybox",
            source="docker.io/library/busybox:1.0-other",
            media_type="application/vnd.docker.distribution.manifest.list.v2+json",
            warnings=("moving tag",),
        )
    )
    fields = {f.field for f in diff_plans(old, new).changed[0].fields}
    assert fields == {"source", "media_type", "warnings"}


def test_subchanges_added_removed_and_changed() -> None:
    other = dataclasses.replace(
        signature(),
        kind="attestation",
        target=f"reg.io/ext/library/busybox:sha256-{'a' * 64}.att",
    )
    old = plan(image("busybox", subchanges=(signature(), other)))
    sbom = dataclasses.replace(
        signature(), kind="sbom", target=f"reg.io/ext/library/busybox:sha256-{'a' * 64}.sbom"
    )
    new = plan(image("busybox", subchanges=(signature(action=Action.SKIP), sbom)))
    (changed,) = diff_plans(old, new).changed
    assert changed.fields == ()
    assert [(s.kind, s.status) for s in changed.subchanges] == [
        ("signature", "changed"),
        ("sbom", "added"),
        ("attestation", "removed"),
    ]
    assert changed.subchanges[0].fields == (FieldChange("action", "create", "skip"),)
    text = render_diff(diff_plans(old, new), "text")
    assert (
        f"~ signature reg.io/ext/library/busybox:sha256-{'a' * 64}.sig: action: create -> skip"
        in (text)
    )
    assert f"+ sbom reg.io/ext/library/busybox:sha256-{'a' * 64}.sbom (create, {C})" in text
    assert f"- attestation reg.io/ext/library/busybox:sha256-{'a' * 64}.att (create, {C})" in text


def test_plan_level_fields_count_as_differences() -> None:
    old = plan(image("busybox"))
    new = plan(
        image("busybox"),
        target_prefix="reg.io/other",
        images_file=ImagesFileInfo("external-images.yaml", "e" * 64),
        warnings=("something",),
        source_layout="oci:/mnt/disk",
    )
    diff = diff_plans(old, new)
    assert [f.field for f in diff.plan_fields] == [
        "target_prefix",
        "source_layout",
        "images_file_sha256",
        "warnings",
    ]
    assert diff.unchanged == 1
    assert diff.exit_code == EXIT_DIFFERENT
    assert "plan target_prefix: reg.io/ext -> reg.io/other" in render_diff(diff, "text")


def test_the_images_file_path_alone_is_no_difference() -> None:
    old = plan(image("busybox"))
    new = plan(
        image("busybox"), images_file=ImagesFileInfo("checkout/external-images.yaml", "d" * 64)
    )
    assert diff_plans(old, new).same


def test_a_repeated_target_is_compared_occurrence_by_occurrence() -> None:
    first = image("busybox", action=Action.ERROR, digest=None, reason="not found")
    second = dataclasses.replace(first, entry=2, reason="denied")
    old = plan(first, second)
    new = plan(first)
    diff = diff_plans(old, new)
    assert diff.unchanged == 1
    assert [c.entry for c in diff.removed] == [2]


def test_json_rendering_is_complete_and_parseable() -> None:
    old = plan(image("busybox"), image("gone", digest=B))
    new = plan(image("busybox", digest=B), image("fresh"))
    document = json.loads(render_diff(diff_plans(old, new), "json"))
    assert document["same"] is False
    assert document["summary"] == {"added": 1, "removed": 1, "changed": 1, "unchanged": 0}
    assert document["added"][0]["target"] == "reg.io/ext/library/fresh:1.0"
    assert document["added"][0]["action"] == "create"
    assert document["removed"][0]["platforms"] == ["linux/amd64", "linux/arm64"]
    assert document["changed"] == [
        {
            "target": "reg.io/ext/library/busybox:1.0",
            "fields": [{"field": "digest", "old": A, "new": B}],
            "subchanges": [],
        }
    ]


def test_markdown_rendering_has_a_row_per_difference() -> None:
    old = plan(image("busybox"), image("gone", digest=B))
    new = plan(image("busybox", digest=B, platforms=("linux/amd64",)), image("fresh"))
    markdown = render_diff(diff_plans(old, new), "markdown")
    assert markdown.startswith("### imagesync plan diff\n")
    assert "| image | what | old | new |" in markdown
    assert f"| `reg.io/ext/library/busybox:1.0` | digest | `{A}` | `{B}` |" in markdown
    assert "| `reg.io/ext/library/busybox:1.0` | platforms |" in markdown
    assert "| `reg.io/ext/library/fresh:1.0` | + added |" in markdown
    assert "| `reg.io/ext/library/gone:1.0` | - removed |" in markdown
    same = render_diff(diff_plans(old, old), "markdown")
    assert "No differences" in same
    assert "|" not in same


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown format"):
        render_diff(diff_plans(plan(), plan()), "yaml")


def test_diff_command_reads_plan_files(tmp_path: Path) -> None:
    old_path, new_path, same_path = (tmp_path / n for n in ("old.json", "new.json", "same.json"))
    plan(image("busybox", subchanges=(signature(),))).write(old_path)
    plan(image("busybox", subchanges=(signature(),)), created="2026-11-27T00:00:00Z").write(
        same_path
    )
    plan(image("busybox", digest=B)).write(new_path)

    output, code = diff_command(str(old_path), str(same_path), "text")
    assert code == EXIT_SAME == 0
    assert "No differences" in output

    output, code = diff_command(str(old_path), str(new_path), "json")
    assert code == EXIT_DIFFERENT == 2
    document = json.loads(output)
    assert document["changed"][0]["fields"][0] == {"field": "digest", "old": A, "new": B}
    assert [s["status"] for s in document["changed"][0]["subchanges"]] == ["removed"]


def test_diff_command_refuses_an_edited_plan(tmp_path: Path) -> None:
    good, edited = tmp_path / "good.json", tmp_path / "edited.json"
    plan(image("busybox")).write(good)
    document = json.loads(good.read_text(encoding="utf-8"))
    document["changes"][0]["digest"] = B
    edited.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(PlanRejected, match="checksum"):
        diff_command(str(good), str(edited), "text")


def test_diff_command_is_wired_into_the_cli(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from imagesync.cli import main

    missing = CliRunner().invoke(main, ["diff", str(tmp_path / "a.json"), str(tmp_path / "b.json")])
    assert missing.exit_code == 1
    assert "Traceback" not in missing.output
