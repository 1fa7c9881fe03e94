"""Amazon ECR as a target (issue 29), against the real distribution registry behind the proxy
that plays ECR (tests/harness/ecr.py) and moto's AWS API server, both on loopback.

- ``create_repositories: true``: the plan lists each missing repository as a change; apply
  creates it through the AWS API (moto lists it) before its first write, and the images land
  digest-exact (skopeo reads them back). Without it, plan names every missing repository with
  the command that creates it, and nothing is written.
- Immutable tags: applying a landed plan again writes nothing and succeeds; a signature that
  would grow an immutable ``.sig`` tag fails alone, with a message that says why.
- A refused mount (ECR's default) costs no request beyond the upload it opened.
- The login is a GetAuthorizationToken token, renewed before it expires.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from click.testing import CliRunner

import imagesync.apply.image as image_module
from imagesync.cli import main
from imagesync.errors import PlanRejected
from imagesync.plan.checks import check_plan
from imagesync.plan.document import Action, Plan, RepositoryChange, checksum
from imagesync.stores.registry import ecr
from imagesync.stores.registry.auth import CredentialStore
from tests.conftest import RegistryFactory
from tests.harness import cosign
from tests.harness.ecr import ACCOUNT, REGION, EcrProxy, MotoServer, decoded_login
from tests.harness.images import connect, cosign_tag, push_image
from tests.harness.mirrorworld import PROXY_VARIABLES, MirrorWorld, OnlyLoopback
from tests.harness.registry import RegistryServer
from tests.harness.skopeo import inspect_raw
from tests.test_mirror_world import FILES, digest_of, expected_digests, file_id, mirror_and_target

pytestmark = pytest.mark.registry


@pytest.fixture(scope="module")
def moto_server() -> Iterator[MotoServer]:
    server = MotoServer()
    yield server
    server.close()


@pytest.fixture
def aws(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """moto's ECR, empty, as the AWS API this process sees: fake credentials, the region,
    ``AWS_ENDPOINT_URL_ECR`` on loopback, no AWS config file of the machine's."""
    requests.post(f"{moto_server.endpoint}/moto-api/reset", timeout=10).raise_for_status()
    monkeypatch.setenv("AWS_ENDPOINT_URL_ECR", moto_server.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setattr(ecr, "_clients", {})
    return moto_server.client()


@pytest.fixture
def ecr_target(target_registry: RegistryServer, aws: Any) -> Iterator[EcrProxy]:
    with EcrProxy(target_registry.host, aws) as proxy:
        yield proxy


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), env=env)
    assert "Traceback" not in result.output, result.output
    return result.exit_code, result.stdout, result.stderr


def registries_config(
    path: Path, proxy: EcrProxy, *, create: bool, base: Path | None = None
) -> str:
    """The registries config: ``base``'s registries (a mirror world's), and the proxy as ECR."""
    document = yaml.safe_load(base.read_text(encoding="utf-8")) if base else {"registries": {}}
    document["registries"][proxy.host] = {"kind": "ecr", "create_repositories": create}
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return str(path)


def images_file(path: Path, target: str, sources: list[str]) -> Path:
    lines = "".join(f'- source: "{source}"\n' for source in sources)
    path.write_text(f"target: {target}\nimages:\n{lines}", encoding="utf-8")
    return path


def writes(proxy: EcrProxy) -> list[str]:
    return [f"{r.method} {r.path}" for r in proxy.writes()]


# -- the real files, into ECR ---------------------------------------------------------------


