"""Air gaps: OCI image layouts as the target (``--target oci:DIR``) and as the source
(``--source-layout DIR``), against real registries, with skopeo as the independent checker.

Layouts are written apart from imagesync by ``tests/harness/layouts.py`` and checked by its
``layout_problems`` (every ``index.json`` entry's manifests and blobs there, hashing to their
names); the target mapping is computed by ``mirrorworld.SourceName``, also apart from it.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from imagesync.cli import main
from imagesync.plan.document import Plan, checksum
from tests.harness.accounts import assert_apply_counts_as_planned
from tests.harness.faultproxy import Fault, FaultProxy
from tests.harness.images import (
    Pushed,
    assert_complete,
    digest_of,
    push_cosign_signature,
    push_image,
    push_referrer,
)
from tests.harness.layouts import LayoutPusher, layout_problems, tagged_entries
from tests.harness.mirrorworld import OnlyLoopback, SourceName
from tests.harness.registry import RegistryServer
from tests.harness.skopeo import copy, copy_to_dir, inspect_digest

FOREVER = 10_000


def run(*args: str | Path) -> Result:
    result = CliRunner().invoke(main, [str(a) for a in args])
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert result.exception is None or isinstance(result.exception, SystemExit), output
    return result


def write_images(path: Path, entries: list[str], target: str = "registry.internal/mirror") -> Path:
    path.write_text(f"target: {target}\nimages:\n" + "".join(entries), encoding="utf-8")
    return path


def layout_of(tree: Path, source: str) -> Path:
    """Where ``--target oci:tree`` puts ``source``, by the image-syncer's mapping."""
    return tree / SourceName.parse(source).target_repository()


def actions(result: Result) -> list[str]:
    document = json.loads(result.stdout)
    return [c["action"] for c in document["changes"]] + [
        s["action"] for c in document["changes"] for s in c["subchanges"]
    ]


# -- both directions, every kind -----------------------------------------------------------


def test_export_then_import_every_kind_digest_exact_and_then_nothing_to_do(
    registry_factory, tmp_path: Path
) -> None:
    source = registry_factory("source")
    target = registry_factory("target")
    src = source.host
    oci = push_image(src, "team/oci", "1.0")
    docker = push_image(src, "team/docker", "2.3", kind="docker", seed=2)
    single = push_image(
        src, "team/single", "0.9", platforms=[("linux", "amd64")], index=False, seed=3
    )
    signed = push_image(src, "team/signed", "1.0", seed=4)
    signature = push_cosign_signature(src, "team/signed", signed.digest)
    entries = [
        f'- source: "{src}/team/oci:1.0"\n',
        f'- source: "{src}/team/docker:2.3"\n',
        f'- source: "{src}/team/single@{single.digest}"\n  tag: "0.9-v1"\n  amd64Only: true\n',
        f'- source: "{src}/team/signed:1.0"\n',
    ]
    images = write_images(tmp_path / "images.yaml", entries)
    disk = tmp_path / "disk"  # does not exist yet

    # Export: plan writes nothing, anywhere; apply creates the tree.
    exported = run("plan", "-i", images, "--target", f"oci:{disk}", "-o", tmp_path / "out.json")
    assert exported.exit_code == 0, exported.output
    assert "Plan: 4 to create, 0 to skip, signatures: 1 to create" in exported.stdout
    assert not disk.exists()
    applied = run("apply", tmp_path / "out.json", "--format", "json")
    assert applied.exit_code == 0, applied.output
    assert json.loads(applied.stdout)["summary"]["created"] == 4
    assert_apply_counts_as_planned(
        json.loads((tmp_path / "out.json").read_text()), json.loads(applied.stdout)
    )
    again = run("plan", "-i", images, "--target", f"oci:{disk}", "--format", "json")
    assert again.exit_code == 0 and set(actions(again)) == {"skip"}, again.output

    expected = {
        "team/oci": ("1.0", oci),
        "team/docker": ("2.3", docker),
        "team/single": ("0.9-v1", single),
        "team/signed": ("1.0", signed),
    }
    for path, (tag, pushed) in expected.items():
        layout = layout_of(disk, f"{src}/{path}")
        assert layout_problems(layout) == [], path
        assert tagged_entries(layout)[tag] == pushed.digest, path
        assert_complete(
            LayoutPusher(disk),
            layout.relative_to(disk).as_posix(),
            pushed,
            reference=tag,
            check_blob_bytes=True,
        )
    signed_layout = layout_of(disk, f"{src}/team/signed")
    assert tagged_entries(signed_layout)[signature.tag or ""] == signature.digest
    # skopeo reads what imagesync wrote: the planned digest, every blob checked on the way
    # out. (skopeo 1.9 reads only OCI media types from a layout; the Docker manifest list is
    # checked by layout_problems above and after the import below.)
    for path, tag in (("team/oci", "1.0"), ("team/single", "0.9-v1"), ("team/signed", "1.0")):
        reference = f"oci:{layout_of(disk, f'{src}/{path}')}:{tag}"
        assert inspect_digest(reference) == expected[path][1].digest
        copy_to_dir(reference, tmp_path / f"skopeo-{path.replace('/', '-')}")
    assert inspect_digest(f"oci:{signed_layout}:{signature.tag}") == signature.digest

    # Carried across the gap: the source registry is gone.
    source.close()
    prefix = f"{target.host}/mirror"
    imported = run(
        "plan",
        "-i",
        images,
        "--source-layout",
        disk,
        "--target",
        prefix,
        "-o",
        tmp_path / "in.json",
    )
    assert imported.exit_code == 0, imported.output
    assert f"Sources: oci:{disk}" in imported.stdout
    assert "Plan: 4 to create, 0 to skip, signatures: 1 to create" in imported.stdout
    applied = run("apply", tmp_path / "in.json", "--format", "json")
    assert applied.exit_code == 0, applied.output
    assert_apply_counts_as_planned(
        json.loads((tmp_path / "in.json").read_text()), json.loads(applied.stdout)
    )
    again = run(
        "plan", "-i", images, "--source-layout", disk, "--target", prefix, "--format", "json"
    )
    assert again.exit_code == 0 and set(actions(again)) == {"skip"}, again.output
    for path, (tag, pushed) in expected.items():
        mirrored = f"mirror/{SourceName.parse(f'{src}/{path}').target_repository()}"
        assert_complete(target, mirrored, pushed, reference=tag, check_blob_bytes=True)
        assert inspect_digest(f"{target.host}/{mirrored}:{tag}") == pushed.digest
    signed_mirror = f"mirror/{SourceName.parse(f'{src}/team/signed').target_repository()}"
    assert inspect_digest(f"{target.host}/{signed_mirror}:{signature.tag}") == signature.digest


