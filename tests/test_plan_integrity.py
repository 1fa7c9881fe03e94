"""Plan integrity (design.md §14, issue 14): a plan's checksum is public, anyone can recompute it.
What a plan asks apply to write must follow from the plan's own images, and with
``IMAGESYNC_PLAN_KEY`` a plan is applied only when imagesync made it with that key.

Each attack of the issue is reproduced exactly against real registries (the distribution
registry 2.8, which has no referrers API: referrers travel through the ``sha256-<hex>`` tag
schema), with the target's storage listing compared before and after: a refused plan writes
nothing, exits 1, prints no traceback.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imagesync.cli import main
from imagesync.content.referrers import attached_source, attached_target
from imagesync.plan.document import canonical
from imagesync.plan.key import PLAN_KEY_ENV, PlanKey
from imagesync.reference import parse_reference
from tests.harness.faultproxy import FaultProxy
from tests.harness.forgery import reseal
from tests.harness.images import push_cosign_signature, push_image, push_referrer
from tests.harness.registry import RegistryServer

pytestmark = pytest.mark.registry

SPDX = "application/spdx+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
KEY = "k3y-for-tests-only-0123456789abcdef"


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{result.exception!r}\n{result.output}"
    )
    return result.exit_code, result.stdout, result.stderr


def write_images(tmp_path: Path, target: str, entries: str) -> Path:
    path = tmp_path / "external-images.yaml"
    path.write_text(f"target: {target}\nimages:\n{entries}", encoding="utf-8")
    return path


def plan_document(tmp_path: Path, images: Path, *, env: dict[str, str] | None = None) -> Path:
    path = tmp_path / "plan.json"
    code, stdout, stderr = run("plan", "-i", str(images), "-o", str(path), env=env)
    assert code == 0, stdout + stderr
    return path


def forge(path: Path, document: dict[str, Any]) -> None:
    """Write an edited plan as a forger would: resealed, passing the document's own checks."""
    path.write_text(json.dumps(reseal(document)), encoding="utf-8")


def mirrored(source: RegistryServer, path: str) -> str:
    return f"mirror/{source.host.replace(':', '-')}/{path}"


def sub_change(
    kind: str, source: str, target: str, digest: str, subject: str, action: str
) -> dict[str, Any]:
    return {
        "kind": kind,
        "source": source,
        "target": target,
        "digest": digest,
        "media_type": OCI_INDEX if kind == "referrers-index" else OCI_MANIFEST,
        "action": action,
        "reason": "forged",
        "target_digest": None,
        "artifact_type": SPDX if kind == "referrer" else None,
        "subject": subject,
        "size": 0,
    }


def assert_refused(
    code: int, stdout: str, stderr: str, before: frozenset[str], target: RegistryServer
) -> None:
    assert code == 1, stdout + stderr
    assert "Traceback" not in stdout + stderr
    assert target.listing() == before, "the target's storage changed"


# -- the referrers-index sub-change aimed at the image's own tag -------------------------------


@pytest.mark.parametrize("with_images_file", [True, False], ids=["with -i", "without -i"])
def test_a_referrers_index_aimed_at_the_images_own_tag_is_refused(
    source_registry: RegistryServer,
    target_registry: RegistryServer,
    tmp_path: Path,
    with_images_file: bool,
) -> None:
    """The attack: a ``referrers-index`` sub-change whose target is the image's own tag (an OCI
    index), listing a ``referrer`` sub-change marked ``skip`` whose digest is another manifest
    of the target repository. Before the fix apply merged that manifest into the image's index,
    rewrote the tag, reported skip and exited 0."""
    src, dst = source_registry.host, target_registry.host
    one = push_image(src, "team/app", "1.0", seed=1)
    two = push_image(src, "team/app", "2.0", seed=2)
    images = write_images(
        tmp_path,
        f"{dst}/mirror",
        f'- source: "{src}/team/app:1.0"\n- source: "{src}/team/app:2.0"\n',
    )
    path = plan_document(tmp_path, images)
    assert run("apply", str(path))[0] == 0
    path = plan_document(tmp_path, images)  # everything is a skip now
    document = json.loads(path.read_text())
    change = document["changes"][0]
    assert change["action"] == "skip"
    repository = f"{dst}/{mirrored(source_registry, 'team/app')}"
    change["subchanges"] += [
        sub_change(
            "referrer",
            f"{src}/team/app@{two.digest}",
            f"{repository}@{two.digest}",
            two.digest,
            one.digest,
            "skip",
        ),
        sub_change(
            "referrers-index",
            f"{repository}:1.0",
            f"{repository}:1.0",
            one.digest,
            one.digest,
            "create",
        ),
    ]
    forge(path, document)
    before = target_registry.listing()

    extra = ["-i", str(images)] if with_images_file else []
    code, stdout, stderr = run("apply", str(path), *extra)

    assert_refused(code, stdout, stderr, before, target_registry)
    assert "re-run plan" in stderr
    assert f"sha256-{one.digest.split(':')[1]}" in stderr  # the one name it may write


