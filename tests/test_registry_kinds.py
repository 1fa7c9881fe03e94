"""Each kind of registry imagesync mirrors into, played by a proxy in front of a real registry
(tests/harness/registrykinds.py: each behaviour names its public source).

The real files of tests/realworld/ (their images generated once per module into mirrors, as
test_mirror_world does) are synced into a target of each kind: every image lands digest-exact
(skopeo reads it back from the registry behind the proxy), planning again is all skip, and
the proxy's log shows what each kind needs: no manifest GET for a skip, no retried quota 429,
no request after a refused mount but the upload, no chunk over the kind's limit.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from imagesync.cli import main
from tests.harness.images import push_image
from tests.harness.mirrorworld import PROXY_VARIABLES, MirroredFile, MirrorWorld, OnlyLoopback
from tests.harness.registry import RegistryServer
from tests.harness.registrykinds import GHCR_MAX_CHUNK, KINDS, KindProxy
from tests.harness.skopeo import SkopeoError, inspect_digest
from tests.test_mirror_world import FILES, WITH_TARGET_REPO_PREFIX, expected_digests, target_digests

pytestmark = pytest.mark.registry
PREFIX = "kyma/ext"


def run(*args: str) -> Result:
    result = CliRunner().invoke(main, list(args))
    assert "Traceback" not in result.output, result.output
    return result


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[MirrorWorld, list[MirroredFile]]]:
    """Every real file's images, generated once into mirrors for the whole module."""
    servers: list[RegistryServer] = []

    def start(name: str = "registry", **options: object) -> RegistryServer:
        server = RegistryServer(tmp_path_factory.mktemp(name), tmpfs=True)
        servers.append(server)
        return server

    with pytest.MonkeyPatch.context() as patch, OnlyLoopback() as dns:
        for name in PROXY_VARIABLES:
            patch.delenv(name, raising=False)
        mirror_world = MirrorWorld(start, tmp_path_factory.mktemp("world"), dns)
        files = [
            mirror_world.mirror_file(
                original,
                target_repo_prefix="TARGET/" if original.name == WITH_TARGET_REPO_PREFIX else None,
            )
            for original in FILES
        ]
        yield mirror_world, files
    for server in servers:
        server.close()


def _file_for(mirrored: MirroredFile, target: str, tmp_path: Path) -> tuple[Path, list[str]]:
    """The file pointed at ``target`` (its own targetRepoPrefix:, or -r)."""
    text = mirrored.path.read_text(encoding="utf-8")
    if "TARGET/" in text:
        path = tmp_path / mirrored.path.name
        path.write_text(text.replace("TARGET/", f"{target}/{PREFIX}/"), encoding="utf-8")
        return path, []
    return mirrored.path, ["-r", f"{target}/{PREFIX}/"]


@pytest.mark.parametrize("kind", KINDS)
def test_the_real_files_sync_into_each_kind(
    world: tuple[MirrorWorld, list[MirroredFile]],
    target_registry: RegistryServer,
    tmp_path: Path,
    kind: str,
) -> None:
    mirror_world, files = world
    config = str(mirror_world.registries_config)
    with KindProxy(target_registry.host, kind, quay_nested=True) as proxy:
        kind_config = tmp_path / "registries.yaml"
        kind_config.write_text(
            Path(config).read_text(encoding="utf-8") + f"  {proxy.host}:\n    kind: {kind}\n",
            encoding="utf-8",
        )
        runs = [_file_for(m, proxy.host, tmp_path) for m in files]
        for path, target_args in runs:
            synced = run("sync", "-i", str(path), *target_args,
                         "--registries-config", str(kind_config))  # fmt: skip
            assert synced.exit_code == 0, synced.output
        # Every chunk within the kind's limit; a refused mount followed by nothing but its
        # upload (no second try, no token dance), and never asked again for the same pair.
        assert all(r.size <= GHCR_MAX_CHUNK for r in proxy.log if r.method == "PATCH")
        mounts = [r.path for r in proxy.log if r.method == "POST" and "mount=" in r.path]
        assert len(mounts) == len(set(mounts))
        if kind == "harbor":
            refused = {_pair(p) for p in mounts}
            assert len(refused) == len(mounts)
        assert not proxy.statuses(429)
        proxy.clear()
        for path, target_args in runs:
            again = run("plan", "-i", str(path), *target_args, "--registries-config",
                        str(kind_config), "--format", "json", "--detailed-exitcode")  # fmt: skip
            assert again.exit_code == 0, again.output
            changes = json.loads(again.stdout)["changes"]
            assert {c["action"] for c in changes} == {"skip"}
            assert {s["action"] for c in changes for s in c["subchanges"]} <= {"skip"}
        assert proxy.manifest_gets() == []  # a skip costs no manifest GET at the target
    for mirrored in files:
        expected = expected_digests(target_registry, PREFIX, mirrored.unique())
        assert target_digests(target_registry, expected) == expected


