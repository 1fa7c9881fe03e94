"""OCI artifacts mirror like images (issue 19, design.md §15): Helm charts, WASM modules,
artifacts with ``artifactType`` and the empty config, and indexes of them are planned and
applied like images — create / skip / conflict, digest for digest, every blob by its own media
type, their referrers along — with no platform rule. Referrer graphs with a cycle end, and the
depth and count of what is attached have bounds that say so on the entry. Across an air gap,
artifacts go into a tree of OCI layouts and come out of it digest for digest.

Against real registries (distribution 2.8, which has no referrers API: referrers travel by the
``sha256-<hex>`` tag schema); the artifacts are written as their tools write them
(``tests/harness/images.py``), and skopeo ``inspect --raw`` checks what landed.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from imagesync.content.manifest import BadManifest, Manifest
from imagesync.plan.document import Action, Plan
from imagesync.stores import attached
from tests.conftest import RegistryFactory
from tests.harness.accounts import assert_apply_counts_as_planned
from tests.harness.cli import run, write_images
from tests.harness.faultproxy import FaultProxy
from tests.harness.images import (
    DOCKER_CONFIG,
    DOCKER_MANIFEST,
    HELM_CONFIG,
    OCI_CONFIG,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    WASM_CONFIG,
    Pushed,
    assert_complete,
    cosign_tag,
    push_artifact,
    push_helm_chart,
    push_image,
    push_index,
    push_referrer,
    push_wasm_module,
)
from tests.harness.layouts import LayoutPusher, layout_problems, tagged_entries
from tests.harness.mirrorworld import SourceName
from tests.harness.registry import RegistryServer
from tests.harness.skopeo import inspect_raw

POLICY = "application/vnd.example.policy.v1"
SPDX = "application/spdx+json"
BUNDLE = "application/vnd.example.bundle.v1"


def plan_to(tmp_path: Path, images: Path, name: str = "plan.json", *flags: str) -> tuple[Plan, str]:
    out = tmp_path / name
    code, stdout, stderr = run("plan", "-i", str(images), "-o", str(out), *flags)
    assert code == 0, stdout + stderr
    return Plan.read(out), stdout


def target_path(source: RegistryServer, path: str) -> str:
    """The repository an image of ``source`` gets under the target prefix ``mirror``."""
    return f"mirror/{source.host.replace(':', '-')}/{path}"


# -- the rule: what is an artifact (the content layer says it; the planner asks) ---------------


def manifest(document: dict[str, object], media_type: str = OCI_MANIFEST) -> Manifest:
    return Manifest.parse(json.dumps(document).encode(), media_type, "test")


def descriptor(media_type: str) -> dict[str, object]:
    return {"mediaType": media_type, "digest": "sha256:" + "a" * 64, "size": 2}


@pytest.mark.parametrize(
    ("config", "artifact_type", "media_type", "is_artifact"),
    [
        (OCI_CONFIG, None, OCI_MANIFEST, False),
        (DOCKER_CONFIG, None, DOCKER_MANIFEST, False),
        (HELM_CONFIG, None, OCI_MANIFEST, True),
        (WASM_CONFIG, None, OCI_MANIFEST, True),
        (OCI_EMPTY, POLICY, OCI_MANIFEST, True),
        # An image config with an artifactType is what the artifactType says.
        (OCI_CONFIG, SPDX, OCI_MANIFEST, True),
    ],
)
def test_an_artifact_is_one_by_its_artifact_type_or_config(
    config: str, artifact_type: str | None, media_type: str, is_artifact: bool
) -> None:
    document: dict[str, object] = {"schemaVersion": 2, "config": descriptor(config), "layers": []}
    if artifact_type:
        document["artifactType"] = artifact_type
    parsed = manifest(document, media_type)
    assert parsed.is_artifact is is_artifact
    assert parsed.artifact_type == (artifact_type or config)


def test_an_index_is_an_artifact_by_its_own_artifact_type() -> None:
    plain = manifest({"schemaVersion": 2, "manifests": []}, OCI_INDEX)
    bundle = manifest({"schemaVersion": 2, "artifactType": BUNDLE, "manifests": []}, OCI_INDEX)
    assert (plain.is_artifact, bundle.is_artifact) == (False, True)
    assert bundle.artifact_type == BUNDLE


def test_withdrawn_artifact_manifest_is_refused_with_what_to_do() -> None:
    raw = json.dumps({"mediaType": "application/vnd.oci.artifact.manifest.v1+json"}).encode()
    with pytest.raises(BadManifest) as caught:
        Manifest.parse(raw, "application/vnd.oci.artifact.manifest.v1+json", "reg.io/a:1")
    assert "withdrew" in caught.value.message
    assert "artifactType" in (caught.value.hint or "")


# -- against real registries ------------------------------------------------------------------


@dataclass(frozen=True)
class ArtifactWorld:
    """Every artifact shape in one source registry, as the tools push them, and an image."""

    chart: Pushed  # with a provenance layer, and an SBOM attached as a referrer
    sbom: Pushed
    wasm: Pushed
    policy: Pushed
    index: Pushed  # of a chart, a WASM module and a policy artifact
    image: Pushed

    def expected(self) -> dict[str, tuple[str, Pushed, tuple[str, ...]]]:
        """Per repository: the tag, what was pushed there, the artifact types a plan shows."""
        return {
            "charts/mychart": ("0.1.0", self.chart, (HELM_CONFIG,)),
            "wasm/hello": ("1.0", self.wasm, (WASM_CONFIG,)),
            "policy/bundle": ("1.0", self.policy, (POLICY,)),
            "bundles/all": ("1.0", self.index, tuple(sorted([HELM_CONFIG, WASM_CONFIG, POLICY]))),
            "team/app": ("1.0", self.image, ()),
        }

    def entries(self, source: str, amd64_only: str = "") -> str:
        """The images file's entries, ``amd64Only: true`` on the repository ``amd64_only``."""
        return "".join(
            f'- source: "{source}/{path}:{tag}"\n'
            + ("  amd64Only: true\n" if path == amd64_only else "")
            for path, (tag, _, _) in self.expected().items()
        )