def test_imports_what_skopeo_wrote_digest_exact(
    source_registry: RegistryServer, target_registry: RegistryServer, tmp_path: Path
) -> None:
    """skopeo exports, imagesync imports: what lands is what skopeo wrote, byte for byte."""
    src = source_registry.host
    pushed = push_image(src, "team/app", "1.0", seed=7)
    disk = tmp_path / "disk"
    layout = layout_of(disk, f"{src}/team/app")
    layout.parent.mkdir(parents=True)
    copy(f"{src}/team/app:1.0", f"oci:{layout}:1.0")
    written = inspect_digest(f"oci:{layout}:1.0")
    assert written == pushed.digest  # --preserve-digests: an OCI index stays as it was
    images = write_images(tmp_path / "images.yaml", [f'- source: "{src}/team/app:1.0"\n'])
    source_registry.close()
    prefix = f"{target_registry.host}/mirror"
    result = run("sync", "-i", images, "--source-layout", disk, "-r", prefix)
    assert result.exit_code == 0, result.output
    mirrored = f"{target_registry.host}/mirror/{layout.relative_to(disk).as_posix()}:1.0"
    assert inspect_digest(mirrored) == written
    copy_to_dir(mirrored, tmp_path / "out")


# -- tags in a layout are immutable too ----------------------------------------------------


def test_a_tag_in_a_layout_with_another_digest_is_a_conflict_and_left_untouched(
    source_registry: RegistryServer, tmp_path: Path
) -> None:
    src = source_registry.host
    first = push_image(src, "team/app", "1.0", seed=1)
    images = write_images(tmp_path / "images.yaml", [f'- source: "{src}/team/app:1.0"\n'])
    disk = tmp_path / "disk"
    assert run("sync", "-i", images, "-r", f"oci:{disk}").exit_code == 0
    layout = layout_of(disk, f"{src}/team/app")
    before = (layout / "index.json").read_bytes()

    moved = push_image(src, "team/app", "1.0", seed=2)  # upstream re-publishes the tag
    planned = run("plan", "-i", images, "-r", f"oci:{disk}", "-o", tmp_path / "plan.json")
    assert planned.exit_code == 1
    assert "! conflict" in planned.stdout and first.digest in planned.stdout
    assert moved.digest in planned.stdout
    applied = run("apply", tmp_path / "plan.json")
    assert applied.exit_code == 1 and "conflict" in applied.stdout
    assert (layout / "index.json").read_bytes() == before
    assert inspect_digest(f"oci:{layout}:1.0") == first.digest