def _pair(path: str) -> str:
    """target repository and mount source of a mount request: the pair."""
    return path.split("/blobs/")[0] + "|" + path.split("from=")[1].split("&")[0]


def test_a_skip_costs_no_manifest_get_at_the_source(
    source_registry: RegistryServer, target_registry: RegistryServer, tmp_path: Path
) -> None:
    """Docker Hub as a source: HEADs decide a skip; the allowance is shown when it is low."""
    with KindProxy(source_registry.host, "dockerhub", quota=12) as hub:
        push_image(source_registry.host, "team/app", "1.0", layers=1, seed=7)
        images = tmp_path / "images.yaml"
        images.write_text(
            f'target: {target_registry.host}/m\nimages:\n- source: "{hub.host}/team/app:1.0"\n',
            encoding="utf-8",
        )
        assert run("sync", "-i", str(images)).exit_code == 0
        hub.clear()
        planned = run("plan", "-i", str(images))
        assert planned.exit_code == 0, planned.output
        assert "= skip" in planned.output or "unchanged" in planned.output
        assert hub.manifest_gets() == []
        assert "more pulls now" in planned.output  # 12 - 3 pulls: low, shown


def test_a_docker_hub_quota_stops_the_run_at_that_registry(
    source_registry: RegistryServer, target_registry: RegistryServer, tmp_path: Path
) -> None:
    with KindProxy(source_registry.host, "dockerhub", quota=5) as hub:
        lines = []
        for n in range(10):
            push_image(source_registry.host, f"team/app{n}", "1.0", platforms=(("linux", "amd64"),),
                       index=False, layers=1, seed=100 + n)  # fmt: skip
            lines.append(f'- source: "{hub.host}/team/app{n}:1.0"\n  amd64Only: true\n')
        images = tmp_path / "images.yaml"
        images.write_text(f"target: {target_registry.host}/m\nimages:\n" + "".join(lines))
        planned = run("plan", "-i", str(images), "--format", "json", "--no-signatures")
        assert planned.exit_code != 0
        changes = json.loads(planned.stdout)["changes"]
        actions = [c["action"] for c in changes]
        assert actions.count("create") == 5, planned.output
        quota = [c for c in changes if c["action"] == "error"]
        assert len(quota) == 5 and all("quota" in c["reason"] for c in quota)
        assert len(hub.statuses(429)) <= 1
        assert not [r for r in hub.log if r.status == 429 and r.method != "GET"]
    # Nothing was written: plan writes nothing, and no tag of a quota'd image exists.
    assert not [t for t in target_registry_tags(target_registry)]