@pytest.fixture
def world(registry_factory: RegistryFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with OnlyLoopback() as guard:
        yield MirrorWorld(registry_factory, tmp_path, guard)


@pytest.mark.parametrize("original", FILES, ids=[file_id(p) for p in FILES])
def test_a_real_file_lands_in_ecr_its_repositories_created_first(
    world: MirrorWorld,
    target_registry: RegistryServer,
    ecr_target: EcrProxy,
    aws: Any,
    tmp_path: Path,
    original: Path,
) -> None:
    prefix = "kyma/external"
    target: Any = Named(ecr_target.host)  # what the helpers read of a target: its host
    mirrored, target_args = mirror_and_target(world, original, target, prefix)
    config = registries_config(
        tmp_path / "ecr.yaml", ecr_target, create=True, base=world.registries_config
    )
    plan_file = tmp_path / "plan.json"
    code, out, err = run(
        "plan",
        "-i",
        str(mirrored.path),
        *target_args,
        "--registries-config",
        config,
        "-o",
        str(plan_file),
        "--format",
        "json",
    )
    assert code == 0, out + err
    assert writes(ecr_target) == []  # plan writes nothing, and creates nothing
    assert aws.describe_repositories()["repositories"] == []
    document = json.loads(out)
    unique = mirrored.unique()
    wanted = sorted({c["target"].rsplit(":", 1)[0] for c in document["changes"]})
    assert document["format_version"] == 2
    assert [r["repository"] for r in document["repositories"]] == wanted
    assert {r["action"] for r in document["repositories"]} == {"create"}
    count = len(wanted)
    noun = "repository" if count == 1 else "repositories"
    assert document["summary"]["create"] == len(unique)

    code, shown, _ = run("show", str(plan_file))
    assert code == 0
    assert f"Plan: {count} {noun} to create, {len(unique)} to create" in shown
    assert all(f"+ repository {name}" in shown for name in wanted)
    code, markdown, _ = run("show", str(plan_file), "--format", "markdown")
    assert code == 0 and f"{count} {noun} to create" in markdown
    assert "repository to create: `" in markdown

    code, out, err = run("apply", str(plan_file), "--registries-config", config, "--format", "json")
    assert code == 0, out + err
    report = json.loads(out)
    assert report["summary"]["created"] == len(unique) and not report["failed"]
    host = f"{ecr_target.host}/"
    assert ecr_target.repositories() == sorted(n.removeprefix(host) for n in wanted)
    # Digest-exact: skopeo reads what landed from the registry behind the proxy.
    expected = expected_digests(target, prefix, unique)
    for reference, digest in expected.items():
        behind = reference.replace(ecr_target.host, target_registry.host, 1)
        assert digest_of(inspect_raw(behind, registry=target_registry)) == digest, reference

    before = len(ecr_target.requests)
    code, out, err = run(
        "plan",
        "-i",
        str(mirrored.path),
        *target_args,
        "--registries-config",
        config,
        "--format",
        "json",
        "--detailed-exitcode",
    )
    assert code == 0, out + err
    again = json.loads(out)
    assert {c["action"] for c in again["changes"]} == {"skip"}
    assert {s["action"] for c in again["changes"] for s in c["subchanges"]} <= {"skip"}
    assert "repositories" not in again and again["format_version"] == 1
    second = ecr_target.requests[before:]
    assert [r for r in second if r.method not in ("GET", "HEAD")] == []
    assert world.dns.refused == []


@dataclass(frozen=True)
class Named:
    host: str


# -- small worlds: one source registry, ECR in front of the target ----------------------------


def plan_into_ecr(
    tmp_path: Path, source: RegistryServer, proxy: EcrProxy, paths: list[str], *, create: bool
) -> tuple[int, dict[str, Any], str, str]:
    """Plan ``paths`` of ``source`` (tag 1.0) into the ECR proxy below ``mirror``: the exit
    code, the plan document, the plan file and the registries config."""
    images = images_file(
        tmp_path / "images.yaml", f"{proxy.host}/mirror", [f"{source.host}/{p}:1.0" for p in paths]
    )
    config = registries_config(tmp_path / "registries.yaml", proxy, create=create)
    plan_file = tmp_path / "plan.json"
    code, out, err = run(
        "plan", "-i", str(images), "--registries-config", config, "-o", str(plan_file),
        "--format", "json",
    )  # fmt: skip
    assert "Traceback" not in out + err
    return code, json.loads(out), str(plan_file), config


def ecr_name(proxy: EcrProxy, reference: str) -> str:
    """The ECR repository name of a target reference."""
    return reference.removeprefix(f"{proxy.host}/").rsplit(":", 1)[0]


def test_without_create_repositories_plan_names_each_missing_repository_and_writes_nothing(
    source_registry: RegistryServer, ecr_target: EcrProxy, aws: Any, tmp_path: Path
) -> None:
    for seed, path in enumerate(("team/app", "team/tool", "team/kept"), start=1):
        push_image(source_registry, path, "1.0", seed=seed)
    kept = f"mirror/{source_registry.host.replace(':', '-')}/team/kept"
    aws.create_repository(repositoryName=kept)
    code, document, _, _ = plan_into_ecr(
        tmp_path, source_registry, ecr_target, ["team/app", "team/tool", "team/kept"], create=False
    )
    assert code == 1
    assert "repositories" not in document
    actions = {ecr_name(ecr_target, c["target"]): c for c in document["changes"]}
    assert actions[kept]["action"] == "create"
    for change in document["changes"]:
        name = ecr_name(ecr_target, change["target"])
        if name == kept:
            continue
        assert change["action"] == "error"
        assert f"target repository {ecr_target.host}/{name} does not exist" in change["reason"]
        command = f"aws ecr create-repository --repository-name {name} --region {REGION}"
        assert command in change["reason"]
        assert f"create_repositories: true under registries.{ecr_target.host}" in change["reason"]
    assert writes(ecr_target) == []
    assert ecr_target.repositories() == [kept]


def test_a_landed_plan_applied_again_into_immutable_tags_writes_nothing(
    source_registry: RegistryServer, ecr_target: EcrProxy, aws: Any, tmp_path: Path
) -> None:
    push_image(source_registry, "team/app", "1.0")
    name = f"mirror/{source_registry.host.replace(':', '-')}/team/app"
    aws.create_repository(repositoryName=name, imageTagMutability="IMMUTABLE")
    code, document, plan_file, config = plan_into_ecr(
        tmp_path, source_registry, ecr_target, ["team/app"], create=True
    )
    assert code == 0 and "repositories" not in document  # it exists: nothing to create
    code, out, err = run("apply", plan_file, "--registries-config", config, "--format", "json")
    assert code == 0, out + err
    assert json.loads(out)["summary"]["created"] == 1
    before = len(ecr_target.requests)
    code, out, err = run("apply", plan_file, "--registries-config", config, "--format", "json")
    assert code == 0, out + err
    (image,) = json.loads(out)["images"]
    assert image["outcome"] == "skipped"
    assert [r for r in ecr_target.requests[before:] if r.method not in ("GET", "HEAD")] == []


def test_a_tag_invalid_on_a_tag_that_holds_the_digest_is_success(
    source_registry: RegistryServer,
    ecr_target: EcrProxy,
    aws: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A tag written by someone else between the look right before and the PUT: ECR answers
    TAG_INVALID even for the same digest (moby/buildkit#3776); the write is done."""
    pushed = push_image(source_registry, "team/app", "1.0")
    name = f"mirror/{source_registry.host.replace(':', '-')}/team/app"
    aws.create_repository(repositoryName=name, imageTagMutability="IMMUTABLE")
    _, _, plan_file, config = plan_into_ecr(
        tmp_path, source_registry, ecr_target, ["team/app"], create=True
    )
    real_put = image_module.write_tag

    def racing(store: Any, target: Any, manifest: Any, found: Any, **kw: Any) -> Any:
        # Someone else lands the same image right before imagesync's PUT.
        if manifest.digest == pushed.digest and target.tag == "1.0":
            behind = connect(ecr_target.upstream)
            behind.put_manifest(name, "1.0", manifest.raw, manifest.media_type)
        return real_put(store, target, manifest, found, **kw)

    monkeypatch.setattr(image_module, "write_tag", racing)
    code, out, err = run("apply", plan_file, "--registries-config", config, "--format", "json")
    assert code == 0, out + err
    (image,) = json.loads(out)["images"]
    assert image["outcome"] == "skipped", image
    refused = [r for r in ecr_target.requests if r.status == 400]
    assert [r.method for r in refused] == ["PUT"] and refused[0].path.endswith("/manifests/1.0")


def test_a_signature_that_would_grow_an_immutable_sig_tag_fails_alone(
    source_registry: RegistryServer, ecr_target: EcrProxy, aws: Any, tmp_path: Path
) -> None:
    from tests.test_sign_apply_registry import key_pair, push_signature_image, with_passphrase

    pushed = push_image(source_registry, "team/app", "1.0")
    name = f"mirror/{source_registry.host.replace(':', '-')}/team/app"
    aws.create_repository(repositoryName=name, imageTagMutability="IMMUTABLE")
    _, _, plan_file, config = plan_into_ecr(
        tmp_path, source_registry, ecr_target, ["team/app"], create=True
    )
    assert run("apply", plan_file, "--registries-config", config)[0] == 0
    # The target's .sig tag holds a signature already (a vendor's, copied before).
    vendor, team = key_pair(tmp_path, "vendor"), key_pair(tmp_path, "team")
    behind = connect(ecr_target.upstream)
    layer = cosign.signed_layer(vendor.private, f"{ecr_target.host}/{name}", pushed.digest)
    push_signature_image(behind, name, pushed.digest, cosign.signature_image([layer]))
    held = behind.head_manifest(name, cosign_tag(pushed.digest)).headers["Docker-Content-Digest"]
    images = tmp_path / "images.yaml"
    signed_plan = str(tmp_path / "signed.json")
    code, out, err = run("plan", "-i", str(images), "--registries-config", config,
                         "-o", signed_plan, "--sign-key", str(team.pub_file))  # fmt: skip
    assert code == 0, out + err
    code, out, err = run("apply", signed_plan, "--registries-config", config, "--format", "json",
                         "--sign-key", str(team.key_file), env=with_passphrase())  # fmt: skip
    assert code == 1, out + err
    (image,) = json.loads(out)["images"]
    assert image["outcome"] == "skipped"  # the image stands
    (signing,) = [s for s in image["signatures"] if s["kind"] == "signing"]
    assert signing["outcome"] == "failed"
    assert "tags are immutable" in signing["message"]
    assert "put-image-tag-mutability" in signing["message"]
    assert (
        behind.head_manifest(name, cosign_tag(pushed.digest)).headers["Docker-Content-Digest"]
        == held
    )


def test_a_refused_mount_costs_no_request_beyond_the_upload_it_opened(
    source_registry: RegistryServer, ecr_target: EcrProxy, aws: Any, tmp_path: Path
) -> None:
    """Two repositories of one image: the second's blobs are planned as mounts from the first;
    ECR (mounts off) opens an upload session instead, and the copy goes into it."""
    for path in ("team/a", "team/b"):
        push_image(source_registry, path, "1.0", seed=7)
    code, document, plan_file, config = plan_into_ecr(
        tmp_path, source_registry, ecr_target, ["team/a", "team/b"], create=True
    )
    assert code == 0
    mounted = sum(c["blobs_to_mount"] for c in document["changes"])
    assert mounted > 0, document["changes"]
    code, out, err = run("apply", plan_file, "--registries-config", config, "--format", "json")
    assert code == 0, out + err
    blob_writes = [r for r in ecr_target.writes() if "/blobs/uploads/" in r.path]
    mounts = [r for r in blob_writes if r.method == "POST" and "mount=" in r.path]
    assert len(mounts) == mounted and {r.status for r in mounts} == {202}
    opened = [r for r in blob_writes if r.method == "POST"]
    finished = [r for r in blob_writes if r.method == "PUT"]
    # Every blob: one POST (a refused mount's, or a plain one) and one PUT into it.
    transferred = sum(c["blobs_to_transfer"] for c in document["changes"])
    assert len(opened) == len(finished) == transferred


def test_sync_creates_the_repositories_before_its_first_write(
    source_registry: RegistryServer, ecr_target: EcrProxy, aws: Any, tmp_path: Path
) -> None:
    """Plan and apply in one go: the early start of a create's blobs waits for apply, which
    creates its repository first."""
    for seed, path in enumerate(("team/app", "team/tool"), start=1):
        push_image(source_registry, path, "1.0", seed=seed)
    images = images_file(
        tmp_path / "images.yaml",
        f"{ecr_target.host}/mirror",
        [f"{source_registry.host}/team/app:1.0", f"{source_registry.host}/team/tool:1.0"],
    )
    config = registries_config(tmp_path / "registries.yaml", ecr_target, create=True)
    code, out, err = run("sync", "-i", str(images), "--registries-config", config)
    assert code == 0, out + err
    host = source_registry.host.replace(":", "-")
    assert ecr_target.repositories() == [f"mirror/{host}/team/app", f"mirror/{host}/team/tool"]
    # No write went to a repository before it existed (ECR: 404 NAME_UNKNOWN).
    assert ecr_target.writes() and [r for r in ecr_target.writes() if r.status == 404] == []


# -- the login -------------------------------------------------------------------------------


def test_the_login_is_a_get_authorization_token_token_renewed_before_it_expires(
    aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
    credential = ecr.login(host)
    data = aws.get_authorization_token()["authorizationData"][0]
    assert f"{credential.username}:{credential.password}" == decoded_login(
        "Basic " + data["authorizationToken"]
    )
    assert credential.username == "AWS" and credential.expires_at is not None
    calls: list[str] = []

    def login(registry: str) -> Any:
        calls.append(registry)
        return ecr.login(registry)

    store = CredentialStore(config_paths=[], fallback=login)
    store.for_registry(host)
    store.for_registry(host)
    assert calls == [host]  # fresh: kept
    clock = ecr.time.monotonic() + ecr.FALLBACK_LIFETIME
    monkeypatch.setattr("imagesync.stores.registry.auth.time.monotonic", lambda: clock)
    store.for_registry(host)
    assert calls == [host, host]  # renewed before it runs out
    from imagesync.redact import secrets

    assert credential.password not in secrets(f"x {credential.password} y")


def test_imagesync_logs_in_with_the_token_the_proxy_checks(
    source_registry: RegistryServer, ecr_target: EcrProxy, aws: Any, tmp_path: Path
) -> None:
    push_image(source_registry, "team/app", "1.0")
    code, document, _, _ = plan_into_ecr(
        tmp_path, source_registry, ecr_target, ["team/app"], create=True
    )
    assert code == 0, document
    statuses = [r.status for r in ecr_target.requests]
    assert statuses[0] == 401 and statuses.count(401) == 1  # the challenge, once


# -- plan integrity ----------------------------------------------------------------------------


def test_a_plan_cannot_create_a_repository_outside_its_prefix_or_of_no_image(
    source_registry: RegistryServer, ecr_target: EcrProxy, aws: Any, tmp_path: Path
) -> None:
    push_image(source_registry, "team/app", "1.0")
    _, _, plan_file, _ = plan_into_ecr(
        tmp_path, source_registry, ecr_target, ["team/app"], create=True
    )
    plan = Plan.read(plan_file)
    assert len(plan.repositories) == 1
    check_plan(plan)
    for name, why in (
        (f"{ecr_target.host}/elsewhere/app", "outside the plan's prefix"),
        (f"{ecr_target.host}/mirror/unrelated", "the target of no image"),
    ):
        forged = replace(plan, repositories=(RepositoryChange(name, Action.CREATE, "x"),))
        with pytest.raises(PlanRejected, match=why):
            check_plan(Plan.from_document(forged.to_document()))


def test_an_imagesync_that_reads_only_format_version_1_refuses_a_plan_with_repositories(
    source_registry: RegistryServer, ecr_target: EcrProxy, aws: Any, tmp_path: Path
) -> None:
    push_image(source_registry, "team/app", "1.0")
    _, document, _, _ = plan_into_ecr(
        tmp_path, source_registry, ecr_target, ["team/app"], create=True
    )
    assert document["format_version"] == 2 and document["repositories"]
    # What format_version 1's schema says (a const): a plan with repositories is refused.
    without = {k: v for k, v in document.items() if k != "repositories"}
    without["format_version"] = 2
    without["checksum"] = checksum(without)
    with pytest.raises(PlanRejected, match="does not match the plan schema"):
        Plan.from_document(without)


def test_a_skip_costs_no_manifest_get_at_ecr(
    source_registry: RegistryServer, ecr_target: EcrProxy, aws: Any, tmp_path: Path
) -> None:
    push_image(source_registry, "team/app", "1.0")
    _, _, plan_file, config = plan_into_ecr(
        tmp_path, source_registry, ecr_target, ["team/app"], create=True
    )
    assert run("apply", plan_file, "--registries-config", config)[0] == 0
    before = len(ecr_target.requests)
    code, document, _, _ = plan_into_ecr(
        tmp_path, source_registry, ecr_target, ["team/app"], create=True
    )
    assert code == 0 and {c["action"] for c in document["changes"]} == {"skip"}
    gets = [
        r for r in ecr_target.requests[before:] if r.method == "GET" and "/manifests/" in r.path
    ]
    assert gets == []