def test_a_tag_written_into_the_layout_after_plan_is_not_overwritten(tmp_path: Path) -> None:
    """Another writer tags the image between plan and apply: apply finds it under the layout's
    lock (or in its look right before) and leaves it."""
    source, disk = tmp_path / "source", tmp_path / "disk"
    ours = push_image(LayoutPusher(source), "demo.example/app", "1.0", seed=1)
    theirs = push_image(LayoutPusher(disk), "demo.example/app", "other", seed=2)
    images = write_images(tmp_path / "images.yaml", ['- source: "demo.example/app:1.0"\n'])
    plan = tmp_path / "plan.json"
    assert run("plan", "-i", images, "--source-layout", source, "-r", f"oci:{disk}", "-o", plan)
    # Meanwhile, 1.0 appears in the target with their image.
    LayoutPusher(disk).put_manifest("demo.example/app", "1.0", theirs.raw, theirs.media_type)
    applied = run("apply", plan)
    assert applied.exit_code == 1 and "appeared with digest" in applied.stdout
    assert tagged_entries(disk / "demo.example/app")["1.0"] == theirs.digest
    assert ours.digest != theirs.digest


# -- interrupted applies -------------------------------------------------------------------

KILL_RUNS = 10
KILL_IMAGES = 8


def test_sigkill_at_random_points_of_an_apply_into_a_layout(
    source_registry: RegistryServer, tmp_path: Path
) -> None:
    """An export of 8 images is SIGKILLed ten times, each at a random one of the requests it
    sends (each held 20 ms, so that other copies and index updates are under way). Whatever
    the moment, every index.json entry names a complete image, and the next apply completes."""
    seed = int(os.environ.get("IMAGESYNC_TEST_SEED", random.randrange(1 << 30)))
    chance = random.Random(seed)
    src = source_registry.host
    with FaultProxy(src) as proxy:
        names = [f"team/app{i}" for i in range(KILL_IMAGES)]
        pushed = {
            name: push_image(src, name, "1.0", platforms=[("linux", "amd64")], seed=300 + i)
            for i, name in enumerate(names)
        }
        entries = [f'- source: "{proxy.host}/{name}:1.0"\n' for name in names]
        images = write_images(tmp_path / "images.yaml", entries)
        env = {**os.environ, "NO_COLOR": "1"}
        stats: list[tuple[int, int]] = []
        for number in range(KILL_RUNS):
            disk = tmp_path / f"disk{number}"
            plan = tmp_path / f"plan{number}.json"
            assert run("plan", "-i", images, "-r", f"oci:{disk}", "-o", plan).exit_code == 0
            proxy.requests.clear()
            slow = proxy.add(Fault("delay", r".", count=FOREVER, seconds=0.02))
            # Each image's apply reads its index, child manifest and two blobs: the kill
            # lands at one of those reads, chosen at random.
            kill_at = chance.randrange(1, 4 * KILL_IMAGES)
            process = subprocess.Popen(
                [sys.executable, "-m", "imagesync", "apply", str(plan), "--parallelism", "4"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
            )
            deadline = time.monotonic() + 60
            while len(proxy.requests) < kill_at and process.poll() is None:
                assert time.monotonic() < deadline, "apply sent too few requests"
                time.sleep(0.001)
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
            proxy.faults.remove(slow)

            tags = 0
            for name in names:
                layout = layout_of(disk, f"{proxy.host}/{name}")
                problems = layout_problems(layout)
                assert not problems, f"run {number} (seed {seed}), {name}: {problems}"
                tagged = tagged_entries(layout)
                if "1.0" in tagged:
                    tags += 1
                    assert tagged["1.0"] == pushed[name].digest
            stats.append((kill_at, tags))
            finished = run("apply", plan, "--format", "json")
            assert finished.exit_code == 0, f"run {number} (seed {seed}): {finished.output}"
            for name in names:
                layout = layout_of(disk, f"{proxy.host}/{name}")
                assert layout_problems(layout) == []
                assert tagged_entries(layout)["1.0"] == pushed[name].digest
        copy_to_dir(f"oci:{layout_of(disk, f'{proxy.host}/{names[0]}')}:1.0", tmp_path / "out")
    print(f"seed {seed}; (killed at request, tags then): {stats}")
    assert sum(1 for _, tags in stats if tags < KILL_IMAGES) >= KILL_RUNS // 2, stats


def test_two_processes_writing_one_layout_keep_every_tag(tmp_path: Path) -> None:
    """Two applies tag one layout at once (their own tags): each index.json update happens
    under the layout's lock, so neither writes over the other's entries."""
    source, disk = tmp_path / "source", tmp_path / "disk"
    pusher = LayoutPusher(source)
    plans = []
    for side in ("a", "b"):
        entries = []
        for n in range(12):
            tag = f"{side}{n}"
            push_image(pusher, "demo.example/app", tag, platforms=[("linux", "amd64")], seed=n)
            entries.append(f'- source: "demo.example/app:{tag}"\n')
        images = write_images(tmp_path / f"{side}.yaml", entries)
        plans.append(tmp_path / f"{side}.json")
        assert (
            run(
                "plan",
                "-i",
                images,
                "--source-layout",
                source,
                "-r",
                f"oci:{disk}",
                "-o",
                plans[-1],
            ).exit_code
            == 0
        )
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "imagesync", "apply", str(plan), "--parallelism", "6"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for plan in plans
    ]
    for process in processes:
        output, _ = process.communicate(timeout=120)
        assert process.returncode == 0, output.decode()
    layout = disk / "demo.example/app"
    tags = tagged_entries(layout)
    assert sorted(tags) == sorted(f"{side}{n}" for side in "ab" for n in range(12))
    entries = json.loads((layout / "index.json").read_text())["manifests"]
    assert len(entries) == 24
    assert layout_problems(layout) == []


