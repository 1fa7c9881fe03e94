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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from click.testing import CliRunner

from imagesync.cli import main
from imagesync.stores.registry import ecr
from tests.conftest import RegistryFactory
from tests.harness.ecr import REGION, EcrProxy, MotoServer
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


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
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