def push_artifact_world(src: str) -> ArtifactWorld:
    chart = push_helm_chart(src, "charts/mychart", "0.1.0", provenance=True)
    # An index of artifacts: helm and wasm entries say nothing of their kind (as the tools
    # write them), the policy's says its artifactType.
    members = [
        push_helm_chart(src, "bundles/all", "0.2.0", tag="chart", seed=3),
        push_wasm_module(src, "bundles/all", None, seed=3),
        push_artifact(src, "bundles/all", None, artifact_type=POLICY, seed=3),
    ]
    return ArtifactWorld(
        chart=chart,
        sbom=push_referrer(src, "charts/mychart", chart, artifact_type=SPDX, seed=2),
        wasm=push_wasm_module(src, "wasm/hello", "1.0"),
        policy=push_artifact(src, "policy/bundle", "1.0", artifact_type=POLICY),
        index=push_index(src, "bundles/all", "1.0", members),
        image=push_image(src, "team/app", "1.0", seed=4),
    )


def test_artifacts_mirror_digest_exact_with_their_referrers(
    source_registry: RegistryServer, target_registry: RegistryServer, tmp_path: Path
) -> None:
    src, dst = source_registry.host, target_registry.host
    world = push_artifact_world(src)
    chart, sbom = world.chart, world.sbom
    images = write_images(tmp_path, f"{dst}/mirror", world.entries(src, "wasm/hello"))
    expected = {
        f"{path}:{tag}": (pushed, artifacts)
        for path, (tag, pushed, artifacts) in world.expected().items()
    }

    plan, text = plan_to(tmp_path, images)
    by_name = {c.target.split("/", 3)[-1]: c for c in plan.changes}
    assert set(by_name) == set(expected)
    for name, (pushed, artifacts) in expected.items():
        change = by_name[name]
        assert (change.action, change.digest) == (Action.CREATE, pushed.digest), change
        assert change.artifact_types == artifacts
        assert change.platforms == (() if artifacts else ("linux/amd64", "linux/arm64"))
    wasm_change = by_name["wasm/hello:1.0"]
    assert any("amd64Only means nothing for an artifact" in w for w in wasm_change.warnings)
    assert not any("amd64Only" in w for w in by_name["charts/mychart:0.1.0"].warnings)
    # Its referrer travels with the chart.
    assert {(s.kind, s.digest) for s in by_name["charts/mychart:0.1.0"].subchanges} == {
        ("referrer", sbom.digest),
        ("referrers-index", chart.digest),
    }
    # What it is, where an image shows its platforms: text, JSON and Markdown.
    assert f"artifact: {HELM_CONFIG}" in text
    assert f"artifacts: {', '.join(sorted([HELM_CONFIG, WASM_CONFIG, POLICY]))}" in text
    assert "platforms: linux/amd64, linux/arm64" in text
    document = json.loads(run("show", str(tmp_path / "plan.json"), "--format", "json")[1])
    assert [c["artifact_types"] for c in document["changes"]] == [
        list(expected[n][1]) for n in expected
    ]
    code, markdown, _ = run("show", str(tmp_path / "plan.json"), "--format", "markdown")
    assert code == 0
    assert f"artifact: {WASM_CONFIG}" in markdown

    code, stdout, stderr = run("apply", str(tmp_path / "plan.json"), "--format", "json")
    assert code == 0, stdout + stderr
    planned = json.loads((tmp_path / "plan.json").read_text(encoding="utf-8"))
    assert_apply_counts_as_planned(planned, json.loads(stdout))
    for name, (pushed, _) in expected.items():
        reference = f"{dst}/{target_path(source_registry, name)}"
        raw = inspect_raw(reference)
        assert raw == pushed.raw, name  # digest for digest: nothing re-serialised or re-typed
        path = target_path(source_registry, name.split(":")[0])
        assert_complete(target_registry, path, pushed, reference=name.split(":")[1])
        assert_complete(target_registry, path, pushed, check_blob_bytes=True)
    chart_path = target_path(source_registry, "charts/mychart")
    assert inspect_raw(f"{dst}/{chart_path}@{sbom.digest}") == sbom.raw
    listed = json.loads(inspect_raw(f"{dst}/{chart_path}:{cosign_tag(chart.digest, '')}"))
    assert [e["digest"] for e in listed["manifests"]] == [sbom.digest]

    again, text = plan_to(tmp_path, images, "again.json")
    assert [c.action for c in again.changes] == [Action.SKIP] * len(expected)
    assert {s.action for c in again.changes for s in c.subchanges} == {Action.SKIP}
    # A skip is decided by HEADs alone: what its manifest holds (artifact types, platforms)
    # would cost a manifest GET, which Docker Hub's quota and Harbor's retention count.
    assert [c.artifact_types for c in again.changes] == [()] * len(expected)
    assert f"artifact: {HELM_CONFIG}" not in text
    assert not again.has_changes


