"""The Kubernetes example (examples/kubernetes/): an Indexed Job whose pods each sync one shard.

kubernetes-validate (the test extra) checks every document against the Kubernetes API's own
schemas, strictly (an unknown field is an error); the rest checks what the schemas cannot:
that the pods run the shards 0 … N-1 of N, that imagesync takes their arguments, and that the
images file and registries config in the ConfigMap are ones imagesync reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from imagesync.cli import sync
from imagesync.images.file import load_images_file
from imagesync.images.shard import Shard
from imagesync.stores.registry.registries import load_registries_config

MANIFEST = Path(__file__).resolve().parent.parent / "examples" / "kubernetes" / "imagesync-job.yaml"
# The oldest release where backoffLimitPerIndex is generally available, and the newest the
# package knows.
VERSIONS = ("1.33.0", kubernetes_validate.latest_version())


def documents() -> dict[str, dict[str, Any]]:
    loaded = [d for d in yaml.safe_load_all(MANIFEST.read_text(encoding="utf-8")) if d]
    return {d["kind"]: d for d in loaded}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("kind", ["ConfigMap", "Secret", "Job"])
def test_the_manifest_passes_the_kubernetes_schemas(kind: str, version: str) -> None:
    kubernetes_validate.validate(documents()[kind], version, strict=True)


def test_the_job_runs_every_shard_once_as_a_user_without_privileges(tmp_path: Path) -> None:
    job = documents()["Job"]["spec"]
    assert job["completionMode"] == "Indexed"
    count = job["completions"]
    assert job["parallelism"] == count and job["backoffLimitPerIndex"] >= 1
    pod = job["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"]["drop"] == ["ALL"]
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    args = container["args"]
    assert args[0] == "sync"
    shard = args[args.index("--shard") + 1]
    assert shard == f"$(JOB_COMPLETION_INDEX)/{count}"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    # What each pod runs, once Kubernetes has put its index in: options imagesync takes (the
    # ConfigMap's files where the pod has them mounted).
    for name, text in documents()["ConfigMap"]["data"].items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    for index in range(count):
        given = [
            a.replace("$(JOB_COMPLETION_INDEX)", str(index)).replace(
                mounts["config"], str(tmp_path)
            )
            for a in args[1:]
        ]
        context = sync.make_context("sync", given)
        assert context.params["shard"] == Shard(index, count)
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["DOCKER_CONFIG"] == mounts["credentials"]
    (secret,) = [v for v in pod["volumes"] if v["name"] == "credentials"]
    assert secret["secret"]["items"] == [{"key": ".dockerconfigjson", "path": "config.json"}]
    images = args[args.index("--images-file") + 1]
    assert Path(images).parent == Path(mounts["config"])


def test_the_configmap_holds_files_imagesync_reads(tmp_path: Path) -> None:
    data = documents()["ConfigMap"]["data"]
    (tmp_path / "external-images.yaml").write_text(data["external-images.yaml"], "utf-8")
    (tmp_path / "registries.yaml").write_text(data["registries.yaml"], "utf-8")
    images = load_images_file(tmp_path / "external-images.yaml", "registry.example.com/mirror")
    assert len(images.entries) == 4 and not images.warnings
    config = load_registries_config(tmp_path / "registries.yaml")
    assert config is not None
