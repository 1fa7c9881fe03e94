"""apply against real registries, checked independently with skopeo."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from imagesync.cli import main
from imagesync.plan.document import Plan, checksum
from tests.harness.accounts import assert_apply_counts_as_planned
from tests.harness.faultproxy import Fault, FaultProxy
from tests.harness.images import push_image
from tests.harness.peak import measured
from tests.harness.registry import RegistryServer
from tests.harness.skopeo import copy_to_dir, inspect_raw, raw_digest

pytestmark = pytest.mark.registry


def images_file(tmp_path: Path, target: str, entries: str) -> Path:
    path = tmp_path / "external-images.yaml"
    path.write_text(f"target: {target}\nimages:\n{entries}", encoding="utf-8")
    return path


def mirrored(target: RegistryServer, source: RegistryServer, path: str) -> str:
    return f"{target.host}/mirror/{source.host.replace(':', '-')}/{path}"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def plan_to(tmp_path: Path, images: Path, name: str = "plan.json") -> Plan:
    out = tmp_path / name
    code, stdout, stderr = run("plan", "-i", str(images), "-o", str(out))
    assert code in (0, 1), stdout + stderr
    return Plan.read(out)


def test_apply_copies_every_kind_exactly(source_registry, target_registry, tmp_path) -> None:
    src = source_registry.host
    oci = push_image(
        src, "team/oci", "1.0", platforms=[("linux", "amd64"), ("linux", "arm64", "v8")]
    )
    docker = push_image(src, "team/docker", "1.0", kind="docker", seed=2)
    single = push_image(
        src, "team/single", "1.0", platforms=[("linux", "amd64")], index=False, seed=3
    )
    images = images_file(
        tmp_path,
        f"{target_registry.host}/mirror",
        f'- source: "{src}/team/oci:1.0"\n'
        f'- source: "{src}/team/docker:1.0"\n'
        f'- source: "{src}/team/single:1.0"\n  amd64Only: true\n',
    )
    plan = plan_to(tmp_path, images)
    code, stdout, stderr = run("apply", str(tmp_path / "plan.json"), "--format", "json")
    assert code == 0, stdout + stderr
    report = json.loads(stdout)
    assert [i["outcome"] for i in report["images"]] == ["created"] * 3
    assert_apply_counts_as_planned(plan.to_document(), report)
    for pushed, change in zip((oci, docker, single), plan.changes, strict=True):
        assert change.digest == pushed.digest
        assert raw_digest(change.target) == pushed.digest
        assert inspect_raw(change.target) == pushed.raw
        copy_to_dir(change.target, tmp_path / f"copy-{change.entry}")

    # A second plan sees everything in place; the old plan applied again writes nothing.
    again = plan_to(tmp_path, images, "again.json")
    assert [c.action.value for c in again.changes] == ["skip"] * 3
    with FaultProxy(target_registry.host) as proxy:
        document = plan.to_document()
        document["target_prefix"] = f"{proxy.host}/mirror"
        for change in document["changes"]:
            change["target"] = change["target"].replace(target_registry.host, proxy.host)
        document["checksum"] = checksum(document)
        proxied = tmp_path / "proxied.json"
        proxied.write_text(json.dumps(document))
        code, stdout, _ = run("apply", str(proxied))
        assert code == 0
        assert "Apply: 0 created, 3 skipped" in stdout
        assert proxy.writes() == []


def test_tag_that_appears_after_plan(source_registry, target_registry, tmp_path) -> None:
    src = source_registry.host
    first = push_image(src, "team/a", "1.0", seed=10)
    push_image(src, "team/b", "1.0", seed=11)
    images = images_file(
        tmp_path,
        f"{target_registry.host}/mirror",
        f'- source: "{src}/team/a:1.0"\n- source: "{src}/team/b:1.0"\n',
    )
    plan = plan_to(tmp_path, images)
    assert [c.action.value for c in plan.changes] == ["create", "create"]
    # Between plan and apply: someone pushes the same image to a's tag, another one to b's.
    a_path = mirrored(target_registry, source_registry, "team/a").split("/", 1)[1]
    b_path = mirrored(target_registry, source_registry, "team/b").split("/", 1)[1]
    push_image(target_registry.host, a_path, "1.0", seed=10)
    intruder = push_image(target_registry.host, b_path, "1.0", seed=99)
    code, stdout, _ = run("apply", str(tmp_path / "plan.json"), "--format", "json")
    assert code == 1
    outcomes = [i["outcome"] for i in json.loads(stdout)["images"]]
    assert outcomes == ["skipped", "conflict"]
    assert raw_digest(plan.changes[0].target) == first.digest
    assert raw_digest(plan.changes[1].target) == intruder.digest


@pytest.mark.parametrize(
    "edit",
    ["digest", "outside", "format_version", "images_file"],
)
def test_edited_or_foreign_plan_is_refused_before_any_request(
    source_registry, target_registry, tmp_path, edit
) -> None:
    push_image(source_registry.host, "team/app", "1.0")
    with FaultProxy(target_registry.host) as proxy, FaultProxy(source_registry.host) as sproxy:
        images = images_file(
            tmp_path, f"{proxy.host}/mirror", f'- source: "{sproxy.host}/team/app:1.0"\n'
        )
        plan_to(tmp_path, images)
        seen = len(proxy.requests) + len(sproxy.requests)
        document = json.loads((tmp_path / "plan.json").read_text())
        args = ["apply", str(tmp_path / "plan.json")]
        if edit == "digest":
            document["changes"][0]["digest"] = "sha256:" + "1" * 64
        elif edit == "outside":
            document["changes"][0]["target"] = f"{proxy.host}/elsewhere/app:1.0"
            document["checksum"] = checksum(document)
        elif edit == "format_version":
            document["format_version"] = 2
        else:
            images.write_text(images.read_text() + "# changed after plan\n")
            args += ["-i", str(images)]
        (tmp_path / "plan.json").write_text(json.dumps(document))
        code, stdout, stderr = run(*args)
        assert code == 1
        assert "re-run plan" in stderr
        assert "Traceback" not in stdout + stderr
        assert len(proxy.requests) + len(sproxy.requests) == seen


def test_same_registry_copies_use_cross_repo_mounts(registry, tmp_path) -> None:
    pushed = push_image(registry.host, "upstream/app", "1.0")
    images = images_file(
        tmp_path, f"{registry.host}/mirror", f'- source: "{registry.host}/upstream/app:1.0"\n'
    )
    plan = plan_to(tmp_path, images)
    code, stdout, _ = run("apply", str(tmp_path / "plan.json"), "--format", "json")
    assert code == 0
    assert_apply_counts_as_planned(plan.to_document(), json.loads(stdout))
    image = json.loads(stdout)["images"][0]
    assert image["blobs"]["mounted"] == pushed.blob_count
    assert image["blobs"]["copied"] == 0
    assert raw_digest(image["target"]) == pushed.digest


def test_plan_counts_the_blobs_an_earlier_image_lands_as_apply_does(
    source_registry, target_registry, tmp_path
) -> None:
    """Issue 32: an index, then its linux/amd64 child pinned under another tag of the same
    repository, then an image of another repository on the same base. The child's blobs are
    in its repository by the time apply reaches it (the index brought them): plan counts
    them neither as copies nor as mounts, as apply finds them there; the shared base is
    copied once and mounted once."""
    src = source_registry.host
    index = push_image(src, "team/app", "1.0", base_layers=[2048], base_seed=7)
    child = index.child_by_platform["linux/amd64"]
    push_image(src, "team/other", "1.0", base_layers=[2048], base_seed=7, seed=2)
    images = images_file(
        tmp_path,
        f"{target_registry.host}/mirror",
        f'- source: "{src}/team/app:1.0"\n'
        f'- source: "{src}/team/app@{child}"\n  tag: "1.0-amd64"\n  amd64Only: true\n'
        f'- source: "{src}/team/other:1.0"\n',
    )
    plan = plan_to(tmp_path, images)
    app, pinned, other = plan.changes
    assert (pinned.blobs_to_transfer, pinned.blobs_to_mount) == (0, 0)
    assert app.blobs_to_mount == 0 and other.blobs_to_mount == 2  # the base, on both platforms
    code, stdout, stderr = run("apply", str(tmp_path / "plan.json"), "--format", "json")
    assert code == 0, stdout + stderr
    report = json.loads(stdout)
    assert_apply_counts_as_planned(plan.to_document(), report)
    assert report["blobs"]["present"] == len(index.manifests[0].blobs)


def test_apply_with_images_file_plans_and_applies(source_registry, target_registry, tmp_path):
    push_image(source_registry.host, "team/app", "1.0")
    images = images_file(
        tmp_path,
        f"{target_registry.host}/mirror",
        f'- source: "{source_registry.host}/team/app:1.0"\n',
    )
    code, stdout, _ = run("apply", "-i", str(images))
    assert code == 0
    assert "Plan: 1 to create" in stdout and "Apply: 1 created" in stdout
    result = CliRunner().invoke(main, ["sync"], env={"SYNCER_IMAGES_FILE": str(images)})
    assert result.exit_code == 0
    assert "Plan: 0 to create, 1 to skip" in result.stdout


def _imagesync(*args: str, **kwargs) -> subprocess.Popen[bytes]:  # type: ignore[no-untyped-def]
    return subprocess.Popen(
        [sys.executable, "-m", "imagesync", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kwargs,
    )


def test_killed_apply_leaves_no_tag_and_a_rerun_completes(
    source_registry, target_registry, tmp_path
):
    push_image(source_registry.host, "team/app", "1.0", layers=3, layer_size=4 * 1024 * 1024)
    with FaultProxy(source_registry.host) as proxy:
        images = images_file(
            tmp_path, f"{target_registry.host}/mirror", f'- source: "{proxy.host}/team/app:1.0"\n'
        )
        plan = plan_to(tmp_path, images)
        proxy.add(Fault("delay", r"/blobs/sha256:", count=100, method="GET", seconds=30))
        process = _imagesync("apply", str(tmp_path / "plan.json"))
        try:
            # A blob download is in flight (held by the delay): the kill lands mid-copy.
            assert proxy.wait_for_request(r"/blobs/sha256:", "GET", timeout=60)
        finally:
            process.send_signal(signal.SIGKILL)
        process.wait()
        proxy.clear()
        code, stdout, _ = run("plan", "-i", str(images), "--format", "json")
        assert json.loads(stdout)["changes"][0]["action"] == "create"
        code, stdout, stderr = run("apply", str(tmp_path / "plan.json"))
        assert code == 0, stdout + stderr
        assert raw_digest(plan.changes[0].target) == plan.changes[0].digest


def test_sigterm_stops_apply_cleanly(source_registry, target_registry, tmp_path):
    push_image(source_registry.host, "team/app", "1.0", layer_size=1024 * 1024)
    with FaultProxy(source_registry.host) as proxy:
        images = images_file(
            tmp_path, f"{target_registry.host}/mirror", f'- source: "{proxy.host}/team/app:1.0"\n'
        )
        plan = plan_to(tmp_path, images)
        # Every source blob GET is held 6 s, and SIGTERM goes out the moment one reaches the
        # proxy: apply has installed its handler (before any request) and the copy is in flight,
        # with seconds to go. No sleep guessing the moment, which a loaded machine defeats; the
        # hold is long enough for a starved test process to wake and send the signal (with 2 s,
        # a run beside other suites sometimes sent it after the copy had finished).
        proxy.add(Fault("delay", r"/blobs/sha256:", count=100, method="GET", seconds=6))
        process = _imagesync("apply", str(tmp_path / "plan.json"))
        try:
            assert proxy.wait_for_request(r"/blobs/sha256:", "GET", timeout=60), (
                "apply never fetched a blob"
            )
        finally:
            process.send_signal(signal.SIGTERM)
            stdout, stderr = process.communicate(timeout=60)
        assert process.returncode == 1, stdout + stderr
        assert b"Interrupted" in stdout and b"Traceback" not in stderr, stdout + stderr
        _, out, _ = run("plan", "-i", str(images))
        assert "Plan: 1 to create" in out  # no tag on the incomplete image
        proxy.clear()
        code, stdout_text, stderr_text = run("apply", str(tmp_path / "plan.json"))
        assert code == 0, stdout_text + stderr_text
        assert raw_digest(plan.changes[0].target) == plan.changes[0].digest


@pytest.mark.slow
def test_one_gib_layer_is_streamed_in_little_memory(source_registry, target_registry, tmp_path):
    gib = 1024 * 1024 * 1024
    pushed = push_image(
        source_registry.host,
        "team/big",
        "1.0",
        platforms=[("linux", "amd64")],
        index=False,
        layers=1,
        layer_size=gib,
    )
    images = images_file(
        tmp_path,
        f"{target_registry.host}/mirror",
        f'- source: "{source_registry.host}/team/big:1.0"\n  amd64Only: true\n',
    )
    plan_to(tmp_path, images)
    # The apply process's own peak: RUSAGE_CHILDREN would be the largest of every process
    # this test process has waited for (registries, skopeo), whoever started it.
    result, peak_kib = measured(tmp_path, "apply", str(tmp_path / "plan.json"), timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    print(f"peak RSS of apply copying a 1 GiB layer: {peak_kib / 1024:.0f} MiB")
    assert peak_kib < 150 * 1024
    assert (
        raw_digest(
            f"{target_registry.host}/mirror/{source_registry.host.replace(':', '-')}/team/big:1.0"
        )
        == pushed.digest
    )