def test_an_artifact_tag_that_holds_another_digest_is_a_conflict(
    source_registry: RegistryServer, target_registry: RegistryServer, tmp_path: Path
) -> None:
    src, dst = source_registry.host, target_registry.host
    ours = push_helm_chart(src, "charts/mychart", "0.1.0", seed=1)
    theirs = push_helm_chart(dst, target_path(source_registry, "charts/mychart"), seed=2)
    images = write_images(tmp_path, f"{dst}/mirror", f'- source: "{src}/charts/mychart:0.1.0"\n')

    out = tmp_path / "plan.json"
    code, stdout, _ = run("plan", "-i", str(images), "-o", str(out))
    assert code == 1, stdout
    (change,) = Plan.read(out).changes
    assert (change.action, change.artifact_types) == (Action.CONFLICT, (HELM_CONFIG,))
    assert theirs.digest in change.reason and ours.digest in change.reason
    code, _, _ = run("apply", str(out))
    assert code == 1
    reference = f"{dst}/{target_path(source_registry, 'charts/mychart')}:0.1.0"
    assert inspect_raw(reference) == theirs.raw


def manifest_puts(proxy: FaultProxy) -> Counter[str]:
    """How often each manifest (by the tag or digest in its path) was PUT."""
    return Counter(
        r.path.rsplit("/manifests/", 1)[1]
        for r in proxy.requests
        if r.method == "PUT" and "/manifests/" in r.path
    )


