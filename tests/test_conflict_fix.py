"""Conflicts that say the fix (issue 20), against real registries.

The image-syncer's users meet one failure more than any other: upstream re-publishes a tag
(``python:3.14.6-alpine3.23``, ``latest``), the target tag holds the old digest, and the next
sync conflicts. plan asks the source (one HEAD by digest) whether it still serves the digest
the target holds. If it does, the plan gives the entry that makes it a skip: the source as
written, pinned to that digest, the same tag. If not, it says the digest is gone upstream and
gives an entry for the new content under a new tag.

The fix must be right for every way users write an entry (``name:tag``, ``name@digest`` with
``tag:``, ``name:tag@digest``, no tag at all, Docker Hub names with and without ``library/``,
``docker.io/…``, hosts with ports, ``amd64Only``, the list indented or not): the test pastes
each fix into the file exactly where the plan says and plans again.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from imagesync.cli import main
from tests.harness.images import push_artifact, push_cosign_signature, push_image
from tests.harness.skopeo import copy, inspect_digest

pytestmark = pytest.mark.registry


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    assert "Traceback" not in result.output, result.output
    return result.exit_code, result.stdout, result.stderr


def paste_fixes(images: Path, plan: dict) -> None:
    """Put each change's fix in place of the lines it names, as a user would (from the last
    entry up, so that earlier line numbers stay right)."""
    lines = images.read_text(encoding="utf-8").splitlines(keepends=True)
    fixes = [c["fix"]["entry"] for c in plan["changes"] if c.get("fix", {}).get("entry")]
    for fix in sorted(fixes, key=lambda f: -f["first_line"]):
        lines[fix["first_line"] - 1 : fix["last_line"]] = [fix["yaml"]]
    images.write_text("".join(lines), encoding="utf-8")


def by_target(plan: dict) -> dict[str, dict]:
    return {c["target"]: c for c in plan["changes"]}


@pytest.mark.parametrize("indent", ["", "  "], ids=["list-at-column-0", "list-indented"])
def test_every_spelling_gets_the_fix_that_makes_it_a_skip(
    registry_factory, tmp_path: Path, indent: str
) -> None:
    source, target, hub = (
        registry_factory("source"),
        registry_factory("target"),
        registry_factory("hub"),
    )
    src, dst = source.host, target.host
    here = src.replace(":", "-")  # a port's ':' becomes '-' in the target
    prefix = f"{dst}/mirror"
    config = tmp_path / "registries.yaml"
    config.write_text(f"registries:\n  docker.io:\n    mirrors: [{hub.host}]\n", encoding="utf-8")

    # (source registry, its repository, tag, the target path below the prefix, options)
    cases = {
        "name:tag": (source, "team/a", "1.0", f"{here}/team/a:1.0", {}),
        "name@digest + tag": (source, "team/b", "1.0", f"{here}/team/b:1.0", {}),
        "name:tag@digest": (source, "team/c", "1.0", f"{here}/team/c:1.0", {}),
        "no tag": (source, "team/d", "latest", f"{here}/team/d:latest", {}),
        "docker hub short": (hub, "library/busybox", "1.36", "library/busybox:1.36", {}),
        "library/ + tag": (hub, "library/alpine", "3.20", "library/alpine:3.20-v1", {}),
        "docker.io/": (hub, "library/nginx", "1.27", "docker.io/library/nginx:1.27", {}),
        "amd64Only": (
            source,
            "team/h",
            "1.0",
            f"{here}/team/h:1.0",
            {"platforms": [("linux", "amd64")], "index": False},
        ),
    }
    old, new = {}, {}
    for number, (name, (registry, repository, tag, mapped, options)) in enumerate(cases.items()):
        old[name] = push_image(registry, repository, tag, seed=10 + number, **options)
        path, mapped_tag = mapped.rsplit(":", 1)
        push_image(dst, f"mirror/{path}", mapped_tag, seed=10 + number, **options)
        # Upstream re-publishes the tag: the old manifest stays, by digest only.
        new[name] = push_image(registry, repository, tag, seed=50 + number, **options)
    # A target tag whose digest the source never had.
    upstream = push_image(source, "team/gone", "1.0", seed=90)
    lost = push_image(dst, f"mirror/{here}/team/gone", "1.0", seed=91)

    entries = [
        f'- source: "{src}/team/a:1.0"',
        f'- source: "{src}/team/b@{new["name@digest + tag"].digest}"\n  tag: "1.0"',
        f'- source: "{src}/team/c:1.0@{new["name:tag@digest"].digest}"',
        f"- source: {src}/team/d   # no tag: latest",
        '- source: "busybox:1.36"',
        "- source: library/alpine:3.20\n  tag: 3.20-v1",
        "- tag: '1.27'\n  source: docker.io/library/nginx:1.27",
        f'- source: "{src}/team/h:1.0"\n  amd64Only: true',
        f'- source: "{src}/team/gone:1.0"',
    ]
    text = "\n".join(indent + e.replace("\n", "\n" + indent) for e in entries)
    images = tmp_path / "external-images.yaml"
    images.write_text(f"# mirrored images\ntarget: {prefix}\nimages:\n{text}\n", encoding="utf-8")
    common = ["--registries-config", str(config)]

    code, stdout, _ = run("plan", "-i", str(images), "-o", str(tmp_path / "plan.json"), *common)
    assert code == 1, stdout
    plan = json.loads((tmp_path / "plan.json").read_text(encoding="utf-8"))
    changes = by_target(plan)
    assert [c["action"] for c in plan["changes"]] == ["conflict"] * 9, stdout
    for name, (_, _, _, mapped, _) in cases.items():
        change = changes[f"{prefix}/{mapped}"]
        fix = change["fix"]
        assert fix["target_digest_at_source"] is True, name
        assert fix["entry"]["source"].endswith("@" + old[name].digest), name
        assert "The source still serves" in change["reason"]
        assert "  fix: put this in place of " in stdout
    gone = changes[f"{prefix}/{here}/team/gone:1.0"]
    assert gone["target_digest"] == lost.digest
    assert gone["fix"]["target_digest_at_source"] is False
    assert f"{lost.digest} is gone from the source" in gone["reason"]
    assert gone["fix"]["entry"]["tag"] == "1.0-v2"
    # The Markdown shows each fix as a YAML block to copy.
    code, markdown, stderr = run("show", str(tmp_path / "plan.json"), "--format", "markdown")
    assert code == 1, stderr  # as plan: the plan holds conflicts
    assert markdown.count("```yaml") == 9
    assert "The target's digest is gone from the source" in markdown

    paste_fixes(images, plan)
    code, stdout, _ = run("plan", "-i", str(images), "-o", str(tmp_path / "fixed.json"), *common)
    assert code == 0, images.read_text() + stdout
    fixed = json.loads((tmp_path / "fixed.json").read_text(encoding="utf-8"))
    actions = {c["target"]: c["action"] for c in fixed["changes"]}
    retagged = f"{prefix}/{here}/team/gone:1.0-v2"
    assert actions == {
        **{f"{prefix}/{mapped}": "skip" for (_, _, _, mapped, _) in cases.values()},
        retagged: "create",
    }, images.read_text()
    # Applying the fixed file copies the re-published content under the new tag, and writes
    # over nothing.
    code, stdout, _ = run("apply", "-i", str(images), *common)
    assert code == 0, stdout
    assert inspect_digest(retagged) == upstream.digest
    assert inspect_digest(f"{prefix}/{here}/team/gone:1.0") == lost.digest
    assert inspect_digest(f"{prefix}/{here}/team/a:1.0") == old["name:tag"].digest


def test_a_signature_conflict_says_whether_the_source_still_has_the_targets(
    source_registry, target_registry, tmp_path: Path
) -> None:
    src, dst = source_registry.host, target_registry.host
    here = src.replace(":", "-")
    kept = push_image(src, "team/kept", "1.0", seed=1)
    lost = push_image(src, "team/lost", "1.0", seed=2)
    images = tmp_path / "external-images.yaml"
    images.write_text(
        f'target: {dst}/mirror\nimages:\n- source: "{src}/team/kept:1.0"\n', encoding="utf-8"
    )
    # team/kept: mirrored with its signature; then the source signs it again (cosign adds a
    # signature: the .sig tag moves on, the first one stays by digest).
    first = push_cosign_signature(src, "team/kept", kept.digest, seed=1)
    assert run("apply", "-i", str(images))[0] == 0
    push_cosign_signature(src, "team/kept", kept.digest, seed=2)
    # team/lost: the target's signature was never the source's.
    push_image(dst, f"mirror/{here}/team/lost", "1.0", seed=2)
    push_cosign_signature(src, "team/lost", lost.digest, seed=3)
    other = push_cosign_signature(dst, f"mirror/{here}/team/lost", lost.digest, seed=4)
    with images.open("a", encoding="utf-8") as more:
        more.write(f'- source: "{src}/team/lost:1.0"\n')

    code, stdout, _ = run("plan", "-i", str(images), "--format", "json")
    assert code == 1, stdout
    kept_change, lost_change = json.loads(stdout)["changes"]
    assert kept_change["action"] == lost_change["action"] == "skip"
    (kept_sig,) = kept_change["subchanges"]
    (lost_sig,) = lost_change["subchanges"]
    assert kept_sig["action"] == lost_sig["action"] == "conflict"
    assert kept_sig["target_digest"] == first.digest
    assert kept_sig["fix"] == {"target_digest_at_source": True}
    assert f"The source still serves {first.digest}" in kept_sig["reason"]
    # No entry of the file names a signature: the plan says so, and gives none to paste.
    assert "No entry of the images file names a signature" in kept_sig["reason"]
    assert lost_sig["fix"] == {"target_digest_at_source": False}
    assert f"{other.digest} is not in the source" in lost_sig["reason"]
    code, markdown, _ = run("plan", "-i", str(images), "--format", "markdown")
    assert "2 signatures and referrers not copied" in markdown
    assert "The source still serves" in markdown


def test_every_conflict_kind_gets_a_fix_that_makes_it_a_skip_or_says_there_is_none(
    source_registry, target_registry, tmp_path: Path
) -> None:
    """Issue 32: a fix is shown only when the entry it writes plans to a skip. For each kind
    of conflict, pasting the fix and planning again gives a skip; where no entry can keep the
    tag (a single arm64 image under it), the plan says so and names a new tag."""
    src, dst = source_registry.host, target_registry.host
    here = src.replace(":", "-")
    prefix = f"{dst}/mirror"
    # The source's multi-platform tags, whose single-platform children podman pulled and
    # pushed into the mirror under the tag (skopeo copies a child by digest, as it is).
    children = {}
    for name, platform in (("amd", "linux/amd64"), ("arm", "linux/arm64")):
        index = push_image(src, f"team/{name}", "1.0", seed=3)
        children[name] = index.child_by_platform[platform]
        copy(f"{src}/team/{name}@{children[name]}", f"{prefix}/{here}/team/{name}:1.0")
        assert inspect_digest(f"{prefix}/{here}/team/{name}:1.0") == children[name]
    # A moved tag: upstream re-published it (the old index stays, by digest).
    old = push_image(src, "team/moved", "1.0", seed=4)
    push_image(dst, f"mirror/{here}/team/moved", "1.0", seed=4)
    push_image(src, "team/moved", "1.0", seed=5)
    # An artifact re-published under its tag.
    policy = push_artifact(src, "team/policy", "1.0", seed=6)
    push_artifact(dst, f"mirror/{here}/team/policy", "1.0", seed=6)
    push_artifact(src, "team/policy", "1.0", seed=7)
    names = ("amd", "arm", "moved", "policy")
    images = tmp_path / "external-images.yaml"
    listed = "".join(f'- source: "{src}/team/{name}:1.0"\n' for name in names)
    images.write_text(f"target: {prefix}\nimages:\n{listed}", encoding="utf-8")

    code, stdout, _ = run("plan", "-i", str(images), "--format", "json")
    assert code == 1, stdout
    plan = json.loads(stdout)
    changes = {c["target"].rsplit("/", 1)[1]: c for c in plan["changes"]}
    assert [c["action"] for c in plan["changes"]] == ["conflict"] * 4, stdout
    amd = changes["amd:1.0"]["fix"]["entry"]
    assert amd["source"] == f"{src}/team/amd@{children['amd']}" and amd["amd64_only"], amd
    assert changes["moved:1.0"]["fix"]["entry"]["source"].endswith("@" + old.digest)
    policy_fix = changes["policy:1.0"]["fix"]["entry"]
    assert policy_fix["source"].endswith("@" + policy.digest) and not policy_fix["amd64_only"]
    arm = changes["arm:1.0"]
    assert arm.get("fix") == {"target_digest_at_source": True}, arm
    assert "no entry of the file can keep this tag" in arm["reason"]
    assert "linux/arm64" in arm["reason"] and 'tag "1.0-v2"' in arm["reason"]

    code, markdown, _ = run("plan", "-i", str(images), "--format", "markdown")
    assert markdown.count("```yaml") == 3, markdown
    assert "no entry of the file can keep this tag" in markdown

    paste_fixes(images, plan)
    code, stdout, _ = run("plan", "-i", str(images), "--format", "json")
    assert code == 1, stdout  # the arm64 image's conflict stays: no entry can keep it
    again = {c["target"].rsplit("/", 1)[1]: c["action"] for c in json.loads(stdout)["changes"]}
    assert again == {
        "amd:1.0": "skip",
        "arm:1.0": "conflict",
        "moved:1.0": "skip",
        "policy:1.0": "skip",
    }, images.read_text()