def test_a_tag_named_like_a_referrers_index_is_not_rewritten(
    source_registry: RegistryServer, target_registry: RegistryServer, tmp_path: Path
) -> None:
    """No forgery needed: an entry whose target tag is ``sha256-<hex>`` of its own digest makes
    the plan's referrers index and the image share one tag. The index there is the image (its
    entries are platform manifests, not referrers of the digest): it is never written over."""
    src, dst = source_registry.host, target_registry.host
    image = push_image(src, "team/app", "1.0")
    push_referrer(src, "team/app", image, artifact_type=SPDX)
    tag = image.digest.replace(":", "-")
    images = write_images(
        tmp_path, f"{dst}/mirror", f'- source: "{src}/team/app@{image.digest}"\n  tag: "{tag}"\n'
    )
    path = plan_document(tmp_path, images)
    code, stdout, stderr = run("apply", str(path), "--format", "json")
    assert code == 1, stdout + stderr
    (result,) = json.loads(stdout)["images"]
    assert result["outcome"] == "created"
    (index,) = [s for s in result["signatures"] if s["kind"] == "referrers-index"]
    assert index["outcome"] == "conflict"
    assert "not a referrers index" in index["message"]
    served = target_registry.session().get(
        f"{target_registry.url}/v2/{mirrored(source_registry, 'team/app')}/manifests/{tag}",
        headers={"Accept": OCI_INDEX},
        timeout=10,
    )
    assert served.headers["Docker-Content-Digest"] == image.digest


# -- a signature sub-change that writes a tag the images file never names ----------------------


def test_a_signature_written_to_another_tag_is_refused(
    source_registry: RegistryServer, target_registry: RegistryServer, tmp_path: Path
) -> None:
    src, dst = source_registry.host, target_registry.host
    image = push_image(src, "team/app", "1.0")
    signature = push_cosign_signature(src, "team/app", image.digest)
    images = write_images(tmp_path, f"{dst}/mirror", f'- source: "{src}/team/app:1.0"\n')
    path = plan_document(tmp_path, images)
    document = json.loads(path.read_text())
    (planned,) = [s for s in document["changes"][0]["subchanges"] if s["kind"] == "signature"]
    assert planned["digest"] == signature.digest
    planned["target"] = planned["target"].rsplit(":", 1)[0] + ":evil"
    forge(path, document)
    before = target_registry.listing()

    code, stdout, stderr = run("apply", str(path), "-i", str(images))

    assert_refused(code, stdout, stderr, before, target_registry)
    assert "re-run plan" in stderr and ":evil" in stderr