# -- the import asks the target only -------------------------------------------------------


def test_the_import_sends_no_request_to_any_host_but_the_target(
    target_registry: RegistryServer, tmp_path: Path
) -> None:
    """Sources named after public registries, read from a layout: not one of their names is
    looked up, and every connection goes to the target (its proxy counts them)."""
    disk = tmp_path / "disk"
    pusher = LayoutPusher(disk)
    sources = ["busybox:1.36", "ghcr.io/kedacore/keda:2.20.2", "quay.io/org/app:1.0"]
    pinned = push_image(pusher, "library/alpine", "3.20-v2", seed=9)
    pushed = [
        push_image(pusher, SourceName.parse(s).target_repository(), s.rsplit(":", 1)[1], seed=n)
        for n, s in enumerate(sources)
    ]
    push_cosign_signature(pusher, "library/busybox", pushed[0].digest)
    entries = [f'- source: "{s}"\n' for s in sources]
    entries.append(f'- source: "alpine@{pinned.digest}"\n  tag: "3.20-v2"\n')
    images = write_images(tmp_path / "images.yaml", entries)
    with FaultProxy(target_registry.host) as proxy, OnlyLoopback() as dns:
        result = run("sync", "-i", images, "--source-layout", disk, "-r", f"{proxy.host}/mirror")
    assert result.exit_code == 0, result.output
    assert "Apply: 4 created" in result.stdout
    assert dns.refused == []
    port = int(proxy.host.rsplit(":", 1)[1])
    upstream = int(target_registry.host.rsplit(":", 1)[1])
    # imagesync connects to the proxy only; the proxy, in this process, to the registry.
    assert {address for address in dns.addresses if address[1] != upstream} == {
        ("127.0.0.1", port)
    }, dns.addresses
    assert len(proxy.requests) > 0
    for source, image in zip([*sources, "alpine:3.20-v2"], [*pushed, pinned], strict=True):
        name = SourceName.parse(source)
        assert_complete(
            target_registry, f"mirror/{name.target_repository()}", image, reference=name.tag
        )


# -- hostile and broken layouts ------------------------------------------------------------


@pytest.fixture
def one_image(tmp_path: Path) -> tuple[Path, Path, Pushed]:
    """A source tree with demo.example/app:1.0 (one platform), and its images file."""
    source = tmp_path / "source"
    pushed = push_image(
        LayoutPusher(source), "demo.example/app", "1.0", platforms=[("linux", "amd64")]
    )
    images = write_images(tmp_path / "images.yaml", ['- source: "demo.example/app:1.0"\n'])
    return source, images, pushed