@pytest.mark.parametrize("entry", ["image", "index"])
def test_referrer_cycle_is_copied_once_and_ends(
    source_registry: RegistryServer,
    target_registry: RegistryServer,
    tmp_path: Path,
    entry: str,
) -> None:
    """An index whose child is also its subject: the image lists the index as its referrer,
    the index holds the image. Synced from either end, every manifest is PUT once."""
    src = source_registry.host
    image = push_image(src, "team/app", "1.0", seed=5)
    cycle = push_index(src, "team/app", "bundle", [image], artifact_type=BUNDLE, subject=image)
    tag = {"image": "1.0", "index": "bundle"}[entry]
    with FaultProxy(target_registry.host) as proxy:
        images = write_images(
            tmp_path, f"{proxy.host}/mirror", f'- source: "{src}/team/app:{tag}"\n'
        )
        plan, _ = plan_to(tmp_path, images)
        (change,) = plan.changes
        assert change.action is Action.CREATE
        assert {(s.kind, s.digest, s.subject) for s in change.subchanges} == {
            ("referrer", cycle.digest, image.digest),
            ("referrers-index", image.digest, image.digest),
        }
        code, stdout, stderr = run("apply", str(tmp_path / "plan.json"))
        assert code == 0, stdout + stderr

        puts = manifest_puts(proxy)
        written = {image.digest, cycle.digest, *image.children}
        root, member = (image, cycle) if entry == "image" else (cycle, image)
        assert puts == Counter(
            {
                tag: 1,  # the root, by its tag
                cosign_tag(image.digest, ""): 1,  # the tag-schema index naming the cycle
                **{d: 1 for d in written - {root.digest}},  # everything else once, by digest
            }
        ), puts
        path = target_path(source_registry, "team/app")
        assert inspect_raw(f"{target_registry.host}/{path}:{tag}") == root.raw
        assert inspect_raw(f"{target_registry.host}/{path}@{member.digest}") == member.raw
        listed = json.loads(
            inspect_raw(f"{target_registry.host}/{path}:{cosign_tag(image.digest, '')}")
        )
        assert [e["digest"] for e in listed["manifests"]] == [cycle.digest]

        again, _ = plan_to(tmp_path, images, "again.json")
        assert again.changes[0].action is Action.SKIP
        assert {s.action for s in again.changes[0].subchanges} == {Action.SKIP}