def test_a_signature_whose_digest_is_not_the_sources_signature_fails_before_its_write(
    source_registry: RegistryServer, target_registry: RegistryServer, tmp_path: Path
) -> None:
    """The tag name is right, the digest is another manifest of the source repository: the
    source's ``.sig`` tag must hold that digest, or nothing is written under the tag."""
    src, dst = source_registry.host, target_registry.host
    image = push_image(src, "team/app", "1.0")
    push_cosign_signature(src, "team/app", image.digest)
    other = push_image(src, "team/app", "2.0", seed=2, index=False)
    images = write_images(tmp_path, f"{dst}/mirror", f'- source: "{src}/team/app:1.0"\n')
    path = plan_document(tmp_path, images)
    document = json.loads(path.read_text())
    (planned,) = [s for s in document["changes"][0]["subchanges"] if s["kind"] == "signature"]
    planned["digest"] = other.digest
    planned["source"] = planned["source"].rsplit("@", 1)[0] + f"@{other.digest}"
    forge(path, document)

    code, stdout, stderr = run("apply", str(path), "-i", str(images), "--format", "json")

    assert code == 1, stdout + stderr
    (result,) = json.loads(stdout)["images"]
    (signed,) = [s for s in result["signatures"] if s["kind"] == "signature"]
    assert signed["outcome"] == "failed"
    assert other.digest in signed["message"] and "re-run plan" in signed["message"]
    target_tags = target_registry.session().get(
        f"{target_registry.url}/v2/{mirrored(source_registry, 'team/app')}/tags/list", timeout=10
    )
    tag = planned["target"].rsplit(":", 1)[1]
    assert tag not in target_tags.json()["tags"]


# -- the digest of a tag-sourced entry swapped for another manifest of the repository ----------


def swapped_plan(
    source_registry: RegistryServer, target: str, tmp_path: Path, env: dict[str, str] | None
) -> tuple[Path, Path, str]:
    src = source_registry.host
    push_image(src, "team/app", "1.0", seed=1)
    other = push_image(src, "team/app", "2.0", seed=2)
    images = write_images(tmp_path, f"{target}/mirror", f'- source: "{src}/team/app:1.0"\n')
    path = plan_document(tmp_path, images, env=env)
    document = json.loads(path.read_text())
    document["changes"][0]["digest"] = other.digest
    forge(path, document)
    return path, images, other.digest


def test_with_the_key_a_swapped_digest_is_refused_before_any_request(
    source_registry: RegistryServer, target_registry: RegistryServer, tmp_path: Path
) -> None:
    env = {PLAN_KEY_ENV: KEY}
    with FaultProxy(target_registry.host) as proxy:
        path, images, _ = swapped_plan(source_registry, proxy.host, tmp_path, env)
        seen = len(proxy.requests)
        before = target_registry.listing()

        code, stdout, stderr = run("apply", str(path), "-i", str(images), env=env)

        assert_refused(code, stdout, stderr, before, target_registry)
        assert len(proxy.requests) == seen, "apply sent a request"
    assert "re-run plan" in stderr and "hmac" in stderr
    assert KEY not in stdout + stderr + path.read_text()


# -- IMAGESYNC_PLAN_KEY: what a plan needs to be applied -------------------------------------


def keyed_plan(
    source_registry: RegistryServer, target: str, tmp_path: Path, env: dict[str, str] | None
) -> tuple[Path, Path]:
    src = source_registry.host
    push_image(src, "team/app", "1.0")
    images = write_images(tmp_path, f"{target}/mirror", f'- source: "{src}/team/app:1.0"\n')
    return plan_document(tmp_path, images, env=env), images


def test_a_plan_made_with_the_key_applies_with_it(
    source_registry: RegistryServer, target_registry: RegistryServer, tmp_path: Path
) -> None:
    env = {PLAN_KEY_ENV: KEY}
    path, images = keyed_plan(source_registry, target_registry.host, tmp_path, env)
    text = path.read_text()
    assert json.loads(text)["hmac"].startswith("hmac-sha256:")
    assert KEY not in text
    code, stdout, stderr = run("apply", str(path), "-i", str(images), env=env)
    assert code == 0, stdout + stderr
    assert KEY not in stdout + stderr


def unsigned(document: dict[str, Any]) -> dict[str, Any]:
    document.pop("hmac", None)
    return document


def resigned_with_another_key(document: dict[str, Any]) -> dict[str, Any]:
    document["hmac"] = PlanKey(b"another key, 32 characters long!").sign(canonical(document))
    return document