def test_a_sync_past_a_docker_hub_quota_lands_what_it_planned_whole(
    source_registry: RegistryServer, target_registry: RegistryServer, tmp_path: Path
) -> None:
    """The same quota of 5 under sync: the 5 images planned land whole (skopeo reads each),
    the 5 left say so and have no tag, and at most one 429 is received."""
    with KindProxy(source_registry.host, "dockerhub", quota=5) as hub:
        pushed, lines = {}, []
        for n in range(10):
            pushed[n] = push_image(source_registry.host, f"team/app{n}", "1.0",
                                   platforms=(("linux", "amd64"),), index=False, layers=1,
                                   seed=200 + n)  # fmt: skip
            lines.append(f'- source: "{hub.host}/team/app{n}:1.0"\n  amd64Only: true\n')
        images = tmp_path / "images.yaml"
        images.write_text(f"target: {target_registry.host}/m\nimages:\n" + "".join(lines))
        synced = run("sync", "-i", str(images), "--no-signatures")
        assert synced.exit_code == 1, synced.output
        assert synced.output.count("quota") >= 5
        assert len(hub.statuses(429)) <= 1
        landed = []
        for n, image in pushed.items():
            tag = f"{target_registry.host}/m/{hub.host.replace(':', '-')}/team/app{n}:1.0"
            try:
                digest = inspect_digest(tag)
            except SkopeoError:  # no such tag: an image the quota left
                continue
            assert digest == image.digest
            landed.append(n)
        assert len(landed) == 5


@pytest.mark.parametrize("kind", ["ghcr", "gar", "distribution"])
def test_a_large_blob_goes_up_as_its_registry_takes_it(
    source_registry: RegistryServer,
    target_registry: RegistryServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
) -> None:
    """A 10 MiB layer above a 1 MiB chunk threshold: GHCR gets chunks of 4 MiB at most (its
    limit, not the 16 MiB default), GAR one monolithic upload (chunks documented as
    unsupported), the reference registry 16 MiB chunks, which is the whole layer in the
    closing PUT. Each lands digest-exact."""
    monkeypatch.setenv("IMAGESYNC_CHUNK_THRESHOLD", str(1024 * 1024))
    layer = 10 * 1024 * 1024
    image = push_image(source_registry.host, "team/big", "1.0", platforms=(("linux", "amd64"),),
                       index=False, layers=1, layer_size=layer, seed=70)  # fmt: skip
    with KindProxy(target_registry.host, kind) as proxy:
        config = tmp_path / "registries.yaml"
        config.write_text(f"registries:\n  {proxy.host}:\n    kind: {kind}\n", encoding="utf-8")
        images = tmp_path / "images.yaml"
        images.write_text(
            f"target: {proxy.host}/m\nimages:\n"
            f'- source: "{source_registry.host}/team/big:1.0"\n  amd64Only: true\n',
            encoding="utf-8",
        )
        synced = run("sync", "-i", str(images), "--registries-config", str(config))
        assert synced.exit_code == 0, synced.output
        patches = [r for r in proxy.log if r.method == "PATCH"]
        assert not proxy.statuses(416)
        if kind == "ghcr":
            assert len(patches) >= 2 and max(r.size for r in patches) <= GHCR_MAX_CHUNK
        else:
            assert not patches
        put = [r for r in proxy.log if r.method == "PUT" and "/blobs/uploads/" in r.path]
        # The layer once, and the config (a few hundred bytes): nothing sent twice.
        assert layer < sum(r.size for r in patches + put) < layer + 4096
    landed = f"{target_registry.host}/m/{source_registry.host.replace(':', '-')}/team/big:1.0"
    assert inspect_digest(landed) == image.digest


def target_registry_tags(target: RegistryServer) -> list[str]:
    import requests

    answer = requests.get(f"http://{target.host}/v2/_catalog", timeout=10)
    return list(answer.json().get("repositories") or [])


@pytest.mark.parametrize("kind", ["harbor", "distribution"])
def test_a_refused_mount_costs_only_the_upload(
    source_registry: RegistryServer, target_registry: RegistryServer, tmp_path: Path, kind: str
) -> None:
    """Two images sharing base layers: the second's mounts are refused (Harbor's 401), copied
    instead, with no failed entry and no second ask for the same pair."""
    with KindProxy(target_registry.host, kind) as harbor:
        for n in range(3):
            push_image(source_registry.host, f"team/app{n}", "1.0", layers=1,
                       base_layers=(2048, 3072), seed=60 + n)  # fmt: skip
        images = tmp_path / "images.yaml"
        images.write_text(
            f"target: {harbor.host}/proj/m\nimages:\n"
            + "".join(f'- source: "{source_registry.host}/team/app{n}:1.0"\n' for n in range(3)),
            encoding="utf-8",
        )
        synced = run("sync", "-i", str(images))
        assert synced.exit_code == 0, synced.output
        mounts = [r for r in harbor.log if r.method == "POST" and "mount=" in r.path]
        assert mounts
        if kind == "harbor":
            assert {r.status for r in mounts} == {401}
            pairs = [_pair(r.path) for r in mounts]
            assert len(pairs) == len(set(pairs))  # a refused pair is not asked again
        # Never a token dance, never a second try of a refused mount.
        assert not [r for r in harbor.log if r.path.startswith("/token")]