def test_attached_artifacts_past_their_bounds_are_a_warning_on_the_entry(
    source_registry: RegistryServer,
    target_registry: RegistryServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The bounds are 4 levels and 1000 artifacts; lowered here to keep the test small.
    monkeypatch.setattr(attached, "MAX_DEPTH", 2)
    monkeypatch.setattr(attached, "MAX_ATTACHED", 3)
    src, dst = source_registry.host, target_registry.host
    deep = push_image(src, "team/deep", "1.0", seed=6)
    chain = [deep]
    for level in range(3):  # a signature on a signature on an SBOM
        chain.append(push_referrer(src, "team/deep", chain[-1], seed=10 + level))
    many = push_image(src, "team/many", "1.0", seed=7)
    for seed in range(4):
        push_referrer(src, "team/many", many, seed=20 + seed)
    images = write_images(
        tmp_path,
        f"{dst}/mirror",
        f'- source: "{src}/team/deep:1.0"\n- source: "{src}/team/many:1.0"\n',
    )

    plan, text = plan_to(tmp_path, images)
    deep_change, many_change = plan.changes
    assert [s.digest for s in deep_change.subchanges if s.kind == "referrer"] == [
        chain[1].digest,
        chain[2].digest,
    ]
    assert any("levels" in w and chain[2].digest in w for w in deep_change.warnings)
    assert len([s for s in many_change.subchanges if s.kind == "referrer"]) == 3
    assert any("more than 3" in w for w in many_change.warnings)
    assert "Traceback" not in text
    assert text.count("warning: ") >= 2
    code, stdout, stderr = run("apply", str(tmp_path / "plan.json"))
    assert code == 0, stdout + stderr


def test_an_artifact_type_longer_than_a_media_type_is_an_error_of_its_entry(
    source_registry: RegistryServer, target_registry: RegistryServer, tmp_path: Path
) -> None:
    """A registry's words go into the plan; one that no media type can be would make a plan
    that apply refuses. It is the entry's error, and the plan stays one apply reads."""
    src, dst = source_registry.host, target_registry.host
    push_artifact(src, "policy/long", "1.0", artifact_type="application/vnd." + "x" * 300)
    push_helm_chart(src, "charts/mychart", "0.1.0")
    images = write_images(
        tmp_path,
        f"{dst}/mirror",
        f'- source: "{src}/policy/long:1.0"\n- source: "{src}/charts/mychart:0.1.0"\n',
    )
    out = tmp_path / "plan.json"
    code, stdout, stderr = run("plan", "-i", str(images), "-o", str(out))
    assert code == 1, stdout + stderr
    long, chart = Plan.read(out).changes
    assert long.action is Action.ERROR
    assert "more than a media type can be" in long.reason
    assert chart.action is Action.CREATE
    code, stdout, stderr = run("apply", str(out))
    assert code == 1 and "Traceback" not in stdout + stderr
    assert "re-run plan" not in stderr


def test_artifacts_into_and_out_of_an_oci_layout_digest_exact(
    registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    """Across an air gap: exported into a tree of OCI layouts (``--target oci:DIR``) and
    imported from it (``--source-layout DIR``), every artifact and its referrers land byte for
    byte, the cycle included, and each side planned again has nothing to do."""
    source, target = registry_factory("source"), registry_factory("target")
    src = source.host
    world = push_artifact_world(src)
    sbom, image = world.sbom, world.image
    cycle = push_index(src, "team/app", None, [image], artifact_type=BUNDLE, subject=image)
    expected = world.expected()
    images = write_images(tmp_path, f"{target.host}/mirror", world.entries(src))
    disk = tmp_path / "disk"

    # Out: into the layouts, as skopeo and every layout reader reads them.
    exported, _ = plan_to(tmp_path, images, "out.json", "--target", f"oci:{disk}")
    assert [c.artifact_types for c in exported.changes] == [e[2] for e in expected.values()]
    code, stdout, stderr = run("apply", str(tmp_path / "out.json"), "--format", "json")
    assert code == 0, stdout + stderr
    planned = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))
    assert_apply_counts_as_planned(planned, json.loads(stdout))
    on_disk = LayoutPusher(disk)
    for path, (tag, pushed, _) in expected.items():
        layout = disk / SourceName.parse(f"{src}/{path}").target_repository()
        assert layout_problems(layout) == [], path
        assert tagged_entries(layout)[tag] == pushed.digest, path
        assert inspect_raw(f"oci:{layout}:{tag}") == pushed.raw, path
        name = layout.relative_to(disk).as_posix()
        assert_complete(on_disk, name, pushed, reference=tag, check_blob_bytes=True)
    chart_layout = SourceName.parse(f"{src}/charts/mychart").target_repository()
    assert on_disk.fetch_manifest(chart_layout, sbom.digest).raw == sbom.raw
    app_layout = SourceName.parse(f"{src}/team/app").target_repository()
    assert on_disk.fetch_manifest(app_layout, cycle.digest).raw == cycle.raw
    again, _ = plan_to(tmp_path, images, "out-again.json", "--target", f"oci:{disk}")
    assert {c.action for c in again.changes} == {Action.SKIP}
    assert {s.action for c in again.changes for s in c.subchanges} == {Action.SKIP}

    # In: the source registry is gone; everything comes from the disk.
    source.close()
    imported, _ = plan_to(tmp_path, images, "in.json", "--source-layout", str(disk))
    assert [c.action for c in imported.changes] == [Action.CREATE] * len(expected)
    assert [c.artifact_types for c in imported.changes] == [e[2] for e in expected.values()]
    code, stdout, stderr = run("apply", str(tmp_path / "in.json"))
    assert code == 0, stdout + stderr
    for path, (tag, pushed, _) in expected.items():
        assert inspect_raw(f"{target.host}/{target_path(source, path)}:{tag}") == pushed.raw
        assert_complete(target, target_path(source, path), pushed, check_blob_bytes=True)
    chart_target = f"{target.host}/{target_path(source, 'charts/mychart')}"
    assert inspect_raw(f"{chart_target}@{sbom.digest}") == sbom.raw
    app_target = f"{target.host}/{target_path(source, 'team/app')}"
    assert inspect_raw(f"{app_target}@{cycle.digest}") == cycle.raw
    listed = json.loads(inspect_raw(f"{app_target}:{cosign_tag(image.digest, '')}"))
    assert [e["digest"] for e in listed["manifests"]] == [cycle.digest]
    again, _ = plan_to(tmp_path, images, "in-again.json", "--source-layout", str(disk))
    assert {c.action for c in again.changes} == {Action.SKIP}
    assert {s.action for c in again.changes for s in c.subchanges} == {Action.SKIP}