def edited(document: dict[str, Any]) -> dict[str, Any]:
    document["changes"][0]["reason"] = "edited"
    return document


@pytest.mark.parametrize(
    ("made_with", "tamper", "expected"),
    [
        (None, unsigned, "no hmac"),
        (KEY, unsigned, "no hmac"),
        (KEY, edited, "does not match"),
        (KEY, resigned_with_another_key, "does not match"),
        ("another key made this plan, 32+ chars", lambda d: d, "does not match"),
    ],
    ids=[
        "made without the key",
        "hmac removed",
        "edited, checksum recomputed",
        "another key",
        "made with another key",
    ],
)
def test_with_the_key_apply_refuses_a_plan_without_a_valid_hmac_before_any_request(
    source_registry: RegistryServer,
    target_registry: RegistryServer,
    tmp_path: Path,
    made_with: str | None,
    tamper: Any,
    expected: str,
) -> None:
    with FaultProxy(target_registry.host) as proxy:
        path, _ = keyed_plan(
            source_registry, proxy.host, tmp_path, {PLAN_KEY_ENV: made_with} if made_with else None
        )
        document = tamper(copy.deepcopy(json.loads(path.read_text())))
        forge(path, document)
        seen = len(proxy.requests)
        before = target_registry.listing()

        code, stdout, stderr = run("apply", str(path), env={PLAN_KEY_ENV: KEY})

        assert_refused(code, stdout, stderr, before, target_registry)
        assert len(proxy.requests) == seen, "apply sent a request"
    assert expected in stderr and "re-run plan" in stderr
    for secret in (KEY, made_with or KEY):
        assert secret not in stdout + stderr


def test_a_key_too_short_to_be_one_is_refused_and_not_shown(tmp_path: Path) -> None:
    images = write_images(tmp_path, "127.0.0.1:9/mirror", '- source: "127.0.0.1:9/app:1.0"\n')
    code, stdout, stderr = run("plan", "-i", str(images), env={PLAN_KEY_ENV: "short-key"})
    assert code == 1
    assert PLAN_KEY_ENV in stderr and "short-key" not in stdout + stderr
    assert "cannot reach" not in stderr


# -- property: no tampering writes outside what the untampered plan writes --------------------
#
# A world with every kind of attached artifact (cosign signatures on the index and a child, a
# referrer and a referrer of it) and a second image in the same source repository to be
# tempted by. The untampered plan is applied once to an empty target; that target's storage is
# everything any plan of this images file may write. Then hypothesis tampers with the plan —
# any field, sub-changes added, removed, retargeted (often named the way apply would name
# them, so that apply's own checks are what stands in the way), checksum and summary
# recomputed — and applies it with -i to a fresh, empty real registry behind a proxy that
# keeps the plan's target host. What lands there must be a part of what the untampered plan
# wrote: the same tags with the same digests, no other manifests, layers or blobs — except
# that a tag-schema index may list fewer of the untampered plan's referrers.

SCALE = max(1, int(os.environ.get("IMAGESYNC_PROPERTY_SCALE", "1")))


@dataclass(frozen=True)
class Stored:
    """A registry's storage, read from its files: tags, manifests and layers per repository."""

    tags: dict[tuple[str, str], str]
    manifests: frozenset[tuple[str, str]]
    layers: frozenset[tuple[str, str]]

    @classmethod
    def of(cls, server: RegistryServer) -> Stored:
        root = server.storage / "docker" / "registry" / "v2" / "repositories"
        tags: dict[tuple[str, str], str] = {}
        manifests, layers = set(), set()
        for link in root.rglob("link") if root.exists() else ():
            parts = link.relative_to(root).parts
            if "_uploads" in parts:  # an upload session, not stored content
                continue
            digest = link.read_text()
            at = parts.index("_manifests") if "_manifests" in parts else parts.index("_layers")
            repository = "/".join(parts[:at])
            if parts[at] == "_layers":
                layers.add((repository, digest))
            elif parts[at + 1] == "revisions":
                manifests.add((repository, digest))
            elif parts[at + 1] == "tags" and parts[at + 3] == "current":
                tags[(repository, parts[at + 2])] = digest
        return cls(tags, frozenset(manifests), frozenset(layers))