def test_quay_refuses_nested_names_and_artifacts_per_entry(
    source_registry: RegistryServer, target_registry: RegistryServer, tmp_path: Path
) -> None:
    with KindProxy(target_registry.host, "quay") as quay:
        push_image(source_registry.host, "team/app", "1.0", layers=1, seed=3)
        config = tmp_path / "registries.yaml"
        config.write_text(f"registries:\n  {quay.host}:\n    kind: quay\n", encoding="utf-8")
        images = tmp_path / "images.yaml"
        images.write_text(
            f"target: {quay.host}/org\nimages:\n"
            f'- source: "{source_registry.host}/team/app:1.0"\n'
            f'- source: "{source_registry.host}/team/app:1.0"\n  tag: "2.0"\n',
            encoding="utf-8",
        )
        synced = run("sync", "-i", str(images), "--registries-config", str(config))
        assert synced.exit_code != 0
        assert "FEATURE_EXTENDED_REPOSITORY_NAMES" in synced.output, synced.output


def test_quay_refuses_an_artifact_alone_naming_its_settings(
    source_registry: RegistryServer, target_registry: RegistryServer, tmp_path: Path
) -> None:
    """Quay without FEATURE_GENERAL_OCI_SUPPORT (nested names allowed here): the Helm chart's
    entry fails with the settings to ask for, the image beside it lands."""
    from tests.harness.images import push_helm_chart

    with KindProxy(target_registry.host, "quay", quay_nested=True) as quay:
        image = push_image(source_registry.host, "team/app", "1.0", layers=1, seed=5)
        push_helm_chart(source_registry.host, "charts/mychart", "0.1.0", seed=5)
        config = tmp_path / "registries.yaml"
        config.write_text(f"registries:\n  {quay.host}:\n    kind: quay\n", encoding="utf-8")
        images = tmp_path / "images.yaml"
        images.write_text(
            f"target: {quay.host}/org\nimages:\n"
            f'- source: "{source_registry.host}/charts/mychart:0.1.0"\n'
            f'- source: "{source_registry.host}/team/app:1.0"\n',
            encoding="utf-8",
        )
        synced = run("sync", "-i", str(images), "--registries-config", str(config))
        assert synced.exit_code == 1, synced.output
        assert "FEATURE_GENERAL_OCI_SUPPORT" in synced.output, synced.output
        refused = [r for r in quay.log if r.method == "PUT" and r.status == 415]
        assert refused
        landed = f"{target_registry.host}/org/{source_registry.host.replace(':', '-')}/team/app:1.0"
        assert inspect_digest(landed) == image.digest


def test_acr_refused_tag_list_falls_back_to_heads(
    source_registry: RegistryServer, target_registry: RegistryServer, tmp_path: Path
) -> None:
    """A source whose tag list is refused (ACR without metadata_read): its cosign tags are
    found by HEAD, the image plans without a warning."""
    from tests.harness.images import push_cosign_signature

    with KindProxy(source_registry.host, "acr") as acr:
        image = push_image(source_registry.host, "team/app", "1.0", layers=1, seed=4)
        push_cosign_signature(source_registry.host, "team/app", image.digest)
        images = tmp_path / "images.yaml"
        images.write_text(
            f'target: {target_registry.host}/m\nimages:\n- source: "{acr.host}/team/app:1.0"\n',
            encoding="utf-8",
        )
        planned = run("plan", "-i", str(images), "--format", "json")
        assert planned.exit_code == 0, planned.output
        (change,) = json.loads(planned.stdout)["changes"]
        assert [s["kind"] for s in change["subchanges"]] == ["signature"]
        assert not change["warnings"]
