"""The image-syncer's users' real files, in a network where only mirrors reach the internet.

Every file in ``tests/realworld/`` (byte for byte as its users published it) is mirrored into
a world built by :mod:`tests.harness.mirrorworld`: the public registries the files name do
not resolve (the one fake: DNS, refused in this process for every name that is not
loopback), real distribution registries are their mirrors, and the images sit in the mirrors
as pull-through caches hold them (pinned ones by digest only, in repositories without a
single tag). Then validate, plan, apply and plan again, with imagesync in this process and
skopeo reading what landed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from imagesync.cli import main
from tests.conftest import RegistryFactory
from tests.harness.accounts import assert_apply_counts_as_planned
from tests.harness.images import connect
from tests.harness.mirrorworld import (
    PROXY_VARIABLES,
    MirroredFile,
    MirroredImage,
    MirrorWorld,
    OnlyLoopback,
)
from tests.harness.registry import RegistryServer
from tests.harness.skopeo import inspect_raw, list_tags

pytestmark = pytest.mark.registry

REALWORLD = Path(__file__).parent / "realworld"
FILES = sorted(REALWORLD.glob("*.yaml"))
WITH_TARGET_REPO_PREFIX = "kyma-project__test-infra__cmd_image-syncer_external-images.yaml"
# What the upstream names in the files stand for; none may be asked for.
UPSTREAMS = ("docker.io", "registry-1.docker.io", "gcr.io", "k8s.gcr.io", "ghcr.io", "quay.io")


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> Iterator[OnlyLoopback]:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with OnlyLoopback() as guard:
        yield guard


@pytest.fixture
def world(registry_factory: RegistryFactory, tmp_path: Path, dns: OnlyLoopback) -> MirrorWorld:
    return MirrorWorld(registry_factory, tmp_path, dns)


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    result = CliRunner().invoke(main, list(args), env=env)
    assert "Traceback" not in result.output, result.output
    return result


def digest_of(raw: bytes) -> str:
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def expected_digests(target: RegistryServer, prefix: str, images: list[MirroredImage]) -> dict:
    """Every image and signature that must be in the target below ``prefix``: reference to
    the digest generated into the mirror."""
    below = f"{target.host}/{prefix}"
    expected = {}
    for image in images:
        expected[image.target(below)] = image.image.digest
        if image.signature is not None:
            expected[image.signature_target(below)] = image.signature.digest
    return expected


def target_digests(target: RegistryServer, references: Iterable[str]) -> dict:
    """What skopeo reads for each reference (sha256 of ``inspect --raw``), concurrently: a
    skopeo process takes tens of milliseconds."""
    wanted = list(references)
    with ThreadPoolExecutor(max_workers=4) as pool:
        raws = pool.map(lambda reference: inspect_raw(reference, registry=target), wanted)
        return {reference: digest_of(raw) for reference, raw in zip(wanted, raws, strict=True)}


def plan_json(result: Result) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def mirror_and_target(
    world: MirrorWorld, original: Path, target: RegistryServer, prefix: str
) -> tuple[MirroredFile, list[str]]:
    """The rewritten file and the target arguments: the file with targetRepoPrefix: keeps
    its own (pointed at the test's target), the others get the image-syncer's -r P/."""
    if original.name == WITH_TARGET_REPO_PREFIX:
        mirrored = world.mirror_file(original, target_repo_prefix=f"{target.host}/{prefix}/")
        return mirrored, []
    return world.mirror_file(original), ["-r", f"{target.host}/{prefix}/"]


def file_id(path: Path) -> str:
    return path.name.removeprefix("kyma-project__").removesuffix("external-images.yaml").strip("_")


@pytest.mark.parametrize("original", FILES, ids=[file_id(p) for p in FILES])
def test_a_real_file_plans_and_applies_where_only_mirrors_answer(
    world: MirrorWorld, target_registry: RegistryServer, tmp_path: Path, original: Path
) -> None:
    prefix = "kyma-project/prod/external"
    mirrored, target_args = mirror_and_target(world, original, target_registry, prefix)
    # The world is the users': digest pins live in repositories that hold no tag at all.
    if any(image.by_digest_only for image in mirrored.images):
        untagged = mirrored.untagged_repositories()
        assert untagged, "some pinned images sit in repositories without a tag"
        for mirror, repository in untagged:
            assert connect(mirror).tags(repository) == []  # the mirror answers 404
    config = str(world.registries_config)

    validated = run("validate", "-i", str(mirrored.path), *target_args)
    assert validated.exit_code == 0, validated.output

    plan_file = tmp_path / "plan.json"
    planned = run(
        "plan", "-i", str(mirrored.path), *target_args, "--registries-config", config,
        "-o", str(plan_file), "--format", "json",
    )  # fmt: skip
    assert planned.exit_code == 0, planned.output
    document = plan_json(planned)
    unique = mirrored.unique()
    assert [c["action"] for c in document["changes"]] == ["create"] * len(unique)
    by_target = {c["target"]: c for c in document["changes"]}
    for image in unique:
        change = by_target[image.target(f"{target_registry.host}/{prefix}")]
        assert change["digest"] == image.image.digest
        # Nothing failed quietly either: the only warnings are the file's own (a moving
        # latest, a repeated entry), never a lookup that did not work.
        assert not [w for w in change["warnings"] if "could not be looked up" in w], change
        signatures = [s for s in change["subchanges"] if s["kind"] == "signature"]
        if image.signature is None:
            assert signatures == []
        else:
            # Found where the image was found: in the mirror, next to it.
            (signature,) = signatures
            assert signature["digest"] == image.signature.digest
            assert signature["action"] == "create"

    applied = run("apply", str(plan_file), "--registries-config", config, "--format", "json")
    assert applied.exit_code == 0, applied.output
    report = json.loads(applied.stdout)
    assert report["summary"]["created"] == len(unique) and not report["failed"]
    assert_apply_counts_as_planned(document, report)
    expected = expected_digests(target_registry, prefix, unique)
    assert target_digests(target_registry, expected) == expected

    again = run(
        "plan", "-i", str(mirrored.path), *target_args, "--registries-config", config,
        "--format", "json", "--detailed-exitcode",
    )  # fmt: skip
    assert again.exit_code == 0, again.output  # 0 with --detailed-exitcode: nothing to do
    changes = plan_json(again)["changes"]
    assert {c["action"] for c in changes} == {"skip"}
    assert {s["action"] for c in changes for s in c["subchanges"]} <= {"skip"}

    # Not one lookup of docker.io, ghcr.io, quay.io, ...: the mirrors had everything.
    assert world.dns.refused == []
    assert not set(world.dns.resolved) & set(UPSTREAMS)


def test_every_real_file_has_a_mirror_world_worth_the_name() -> None:
    """The parametrized test above covers the shapes the real files have: pins (in untagged
    repositories), tags, a source without either, amd64Only, duplicates, five upstreams."""
    assert len(FILES) == 6
    text = "\n".join(path.read_text(encoding="utf-8") for path in FILES)
    for upstream in ("ghcr.io/", "gcr.io/", "k8s.gcr.io/", "quay.io/"):
        assert f'"{upstream}' in text or f" {upstream}" in text
    assert "targetRepoPrefix:" in text and "amd64Only: true" in text and "@sha256:" in text


UNQUOTED_TAGS = ("3.10", "1", "010", "1e3", "1.10")


def test_unquoted_numeric_tags_land_as_written(
    world: MirrorWorld, target_registry: RegistryServer, tmp_path: Path
) -> None:
    original = tmp_path / "numbers.yaml"
    original.write_text(
        "images:\n"
        + "".join(
            f'- source: "python@sha256:{str(n) * 64}"\n  tag: {tag}\n'
            for n, tag in enumerate(UNQUOTED_TAGS, start=1)
        ),
        encoding="utf-8",
    )
    mirrored = world.mirror_file(original, signed=lambda entry: False)
    config = str(world.registries_config)
    target = ["-r", f"{target_registry.host}/ext/"]
    plan_file = tmp_path / "plan.json"
    planned = run(
        "plan", "-i", str(mirrored.path), *target, "--registries-config", config,
        "-o", str(plan_file),
    )  # fmt: skip
    assert planned.exit_code == 0, planned.output
    for tag in UNQUOTED_TAGS:
        assert f"+ create   {target_registry.host}/ext/library/python:{tag}\n" in planned.stdout
    document = json.loads(plan_file.read_text(encoding="utf-8"))
    assert [c["target"].rsplit(":", 1)[1] for c in document["changes"]] == list(UNQUOTED_TAGS)
    applied = run("apply", str(plan_file), "--registries-config", config)
    assert applied.exit_code == 0, applied.output
    repository = f"{target_registry.host}/ext/library/python"
    assert sorted(list_tags(repository, registry=target_registry)) == sorted(UNQUOTED_TAGS)
    for image in mirrored.images:
        raw = inspect_raw(f"{repository}:{image.entry.tag}", registry=target_registry)
        assert digest_of(raw) == image.image.digest
    assert world.dns.refused == []


TOKEN = "imagesync-test-access-token-0123456789"


def test_the_image_syncer_invocation_does_what_target_does(
    world: MirrorWorld, target_registry: RegistryServer, tmp_path: Path
) -> None:
    """``sync -i F -r P/ -a T`` and the same through SYNCER_* variables alone plan and apply
    what ``sync -i F --target P`` does. The token goes to the target only (a registry
    without auth ignores it) and is never printed."""
    mirrored = world.mirror_file(REALWORLD / "kyma-project__api-gateway__external-images.yaml")
    config = str(world.registries_config)
    dst = target_registry.host

    def invocations(dry_run: bool) -> dict[str, Result]:
        dry = ["--dry-run"] if dry_run else []
        return {
            "target": run(
                "sync", "-i", str(mirrored.path), "--target", f"{dst}/a",
                "--registries-config", config, *dry,
            ),
            "flags": run(
                "sync", "-i", str(mirrored.path), "-r", f"{dst}/b/", "-a", TOKEN,
                "--registries-config", config, *dry,
            ),
            "environment": run(
                "sync",
                env={
                    "SYNCER_IMAGES_FILE": str(mirrored.path),
                    "SYNCER_TARGET_REPO_PREFIX": f"{dst}/c/",
                    "SYNCER_ACCESS_TOKEN": TOKEN,
                    "SYNCER_REGISTRIES_CONFIG": config,
                    **({"SYNCER_DRY_RUN": "true"} if dry_run else {}),
                },
            ),
        }  # fmt: skip

    def same(results: dict[str, Result]) -> None:
        for name, result in results.items():
            assert result.exit_code == 0, (name, result.output)
            assert TOKEN not in result.output
        reference = results["target"].stdout
        assert "Plan: 4 to create, 0 to skip" in reference
        assert results["flags"].stdout == reference.replace(f"{dst}/a", f"{dst}/b")
        assert results["environment"].stdout == reference.replace(f"{dst}/a", f"{dst}/c")

    same(invocations(dry_run=True))
    assert connect(target_registry).tags("a/oryd/oathkeeper") == []  # a dry run wrote nothing
    same(invocations(dry_run=False))
    for prefix in ("a", "b", "c"):
        expected = expected_digests(target_registry, prefix, mirrored.unique())
        assert target_digests(target_registry, expected) == expected
    assert world.dns.refused == []


def test_an_image_no_mirror_has_is_an_error_that_says_where_it_looked(
    world: MirrorWorld, target_registry: RegistryServer, tmp_path: Path
) -> None:
    """The other side of the world: what the mirror lacks, the upstream cannot give. The
    entry is an error that names both, the other entries are not touched by it, and the
    one lookup of the upstream's name is what the DNS guard counts."""
    original = tmp_path / "partly.yaml"
    original.write_text(
        'images:\n- source: "busybox:1.36"\n- source: "alpine:3.20"\n', encoding="utf-8"
    )
    mirrored = world.mirror_file(original, signed=lambda entry: False)
    mirror = world.mirrors["docker.io"]
    connect(mirror).delete_manifest("library/busybox", mirrored.images[0].image.digest)
    planned = run(
        "plan", "-i", str(mirrored.path), "-r", f"{target_registry.host}/ext/",
        "--registries-config", str(world.registries_config), "--retries", "1",
        "--format", "json",
    )  # fmt: skip
    assert planned.exit_code == 1
    missing, present = plan_json(planned)["changes"]
    assert present["action"] == "create"
    assert missing["action"] == "error"
    assert missing["reason"].startswith(
        f"cannot resolve host registry-1.docker.io, and mirror {mirror.host} answered 404 ("
    )
    assert world.dns.refused == ["registry-1.docker.io"]


def test_require_signatures_counts_the_signatures_the_mirror_holds(
    world: MirrorWorld, target_registry: RegistryServer
) -> None:
    mirrored = world.mirror_file(REALWORLD / "kyma-project__api-gateway__external-images.yaml")
    planned = run(
        "plan", "-i", str(mirrored.path), "-r", f"{target_registry.host}/ext/",
        "--registries-config", str(world.registries_config), "--require-signatures",
        "--format", "json",
    )  # fmt: skip
    actions = {c["source_text"]: c["action"] for c in plan_json(planned)["changes"]}
    signed = {i.entry.source for i in mirrored.images if i.signature is not None}
    assert signed and signed != set(actions)
    assert actions == {s: "create" if s in signed else "error" for s in actions}
    assert world.dns.refused == []