def stored_manifest(server: RegistryServer, digest: str) -> dict[str, Any]:
    hex_ = digest.split(":", 1)[1]
    path = server.storage / "docker/registry/v2/blobs/sha256" / hex_[:2] / hex_ / "data"
    document: dict[str, Any] = json.loads(path.read_bytes())
    return document


def assert_within(new: Stored, server: RegistryServer, base: Stored, base_server: RegistryServer):
    listed: dict[str, set[str]] = {}  # per repository: what the untampered indexes list
    for repository, digest in base.manifests:
        document = stored_manifest(base_server, digest)
        if document.get("mediaType") == OCI_INDEX:
            entries = {m["digest"] for m in document.get("manifests", [])}
            listed.setdefault(repository, set()).update(entries)

    def a_smaller_referrers_index(repository: str, digest: str) -> bool:
        document = stored_manifest(server, digest)
        entries = {m["digest"] for m in document.get("manifests", [])}
        return document.get("mediaType") == OCI_INDEX and entries <= listed.get(repository, set())

    for (repository, tag), digest in new.tags.items():
        assert (repository, tag) in base.tags, f"wrote tag {repository}:{tag}"
        if digest != base.tags[(repository, tag)]:
            assert tag.startswith("sha256-") and "." not in tag, f"moved {repository}:{tag}"
            assert a_smaller_referrers_index(repository, digest), f"{repository}:{tag}"
    for repository, digest in new.manifests - base.manifests:
        assert a_smaller_referrers_index(repository, digest), f"wrote {repository}@{digest}"
    assert new.layers <= base.layers, f"wrote layers {sorted(new.layers - base.layers)}"


@dataclass(frozen=True)
class World:
    proxy: FaultProxy
    images: Path
    plan: dict[str, Any]
    stored: Stored
    server: RegistryServer
    digests: tuple[str, ...]
    references: tuple[str, ...]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    directory = tmp_path_factory.mktemp("world")
    with (
        RegistryServer(directory / "source") as source,
        RegistryServer(directory / "base") as base,
        FaultProxy(base.host) as proxy,
    ):
        src = source.host
        image = push_image(src, "team/app", "1.0", seed=11)
        signature = push_cosign_signature(src, "team/app", image.digest, seed=12)
        child_signature = push_cosign_signature(src, "team/app", image.children[0], seed=13)
        referrer = push_referrer(src, "team/app", image, artifact_type=SPDX, seed=14)
        on_referrer = push_referrer(src, "team/app", referrer, artifact_type=SPDX, seed=15)
        other = push_image(src, "team/app", "2.0", seed=16, index=False)
        other_signature = push_cosign_signature(src, "team/app", other.digest, seed=17)
        images = directory / "external-images.yaml"
        images.write_text(
            f"target: {proxy.host}/mirror\nimages:\n"
            f'- source: "{src}/team/app@{image.digest}"\n  tag: "1.0"\n',
            encoding="utf-8",
        )
        path = directory / "plan.json"
        code, stdout, stderr = run("plan", "-i", str(images), "-o", str(path))
        assert code == 0, stdout + stderr
        code, stdout, stderr = run("apply", str(path), "-i", str(images))
        assert code == 0, stdout + stderr
        digests = (
            image.digest,
            *image.children,
            signature.digest,
            child_signature.digest,
            referrer.digest,
            on_referrer.digest,
            other.digest,
            other_signature.digest,
        )
        target = f"{proxy.host}/{mirrored(source, 'team/app')}"
        tags = ["1.0", "2.0", "evil"] + [
            d.replace(":", "-") + suffix for d in digests for suffix in ("", ".sig", ".att")
        ]
        references = (
            *(f"{target}:{t}" for t in tags),
            *(f"{target}@{d}" for d in digests),
            *(f"{src}/team/app:{t}" for t in tags[:3]),
            *(f"{src}/team/app@{d}" for d in digests),
            f"{proxy.host}/mirror/elsewhere:1.0",
        )
        plan = json.loads(path.read_text())
        assert len(plan["changes"][0]["subchanges"]) >= 6, plan
        yield World(proxy, images, plan, Stored.of(base), base, digests, references)


