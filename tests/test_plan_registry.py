"""plan against real registries: every action in one run, in file order, and no writes."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from imagesync.cli import main
from imagesync.images.file import load_images_file
from imagesync.plan.document import Action
from imagesync.plan.planner import make_plan
from imagesync.reference import parse_registry_prefix
from imagesync.stores.connection import ConnectionOptions, open_stores
from tests.harness.faultproxy import FaultProxy
from tests.harness.images import push_image

pytestmark = pytest.mark.registry

SCHEMA = json.loads(
    (Path(__file__).parent.parent / "schemas" / "plan.schema.json").read_text(encoding="utf-8")
)


def write_images(tmp_path: Path, target: str, entries: str) -> Path:
    path = tmp_path / "external-images.yaml"
    path.write_text(f"target: {target}\nimages:\n{entries}", encoding="utf-8")
    return path


def test_every_action_in_one_run_in_file_order(source_registry, target_registry, tmp_path) -> None:
    src, dst = source_registry.host, target_registry.host
    fresh = push_image(src, "team/fresh", "1.0", platforms=[("linux", "amd64"), ("linux", "arm64")])
    same = push_image(src, "team/same", "1.0", kind="docker", seed=2)
    moved = push_image(src, "team/moved", "1.0", seed=3)
    single = push_image(src, "team/single", "1.0", platforms=[("linux", "amd64")], index=False)
    arm = push_image(src, "team/arm", "1.0", platforms=[("linux", "arm64")], index=False, seed=5)
    prefix = f"{dst}/mirror"
    push_image(dst, f"mirror/{src.replace(':', '-')}/team/same", "1.0", kind="docker", seed=2)
    push_image(dst, f"mirror/{src.replace(':', '-')}/team/moved", "1.0", seed=99)
    images = write_images(
        tmp_path,
        prefix,
        f'- source: "{src}/team/fresh:1.0"\n'
        f'- source: "{src}/team/same:1.0"\n'
        f'- source: "{src}/team/moved:1.0"\n'
        f'- source: "{src}/team/missing:1.0"\n'
        f'- source: "{src}/team/fresh@sha256:{"0" * 64}"\n  tag: "gone"\n'
        f'- source: "{src}/team/single:1.0"\n'
        f'- source: "{src}/team/arm:1.0"\n  amd64Only: true\n'
        f'- source: "{src}/team/single:1.0"\n  tag: "amd"\n  amd64Only: true\n'
        f'- source: "{src}/team/fresh:1.0@{fresh.digest}"\n  tag: "pinned"\n',
    )
    stores = open_stores(ConnectionOptions(), parse_registry_prefix(prefix))
    plan = make_plan(load_images_file(images), stores)
    actions = [c.action for c in plan.changes]
    assert actions == [
        Action.CREATE,
        Action.SKIP,
        Action.CONFLICT,
        Action.ERROR,
        Action.ERROR,
        Action.ERROR,
        Action.ERROR,
        Action.CREATE,
        Action.CREATE,
    ]
    create, skip, conflict, missing, missing_digest, single_err, arm_err, amd, pinned = plan.changes
    assert create.digest == fresh.digest
    assert create.platforms == ("linux/amd64", "linux/arm64")
    assert create.blobs_to_transfer == fresh.blob_count
    assert create.bytes_to_transfer == fresh.blob_bytes
    assert skip.digest == same.digest and skip.target_digest == same.digest
    assert moved.digest in conflict.reason and conflict.target_digest in conflict.reason
    assert "not found" in missing.reason
    assert "not found" in missing_digest.reason
    assert "amd64Only" in single_err.reason
    assert "linux/arm64" in arm_err.reason and arm.digest == arm_err.digest
    assert amd.digest == single.digest and amd.platforms == ("linux/amd64",)
    assert pinned.digest == fresh.digest and pinned.target.endswith(":pinned")
    jsonschema.validate(plan.to_document(), SCHEMA)


def test_plan_file_validates_and_show_prints_the_same(source_registry, target_registry, tmp_path):
    src, dst = source_registry.host, target_registry.host
    push_image(src, "team/app", "2.0")
    images = write_images(tmp_path, f"{dst}/mirror", f'- source: "{src}/team/app:2.0"\n')
    out = tmp_path / "plan.json"
    runner = CliRunner()
    planned = runner.invoke(main, ["plan", "-i", str(images), "-o", str(out)])
    assert planned.exit_code == 0, planned.output
    jsonschema.validate(json.loads(out.read_text()), SCHEMA)
    shown = runner.invoke(main, ["show", str(out)])
    assert shown.exit_code == 0
    assert shown.stdout == planned.stdout
    assert "Plan: 1 to create, 0 to skip." in shown.stdout
    for fmt in ("json", "markdown"):
        assert runner.invoke(main, ["show", str(out), "--format", fmt]).exit_code == 0
    detailed = runner.invoke(main, ["plan", "-i", str(images), "--detailed-exitcode"])
    assert detailed.exit_code == 2


def test_plan_and_dry_run_send_no_write_request(source_registry, target_registry, tmp_path):
    with FaultProxy(source_registry.host) as src_proxy, FaultProxy(target_registry.host) as dst:
        push_image(source_registry.host, "team/app", "1.0")
        images = write_images(
            tmp_path, f"{dst.host}/mirror", f'- source: "{src_proxy.host}/team/app:1.0"\n'
        )
        runner = CliRunner()
        assert runner.invoke(main, ["plan", "-i", str(images)]).exit_code == 0
        dry = runner.invoke(main, ["sync", "-i", str(images)], env={"SYNCER_DRY_RUN": "true"})
        assert dry.exit_code == 0, dry.output
        assert "Plan: 1 to create" in dry.stdout
        assert src_proxy.requests and dst.requests
        assert src_proxy.writes() == [] and dst.writes() == []


def test_docker_hub_names_go_through_a_mirror(source_registry, target_registry, tmp_path):
    src, dst = source_registry.host, target_registry.host
    image = push_image(src, "library/busybox", "1.36")
    config = tmp_path / "registries.yaml"
    config.write_text(f'registries:\n  docker.io:\n    mirrors: ["{src}"]\n')
    images = write_images(tmp_path, f"{dst}/mirror", '- source: "busybox:1.36"\n')
    result = CliRunner().invoke(
        main, ["plan", "-i", str(images), "--registries-config", str(config), "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    change = json.loads(result.stdout)["changes"][0]
    assert change["source"] == "docker.io/library/busybox:1.36"
    assert change["target"] == f"{dst}/mirror/library/busybox:1.36"
    assert change["digest"] == image.digest