def plan_from(source: Path, images: Path, target: str) -> Result:
    return run("plan", "-i", images, "--source-layout", source, "-r", target)


def test_an_index_json_that_is_not_json_fails_its_entry_with_a_message(
    one_image, tmp_path: Path
) -> None:
    source, images, _ = one_image
    (source / "demo.example/app/index.json").write_text('{"manifests": [')
    result = plan_from(source, images, f"oci:{tmp_path / 'disk'}")
    assert result.exit_code == 1
    assert "x error" in result.stdout and "index.json is not valid JSON" in result.stdout


def test_an_index_json_of_100_mb_is_refused_unread(one_image, tmp_path: Path) -> None:
    source, images, _ = one_image
    with (source / "demo.example/app/index.json").open("r+b") as index:
        index.truncate(100 * 1024 * 1024)  # sparse: 100 MB that cost nothing to write
    result = plan_from(source, images, f"oci:{tmp_path / 'disk'}")
    assert result.exit_code == 1
    assert "is 104857600 bytes, more than 16 MiB" in result.stdout


def test_a_blob_that_does_not_hash_to_its_name_is_never_copied(one_image, tmp_path: Path) -> None:
    source, images, pushed = one_image
    layer = pushed.manifests[0].blobs[-1] if pushed.manifests else pushed.blobs[-1]
    path = source / "demo.example/app/blobs/sha256" / layer.digest.split(":")[1]
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF
    path.write_bytes(bytes(data))
    disk = tmp_path / "disk"
    result = run(
        "sync", "-i", images, "--source-layout", source, "-r", f"oci:{disk}", "--retries", "1"
    )
    assert result.exit_code == 1
    assert f"does not hash to {layer.digest}: the layout is damaged" in result.stdout
    assert tagged_entries(disk / "demo.example/app") == {}
    assert not (disk / "demo.example/app/blobs/sha256" / layer.digest.split(":")[1]).exists()


def test_paths_and_links_that_lead_outside_the_tree_are_refused(one_image, tmp_path: Path) -> None:
    source, images, _ = one_image
    outside = tmp_path / "outside"
    (source / "demo.example/app").rename(outside)
    (source / "demo.example/app").symlink_to(outside)
    result = plan_from(source, images, f"oci:{tmp_path / 'disk'}")
    assert result.exit_code == 1
    assert "leads outside the layout tree" in result.stdout

    # In the target: a directory on the way that links elsewhere; nothing is written there.
    (source / "demo.example/app").unlink()
    outside.rename(source / "demo.example/app")
    disk, elsewhere = tmp_path / "disk", tmp_path / "elsewhere"
    (disk).mkdir()
    elsewhere.mkdir()
    (disk / "demo.example").symlink_to(elsewhere)
    result = run("sync", "-i", images, "--source-layout", source, "-r", f"oci:{disk}")
    assert result.exit_code == 1 and "leads outside the layout tree" in result.stdout
    assert list(elsewhere.iterdir()) == []


def test_a_plan_names_only_its_own_layouts(one_image, tmp_path: Path) -> None:
    """The plan checks hold for layouts: a target outside the plan's tree, a source outside
    its source layout, a source layout on a plan made without one, another source layout at
    apply, and -i with another source layout are refused before anything is read."""
    source, images, _ = one_image
    disk = tmp_path / "disk"
    path = tmp_path / "plan.json"
    made = run("plan", "-i", images, "--source-layout", source, "-r", f"oci:{disk}", "-o", path)
    assert made.exit_code == 0, made.output
    document = json.loads(path.read_text())

    def forged(edit: str, old: str, new: str) -> Path:
        changed = json.loads(json.dumps(document))
        changed["changes"][0][edit] = changed["changes"][0][edit].replace(old, new)
        changed["checksum"] = checksum(changed)
        out = tmp_path / f"forged-{edit}.json"
        out.write_text(json.dumps(changed))
        return out

    for plan, message in (
        (forged("target", str(disk), str(tmp_path / "else")), "lies outside the plan's prefix"),
        (forged("source", str(source), str(tmp_path)), "outside the plan's source layout"),
    ):
        result = run("apply", plan)
        assert result.exit_code == 1 and message in result.stderr, result.output
    no_layout = dict(json.loads(json.dumps(document)))
    del no_layout["source_layout"]
    no_layout["checksum"] = checksum(no_layout)
    (tmp_path / "no-layout.json").write_text(json.dumps(no_layout))
    result = run("apply", tmp_path / "no-layout.json")
    assert result.exit_code == 1 and "the plan has no source layout" in result.stderr

    other = tmp_path / "other"
    other.mkdir()
    result = run("apply", path, "--source-layout", other)
    assert result.exit_code == 1 and "re-run plan with this --source-layout" in result.stderr
    applied = run("apply", path, "-i", images, "-r", f"oci:{disk}")
    assert applied.exit_code == 0, applied.output
    assert Plan.read(path).source_tree is not None
    assert not (tmp_path / "else").exists()