KINDS = ["signature", "attestation", "sbom", "referrer", "referrers-index"]
ACTIONS = ["create", "create", "skip", "conflict", "error"]


@st.composite
def tampered(draw: st.DrawFn, world: World) -> dict[str, Any]:
    document = copy.deepcopy(world.plan)
    change = document["changes"][0]
    subs: list[dict[str, Any]] = change["subchanges"]
    digests, references = st.sampled_from(world.digests), st.sampled_from(world.references)
    target_repository = parse_reference(change["target"]).repository
    source_repository = parse_reference(change["source"]).repository

    def named(sub: dict[str, Any]) -> None:
        """Name a forged sub-change as apply would: past the plan's own checks."""
        sub["target"] = str(
            attached_target(sub["kind"], target_repository, sub["subject"], sub["digest"])
        )
        source = attached_source(sub["kind"], source_repository, sub["subject"], sub["digest"])
        sub["source"] = sub["target"] if sub["kind"] == "referrers-index" else str(source)

    # Values of the right type for each field: a plan the schema refuses tests nothing new.
    change_fields = {
        "digest": digests,
        "target_digest": st.one_of(st.none(), digests),
        "source": references,
        "target": references,
        "action": st.sampled_from(ACTIONS),
    }
    sub_fields = {
        "kind": st.sampled_from(KINDS),
        "digest": digests,
        "subject": digests,
        "action": st.sampled_from(ACTIONS),
        "source": references,
        "target": references,
    }
    operations = ["sub field"] * 3 + ["add"] * 3 + ["retarget"] * 2 + ["remove", "field"]
    for _ in range(draw(st.integers(1, 3))):
        operation = draw(st.sampled_from(operations))
        if operation == "field":
            key = draw(st.sampled_from(sorted(change_fields)))
            change[key] = draw(change_fields[key])
        elif operation == "sub field" and subs:
            sub = draw(st.sampled_from(subs))
            key = draw(st.sampled_from(sorted(sub_fields)))
            sub[key] = draw(sub_fields[key])
            if key not in ("source", "target") and draw(st.booleans()):
                named(sub)
        elif operation == "add":
            kind = draw(st.sampled_from(KINDS))
            subject = draw(digests)
            digest = subject if kind == "referrers-index" else draw(digests)
            added = sub_change(kind, "", "", digest, subject, draw(st.sampled_from(ACTIONS)))
            if draw(st.integers(0, 3)):
                named(added)
            else:
                added.update(target=draw(references), source=draw(references))
            subs.insert(draw(st.integers(0, len(subs))), added)
        elif operation == "remove" and subs:
            subs.pop(draw(st.integers(0, len(subs) - 1)))
        elif operation == "retarget" and subs:
            sub = draw(st.sampled_from(subs))
            sub[draw(st.sampled_from(["target", "source"]))] = draw(references)
    return reseal(document, check=False)


@settings(
    max_examples=40 * SCALE,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_a_tampered_plan_never_writes_outside_the_untampered_plans_writes(
    world: World, tmp_path_factory: pytest.TempPathFactory, data: Any
) -> None:
    document = data.draw(tampered(world))
    directory = tmp_path_factory.mktemp("tampered")
    path = directory / "plan.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    with RegistryServer(directory / "target") as target:
        world.proxy.upstream = target.host
        try:
            code, stdout, stderr = run("apply", str(path), "-i", str(world.images))
        finally:
            world.proxy.upstream = world.server.host
        assert code in (0, 1), stdout + stderr
        assert "Traceback" not in stdout + stderr
        assert_within(Stored.of(target), target, world.stored, world.server)
