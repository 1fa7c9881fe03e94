"""Signatures, attestations, SBOMs and referrers travel with their images (design.md §3.4).

Against real registries (the distribution registry 2.8, which has no referrers API: referrers
are found and written through the ``sha256-<hex>`` tag schema), checked with skopeo.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from imagesync.cli import main
from imagesync.plan.document import Action, Plan, SubChange
from tests.harness.images import push_cosign_signature, push_image, push_referrer
from tests.harness.registry import RegistryServer
from tests.harness.skopeo import inspect_digest as raw_digest
from tests.harness.skopeo import inspect_raw

pytestmark = pytest.mark.registry

COSIGN_ARTIFACT_SIG = "application/vnd.dev.cosign.artifact.sig.v1+json"
SPDX = "application/spdx+json"
IN_TOTO = "application/vnd.in-toto+json"


def images_file(tmp_path: Path, target: str, entries: str) -> Path:
    path = tmp_path / "external-images.yaml"
    path.write_text(f"target: {target}\nimages:\n{entries}", encoding="utf-8")
    return path


def mirror_path(source: RegistryServer, path: str) -> str:
    """The repository path an image of ``source`` gets under the target prefix ``mirror``."""
    return f"mirror/{source.host.replace(':', '-')}/{path}"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def plan_to(tmp_path: Path, images: Path, *flags: str, name: str = "plan.json") -> Plan:
    out = tmp_path / name
    code, stdout, stderr = run("plan", "-i", str(images), "-o", str(out), *flags)
    assert code in (0, 1), stdout + stderr
    return Plan.read(out)


def apply(plan_file: Path) -> tuple[int, dict[str, object]]:
    code, stdout, stderr = run("apply", str(plan_file), "--format", "json")
    assert code in (0, 1), stdout + stderr
    return code, json.loads(stdout)


def tag_of(digest: str, suffix: str = "") -> str:
    return digest.replace(":", "-") + suffix


def index_digests(reference: str) -> list[str]:
    """The digests a tag-schema index lists, in order, read with skopeo."""
    document = json.loads(inspect_raw(reference))
    assert document["mediaType"] == "application/vnd.oci.image.index.v1+json"
    return [entry["digest"] for entry in document["manifests"]]


def by_target(subchanges: tuple[SubChange, ...]) -> dict[str, SubChange]:
    return {s.target: s for s in subchanges}


def test_apply_copies_every_signature_and_referrer(
    source_registry, target_registry, tmp_path
) -> None:
    src, dst = source_registry.host, target_registry.host
    image = push_image(src, "team/app", "1.0")
    child = image.children[1]
    signature = push_cosign_signature(src, "team/app", image.digest)
    attestation = push_cosign_signature(src, "team/app", image.digest, suffix=".att", seed=2)
    sbom = push_cosign_signature(src, "team/app", image.digest, suffix=".sbom", seed=3)
    child_signature = push_cosign_signature(src, "team/app", child, seed=4)
    spdx = push_referrer(src, "team/app", image, artifact_type=SPDX, seed=5)
    provenance = push_referrer(src, "team/app", image, artifact_type=IN_TOTO, seed=6)
    # A referrer of a referrer: a signature whose subject is the SBOM.
    spdx_signature = push_referrer(src, "team/app", spdx, artifact_type=COSIGN_ARTIFACT_SIG)
    child_referrer = push_referrer(src, "team/app", child, artifact_type=SPDX, seed=7)
    images = images_file(tmp_path, f"{dst}/mirror", f'- source: "{src}/team/app:1.0"\n')

    plan = plan_to(tmp_path, images)
    (change,) = plan.changes
    assert change.action is Action.CREATE
    target = f"{dst}/{mirror_path(source_registry, 'team/app')}"
    subs = by_target(change.subchanges)
    cosign = {
        f"{target}:{signature.tag}": ("signature", signature.digest, image.digest),
        f"{target}:{attestation.tag}": ("attestation", attestation.digest, image.digest),
        f"{target}:{sbom.tag}": ("sbom", sbom.digest, image.digest),
        f"{target}:{child_signature.tag}": ("signature", child_signature.digest, child),
    }
    referrers = {
        f"{target}@{spdx.digest}": (image.digest, SPDX),
        f"{target}@{provenance.digest}": (image.digest, IN_TOTO),
        f"{target}@{spdx_signature.digest}": (spdx.digest, COSIGN_ARTIFACT_SIG),
        f"{target}@{child_referrer.digest}": (child, SPDX),
    }
    indexes = {f"{target}:{tag_of(d)}" for d in (image.digest, spdx.digest, child)}
    assert set(subs) == set(cosign) | set(referrers) | indexes
    assert {s.action for s in change.subchanges} == {Action.CREATE}
    for name, (kind, digest, subject) in cosign.items():
        assert (subs[name].kind, subs[name].digest, subs[name].subject) == (kind, digest, subject)
    for name, (subject, artifact_type) in referrers.items():
        assert (subs[name].kind, subs[name].subject) == ("referrer", subject)
        assert subs[name].artifact_type == artifact_type
    # Referrers come before the index that lists them: apply writes them first.
    order = [s.target for s in change.subchanges]
    for name in referrers:
        subject = referrers[name][0]
        assert order.index(name) < order.index(f"{target}:{tag_of(subject)}")

    code, report = apply(tmp_path / "plan.json")
    assert code == 0, report
    (result,) = report["images"]  # type: ignore[misc]
    assert result["outcome"] == "created"
    assert {s["outcome"] for s in result["signatures"]} == {"created"}
    for name, (_, digest, _) in cosign.items():
        assert raw_digest(name) == digest
    for pushed in (signature, attestation, sbom, child_signature):
        assert inspect_raw(f"{target}:{pushed.tag}") == pushed.raw
    for pushed in (spdx, provenance, spdx_signature, child_referrer):
        assert inspect_raw(f"{target}@{pushed.digest}") == pushed.raw
    assert sorted(index_digests(f"{target}:{tag_of(image.digest)}")) == sorted(
        [spdx.digest, provenance.digest]
    )
    assert index_digests(f"{target}:{tag_of(spdx.digest)}") == [spdx_signature.digest]
    assert index_digests(f"{target}:{tag_of(child)}") == [child_referrer.digest]
    # Entries are described as the referrers API would: artifactType and annotations.
    entries = json.loads(inspect_raw(f"{target}:{tag_of(image.digest)}"))["manifests"]
    described = {e["digest"]: e for e in entries}
    assert described[spdx.digest]["artifactType"] == SPDX
    assert described[spdx.digest]["size"] == spdx.size
    assert "org.opencontainers.image.created" in described[spdx.digest]["annotations"]

    # Everything is in place: a new plan has nothing to do, also for the sub-changes.
    again = plan_to(tmp_path, images, name="again.json")
    assert again.changes[0].action is Action.SKIP
    assert {s.action for s in again.changes[0].subchanges} == {Action.SKIP}
    assert len(again.changes[0].subchanges) == len(change.subchanges)
    assert not again.has_changes


def test_skipped_image_gets_its_missing_signature(
    source_registry, target_registry, tmp_path
) -> None:
    src, dst = source_registry.host, target_registry.host
    image = push_image(src, "team/app", "1.0", seed=11)
    push_image(dst, mirror_path(source_registry, "team/app"), "1.0", seed=11)
    signature = push_cosign_signature(src, "team/app", image.digest)
    images = images_file(tmp_path, f"{dst}/mirror", f'- source: "{src}/team/app:1.0"\n')

    plan = plan_to(tmp_path, images)
    (change,) = plan.changes
    target = f"{dst}/{mirror_path(source_registry, 'team/app')}"
    assert change.action is Action.SKIP
    assert change.target_digest == image.digest
    assert [(s.kind, s.action, s.target) for s in change.subchanges] == [
        ("signature", Action.CREATE, f"{target}:{signature.tag}")
    ]
    assert plan.has_changes
    code, stdout, _ = run("plan", "-i", str(images), "--detailed-exitcode")
    assert code == 2, stdout

    code, report = apply(tmp_path / "plan.json")
    assert code == 0, report
    (result,) = report["images"]  # type: ignore[misc]
    assert result["outcome"] == "skipped"
    assert [(s["kind"], s["outcome"]) for s in result["signatures"]] == [("signature", "created")]
    assert raw_digest(f"{target}:{signature.tag}") == signature.digest
    assert raw_digest(f"{target}:1.0") == image.digest


def test_conflicting_signature_is_reported_and_left_alone(
    source_registry, target_registry, tmp_path
) -> None:
    src, dst = source_registry.host, target_registry.host
    image = push_image(src, "team/app", "1.0", seed=21)
    signature = push_cosign_signature(src, "team/app", image.digest, seed=1)
    attestation = push_cosign_signature(src, "team/app", image.digest, suffix=".att")
    path = mirror_path(source_registry, "team/app")
    theirs = push_cosign_signature(dst, path, image.digest, seed=99)
    assert theirs.digest != signature.digest
    images = images_file(tmp_path, f"{dst}/mirror", f'- source: "{src}/team/app:1.0"\n')

    out = tmp_path / "plan.json"
    code, stdout, _ = run("plan", "-i", str(images), "-o", str(out))
    assert code == 1, stdout
    (change,) = Plan.read(out).changes
    target = f"{dst}/{path}"
    subs = by_target(change.subchanges)
    assert change.action is Action.CREATE
    conflict = subs[f"{target}:{signature.tag}"]
    assert conflict.action is Action.CONFLICT
    assert conflict.target_digest == theirs.digest
    assert theirs.digest in conflict.reason and signature.digest in conflict.reason
    assert subs[f"{target}:{attestation.tag}"].action is Action.CREATE
    assert "! signature" in stdout and theirs.digest in stdout
    assert "1 conflict" in stdout

    code, report = apply(out)
    assert code == 1
    (result,) = report["images"]  # type: ignore[misc]
    assert result["outcome"] == "created"
    outcomes = {s["target"]: s["outcome"] for s in result["signatures"]}
    assert outcomes == {
        f"{target}:{signature.tag}": "conflict",
        f"{target}:{attestation.tag}": "created",
    }
    assert raw_digest(f"{target}:{signature.tag}") == theirs.digest
    assert raw_digest(f"{target}:{attestation.tag}") == attestation.digest
    assert raw_digest(f"{target}:1.0") == image.digest


def test_signature_that_appears_after_plan_is_not_overwritten(
    source_registry, target_registry, tmp_path
) -> None:
    src, dst = source_registry.host, target_registry.host
    image = push_image(src, "team/app", "1.0", seed=22)
    push_cosign_signature(src, "team/app", image.digest, seed=1)
    images = images_file(tmp_path, f"{dst}/mirror", f'- source: "{src}/team/app:1.0"\n')
    plan = plan_to(tmp_path, images)
    assert [s.action for s in plan.changes[0].subchanges] == [Action.CREATE]
    path = mirror_path(source_registry, "team/app")
    theirs = push_cosign_signature(dst, path, image.digest, seed=98)

    code, report = apply(tmp_path / "plan.json")
    assert code == 1
    (sub,) = report["images"][0]["signatures"]  # type: ignore[index]
    assert sub["outcome"] == "conflict"
    assert raw_digest(f"{dst}/{path}:{theirs.tag}") == theirs.digest


def test_existing_tag_schema_index_keeps_its_entries(
    source_registry, target_registry, tmp_path
) -> None:
    src, dst = source_registry.host, target_registry.host
    path = mirror_path(source_registry, "team/app")
    target = f"{dst}/{path}"
    image = push_image(src, "team/app", "1.0", seed=31)
    in_target = push_image(dst, path, "1.0", seed=31)
    assert in_target.digest == image.digest
    # Someone else attached their own artifact in the target; the source knows nothing of it.
    unrelated = push_referrer(dst, path, in_target, artifact_type=IN_TOTO, seed=77)
    before = json.loads(inspect_raw(f"{target}:{tag_of(image.digest)}"))["manifests"]
    assert [e["digest"] for e in before] == [unrelated.digest]
    ours = push_referrer(src, "team/app", image, artifact_type=SPDX, seed=32)
    ours_too = push_referrer(src, "team/app", image, artifact_type=COSIGN_ARTIFACT_SIG, seed=33)
    images = images_file(tmp_path, f"{dst}/mirror", f'- source: "{src}/team/app:1.0"\n')

    plan = plan_to(tmp_path, images)
    (change,) = plan.changes
    assert change.action is Action.SKIP
    index_change = by_target(change.subchanges)[f"{target}:{tag_of(image.digest)}"]
    assert (index_change.kind, index_change.action) == ("referrers-index", Action.CREATE)
    assert "keeping existing entries" in index_change.reason

    code, report = apply(tmp_path / "plan.json")
    assert code == 0, report
    after = json.loads(inspect_raw(f"{target}:{tag_of(image.digest)}"))["manifests"]
    assert after[0] == before[0]  # kept exactly as it was, first
    assert sorted(e["digest"] for e in after[1:]) == sorted([ours.digest, ours_too.digest])
    assert raw_digest(f"{target}@{ours.digest}") == ours.digest

    # The next plan (and apply) sees a complete index and leaves it alone.
    again = plan_to(tmp_path, images, name="again.json")
    assert not again.has_changes
    written = inspect_raw(f"{target}:{tag_of(image.digest)}")
    code, _ = apply(tmp_path / "plan.json")  # the old plan again: nothing more to add
    assert code == 0
    assert inspect_raw(f"{target}:{tag_of(image.digest)}") == written


def test_tag_schema_tag_that_is_not_an_index_is_a_conflict(
    source_registry, target_registry, tmp_path
) -> None:
    src, dst = source_registry.host, target_registry.host
    path = mirror_path(source_registry, "team/app")
    image = push_image(src, "team/app", "1.0", seed=35)
    push_referrer(src, "team/app", image, seed=36)
    squatter = push_image(dst, path, tag_of(image.digest), index=False, seed=37)
    images = images_file(tmp_path, f"{dst}/mirror", f'- source: "{src}/team/app:1.0"\n')

    plan = plan_to(tmp_path, images)
    index_change = by_target(plan.changes[0].subchanges)[f"{dst}/{path}:{tag_of(image.digest)}"]
    assert index_change.action is Action.CONFLICT
    code, report = apply(tmp_path / "plan.json")
    assert code == 1
    assert raw_digest(f"{dst}/{path}:{tag_of(image.digest)}") == squatter.digest
    assert report["images"][0]["outcome"] == "created"  # type: ignore[index]


def test_no_signatures_leaves_them_out(source_registry, target_registry, tmp_path) -> None:
    src, dst = source_registry.host, target_registry.host
    image = push_image(src, "team/app", "1.0", seed=41)
    signature = push_cosign_signature(src, "team/app", image.digest)
    push_referrer(src, "team/app", image, seed=42)
    images = images_file(tmp_path, f"{dst}/mirror", f'- source: "{src}/team/app:1.0"\n')

    plan = plan_to(tmp_path, images, "--no-signatures")
    assert plan.changes[0].action is Action.CREATE
    assert plan.changes[0].subchanges == ()
    code, report = apply(tmp_path / "plan.json")
    assert code == 0
    assert report["images"][0]["signatures"] == []  # type: ignore[index]
    target = f"{dst}/{mirror_path(source_registry, 'team/app')}"
    assert raw_digest(f"{target}:1.0") == image.digest
    code, stdout, stderr = run("plan", "-i", str(images), "--format", "json")
    assert code == 0, stderr
    listed = json.loads(stdout)["changes"][0]["subchanges"]
    assert {s["target"] for s in listed} >= {f"{target}:{signature.tag}"}
    # Nothing attached was written: skopeo cannot find the signature tag.
    with pytest.raises(AssertionError):
        inspect_raw(f"{target}:{signature.tag}")


def test_require_signatures_makes_unsigned_images_errors(
    source_registry, target_registry, tmp_path
) -> None:
    src, dst = source_registry.host, target_registry.host
    signed = push_image(src, "team/signed", "1.0", seed=51)
    push_cosign_signature(src, "team/signed", signed.digest)
    unsigned = push_image(src, "team/unsigned", "1.0", seed=52)
    # Attached, but no signature: an SBOM (tag and referrer) and a signature of a child only.
    push_cosign_signature(src, "team/unsigned", unsigned.digest, suffix=".sbom")
    push_cosign_signature(src, "team/unsigned", unsigned.children[0])
    push_referrer(src, "team/unsigned", unsigned, seed=53)
    # Signed by a Notary Project signature, a referrer (here in the tag schema).
    notation = push_image(src, "team/notation", "1.0", seed=54)
    push_referrer(
        src, "team/notation", notation, artifact_type="application/vnd.cncf.notary.signature"
    )
    images = images_file(
        tmp_path,
        f"{dst}/mirror",
        f'- source: "{src}/team/signed:1.0"\n- source: "{src}/team/unsigned:1.0"\n'
        f'- source: "{src}/team/notation:1.0"\n',
    )

    out = tmp_path / "plan.json"
    code, stdout, _ = run("plan", "-i", str(images), "-o", str(out), "--require-signatures")
    assert code == 1
    signed_change, unsigned_change, notation_change = Plan.read(out).changes
    assert signed_change.action is Action.CREATE
    assert notation_change.action is Action.CREATE
    assert unsigned_change.action is Action.ERROR
    assert "no signature" in unsigned_change.reason
    assert "--require-signatures" in unsigned_change.reason
    assert "x error" in stdout and "no signature" in stdout
    # Without the flag the same image plans fine.
    assert plan_to(tmp_path, images, name="lax.json").changes[1].action is Action.CREATE

    code, report = apply(out)
    assert code == 1
    outcomes = [i["outcome"] for i in report["images"]]  # type: ignore[attr-defined]
    assert outcomes == ["created", "failed", "created"]
    target = f"{dst}/{mirror_path(source_registry, 'team/unsigned')}"
    with pytest.raises(AssertionError):
        inspect_raw(f"{target}:1.0")


def test_every_format_shows_the_subchanges(source_registry, target_registry, tmp_path) -> None:
    src, dst = source_registry.host, target_registry.host
    path = mirror_path(source_registry, "team/app")
    target = f"{dst}/{path}"
    below = path.removeprefix("mirror/")  # the Markdown shows targets below the prefix
    image = push_image(src, "team/app", "1.0", seed=61)
    signature = push_cosign_signature(src, "team/app", image.digest)
    attestation = push_cosign_signature(src, "team/app", image.digest, suffix=".att")
    sbom = push_referrer(src, "team/app", image, seed=62)
    theirs = push_cosign_signature(dst, path, image.digest, suffix=".att", seed=97)
    images = images_file(tmp_path, f"{dst}/mirror", f'- source: "{src}/team/app:1.0"\n')
    out = tmp_path / "plan.json"
    code, text, _ = run("plan", "-i", str(images), "-o", str(out))
    assert code == 1

    assert f"+ signature {target}:{signature.tag}" in text
    assert f"! attestation {target}:{attestation.tag}" in text and theirs.digest in text
    assert f"+ referrer {target}@{sbom.digest}" in text
    assert f"+ referrers-index {target}:{tag_of(image.digest)}" in text
    assert "signatures: 3 to create, 0 to skip, 1 conflict." in text

    for fmt in ("text", "json", "markdown"):
        code, shown, _ = run("show", str(out), "--format", fmt)
        assert code == 1  # as plan: the plan holds a conflict
        if fmt == "text":
            assert shown == text
        elif fmt == "json":
            listed = json.loads(shown)["changes"][0]["subchanges"]
            assert [(s["kind"], s["action"]) for s in listed] == [
                ("signature", "create"),
                ("attestation", "conflict"),
                ("referrer", "create"),
                ("referrers-index", "create"),
            ]
            assert listed[1]["target_digest"] == theirs.digest
            assert listed[2]["artifact_type"] == SPDX
            assert listed[2]["subject"] == image.digest
        else:
            # Counted in the image's row; the conflict a block of its own, below the prefix.
            row = next(line for line in shown.splitlines() if f"| `{below}:1.0` |" in line)
            assert row.endswith("| +3 !1 |")
            assert f"**! attestation `{below}:{attestation.tag}`** of `{below}:1.0`" in shown
            assert f"The target holds `{theirs.digest[:19]}…`" in shown
            assert "signatures: 3 to create, 0 to skip, 1 conflict" in shown

    code, stdout, _ = run("apply", str(out), "--format", "markdown")
    assert code == 1
    row = next(line for line in stdout.splitlines() if line.startswith(f"| `{below}:1.0` |"))
    assert row.endswith("| +3 !1 |")
    assert f"**! attestation `{below}:{attestation.tag}`** of `{below}:1.0`" in stdout


def test_index_lists_only_referrers_that_reached_the_target(
    source_registry, target_registry, tmp_path
) -> None:
    src, dst = source_registry.host, target_registry.host
    image = push_image(src, "team/app", "1.0", seed=71)
    good = push_referrer(src, "team/app", image, artifact_type=SPDX, seed=72)
    broken = push_referrer(src, "team/app", image, artifact_type=IN_TOTO, seed=73)
    images = images_file(tmp_path, f"{dst}/mirror", f'- source: "{src}/team/app:1.0"\n')
    plan = plan_to(tmp_path, images)
    assert {s.action for s in plan.changes[0].subchanges} == {Action.CREATE}
    # Between plan and apply, one referrer loses its content at the source.
    content = broken.blobs[1][0]
    deleted = requests.delete(f"http://{src}/v2/team/app/blobs/{content}", timeout=30)
    assert deleted.status_code == 202, deleted.text

    code, report = apply(tmp_path / "plan.json")
    assert code == 1
    outcomes = {s["digest"]: s["outcome"] for s in report["images"][0]["signatures"]}  # type: ignore[index]
    assert outcomes == {good.digest: "created", broken.digest: "failed", image.digest: "created"}
    target = f"{dst}/{mirror_path(source_registry, 'team/app')}"
    assert index_digests(f"{target}:{tag_of(image.digest)}") == [good.digest]


def test_require_signatures_with_no_signatures_is_a_usage_error(tmp_path) -> None:
    images = images_file(tmp_path, "127.0.0.1:1/mirror", '- source: "127.0.0.1:1/team/app:1.0"\n')
    code, _, stderr = run("plan", "-i", str(images), "--no-signatures", "--require-signatures")
    assert code == 2
    assert "--require-signatures needs the signatures that --no-signatures leaves out" in stderr