def test_a_blob_several_layouts_need_is_read_once_and_linked(
    source_registry: RegistryServer, tmp_path: Path
) -> None:
    """Images that share a base layer: the export reads it once from the source and gives the
    other layouts of the tree a hard link to it (blobs cross the wire once, into layouts too)."""
    src = source_registry.host
    with FaultProxy(src) as proxy:
        shared = {"platforms": [("linux", "amd64")], "base_layers": [4096], "base_seed": 5}
        first = push_image(src, "team/one", "1.0", seed=1, **shared)
        push_image(src, "team/two", "1.0", seed=2, **shared)
        base = first.manifests[0].blobs[1]  # the config, then the base layer
        images = write_images(
            tmp_path / "images.yaml",
            [
                f'- source: "{proxy.host}/team/one:1.0"\n',
                f'- source: "{proxy.host}/team/two:1.0"\n',
            ],
        )
        disk = tmp_path / "disk"
        planned = run("plan", "-i", images, "-r", f"oci:{disk}")
        assert "1 to mount" in planned.stdout, planned.stdout
        result = run("sync", "-i", images, "-r", f"oci:{disk}", "--parallelism", "1")
        assert result.exit_code == 0, result.output
        assert "1 mounted" in result.stdout, result.stdout
        reads = [r for r in proxy.requests if r.method == "GET" and base.digest in r.path]
    assert len(reads) == 1, reads
    files = [
        layout_of(disk, f"{proxy.host}/team/{name}") / "blobs/sha256" / base.digest.split(":")[1]
        for name in ("one", "two")
    ]
    assert files[0].stat().st_ino == files[1].stat().st_ino
    for name in ("one", "two"):
        assert layout_problems(layout_of(disk, f"{proxy.host}/team/{name}")) == []


def test_a_target_layout_that_is_not_json_fails_its_entry(one_image, tmp_path: Path) -> None:
    source, images, _ = one_image
    disk = tmp_path / "disk"
    push_image(LayoutPusher(disk), "demo.example/app", "other", seed=5)
    (disk / "demo.example/app/index.json").write_text("<html>not a layout</html>")
    result = plan_from(source, images, f"oci:{disk}")
    assert result.exit_code == 1
    assert "x error" in result.stdout and "index.json is not valid JSON" in result.stdout


def test_a_referrer_travels_untagged_whatever_its_annotations_say(tmp_path: Path) -> None:
    """A referrer is found again by its subject; one whose annotations name a tag (as
    index.json entries do) does not become that tag in the target."""
    source, disk = tmp_path / "source", tmp_path / "disk"
    pusher = LayoutPusher(source)
    image = push_image(pusher, "demo.example/app", "1.0", platforms=[("linux", "amd64")])
    sbom = push_referrer(pusher, "demo.example/app", image, update_tag_schema=False)
    raw = json.loads(sbom.raw)
    raw["annotations"]["org.opencontainers.image.ref.name"] = "latest"
    sneaky = json.dumps(raw).encode()
    pusher.put_manifest("demo.example/app", digest_of(sneaky), sneaky, sbom.media_type)
    images = write_images(tmp_path / "images.yaml", ['- source: "demo.example/app:1.0"\n'])
    result = run("sync", "-i", images, "--source-layout", source, "-r", f"oci:{disk}")
    assert result.exit_code == 0, result.output
    assert "2 to create" in result.stdout  # both referrers, as sub-changes
    layout = disk / "demo.example/app"
    assert tagged_entries(layout) == {"1.0": image.digest}
    listed = {e["digest"] for e in json.loads((layout / "index.json").read_text())["manifests"]}
    assert {sbom.digest, digest_of(sneaky)} <= listed
    again = run("plan", "-i", images, "--source-layout", disk, "-r", f"oci:{tmp_path / 'x'}")
    assert "signatures: 2 to create" in again.stdout, again.stdout
