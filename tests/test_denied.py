"""A 403 says what the credentials lack: pull rights for a read, push rights for a write
(issue 33). The distribution registry has no per-repository rights, so a fake registry on
loopback answers 403 where a registry with them (Harbor, GHCR, ECR) would."""

from __future__ import annotations

import json
from pathlib import Path

from tests.harness.cli import run
from tests.harness.hostile import Answer, HostileRegistry
from tests.harness.images import push_image
from tests.harness.registry import RegistryServer

DENIED = Answer(
    403,
    {"Content-Type": "application/json"},
    json.dumps({"errors": [{"code": "DENIED", "message": "requested access is denied"}]}).encode(),
)


def test_a_source_read_refused_says_pull_rights_on_that_repository(
    tmp_path: Path, target_registry: RegistryServer
) -> None:
    with HostileRegistry() as source:
        source.route("HEAD", r"/v2/team/app/manifests/", DENIED)
        source.route("GET", r"/v2/team/app/manifests/", DENIED)
        images = tmp_path / "images.yaml"
        images.write_text(f'images:\n- source: "{source.host}/team/app:1.0"\n', encoding="utf-8")
        code, out, err = run("plan", "-i", str(images), "--target", f"{target_registry.host}/m")
    assert code == 1
    shown = out + err
    assert "lack pull rights on team/app" in shown
    assert "push" not in shown.lower()


def test_a_target_write_refused_says_push_rights(
    tmp_path: Path, source_registry: RegistryServer, target_registry: RegistryServer
) -> None:
    push_image(source_registry, "team/app", "1.0")
    with HostileRegistry(upstream=target_registry.host) as target:
        target.route("POST", r"/v2/.*/blobs/uploads/", DENIED)
        target.route("PUT", r"/v2/.*/manifests/", DENIED)
        images = tmp_path / "images.yaml"
        images.write_text(
            f'images:\n- source: "{source_registry.host}/team/app:1.0"\n', encoding="utf-8"
        )
        code, out, err = run("sync", "-i", str(images), "--target", f"{target.host}/m")
    assert code == 1
    assert "lack push rights on m/" in out + err
