"""The test harness itself: real registries start and stop, generated images read back whole
(checked by hand over HTTP and by skopeo), and the auth / TLS variants work.

Every later registry test trusts this harness, so its own mistakes must show up here first.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import socket
import tarfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
import requests

import tests.harness.registry as registry_module
from tests.harness import images, skopeo
from tests.harness.images import Pushed, Pusher
from tests.harness.registry import RegistryServer
from tests.harness.tokenserver import TokenServer


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def read_back(pusher: Pusher, pushed: Pushed) -> None:
    """Read ``pushed`` back by hand: tag, children by digest, configs, blobs."""
    assert pushed.tag is not None
    response = pusher.get_manifest(pushed.repository, pushed.tag)
    assert response.status_code == 200, response.text
    assert response.content == pushed.raw
    assert sha256(response.content) == pushed.digest
    assert response.headers["Docker-Content-Digest"] == pushed.digest
    assert response.headers["Content-Type"] == pushed.media_type
    listed = response.json()
    manifests = pushed.manifests if pushed.is_index else (pushed,)
    if pushed.is_index:
        assert [m["digest"] for m in listed["manifests"]] == list(pushed.children)
        platforms = [
            "/".join(
                filter(
                    None,
                    (
                        m["platform"]["os"],
                        m["platform"]["architecture"],
                        m["platform"].get("variant"),
                    ),
                )
            )
            for m in listed["manifests"]
        ]
        assert tuple(platforms) == pushed.platforms
    for child in manifests:
        fetched = pusher.fetch_manifest(pushed.repository, child.digest)
        assert fetched.raw == child.raw and fetched.digest == child.digest
        assert child.config is not None
        config_response = pusher.session.get(
            f"{pusher.base}/v2/{pushed.repository}/blobs/{child.config.digest}"
        )
        config = config_response.json()
        assert (
            "/".join(filter(None, (config["os"], config["architecture"], config.get("variant"))))
            == child.platform
        )
        for layer in fetched.json["layers"]:
            assert pusher.blob_digest(pushed.repository, layer["digest"]) == layer["digest"]
    for blob in pushed.blobs:
        head = pusher.session.head(f"{pusher.base}/v2/{pushed.repository}/blobs/{blob.digest}")
        assert head.status_code == 200
        assert int(head.headers["Content-Length"]) == blob.size


@pytest.mark.parametrize("tmpfs", [True, False])
def test_registry_starts_quickly_empty_and_stops(tmp_path: Path, tmpfs: bool) -> None:
    started = time.monotonic()
    server = RegistryServer(tmp_path / "r", tmpfs=tmpfs)
    assert time.monotonic() - started < 2.0
    try:
        assert server.host.startswith("127.0.0.1:") and server.url == f"http://{server.host}"
        assert requests.get(f"{server.url}/v2/", timeout=5).status_code == 200
        catalog = requests.get(f"{server.url}/v2/_catalog", timeout=5).json()
        assert catalog == {"repositories": []}
        config = server.config
        assert config["http"]["addr"] == server.host
        assert config["storage"]["delete"] == {"enabled": True}
        assert Path(config["storage"]["filesystem"]["rootdirectory"]) == server.storage
        if not tmpfs:
            assert not server.storage.is_relative_to("/dev/shm")
        assert server.ca_file is None and server.credentials is None
    finally:
        server.close()
    assert not server.running and not server.storage.exists()
    with socket.socket() as probe, pytest.raises(OSError):
        probe.connect(("127.0.0.1", server.port))


def test_start_failure_shows_the_log(tmp_path: Path) -> None:
    with pytest.raises(pytest.fail.Exception) as failed:
        RegistryServer(tmp_path / "r", extra_config={"storage": {"nosuchdriver": {}}})
    assert "did not answer" in str(failed.value)
    assert "nosuchdriver" in str(failed.value)  # the registry's own complaint, from its log


@pytest.mark.parametrize("ci", ["true", ""])
def test_missing_registry_binary_fails_in_ci_and_skips_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ci: str
) -> None:
    monkeypatch.setattr(registry_module, "REGISTRY_BINARY", str(tmp_path / "docker-registry"))
    monkeypatch.setenv("CI", ci)
    expected = pytest.fail.Exception if ci else pytest.skip.Exception
    with pytest.raises(expected) as outcome:
        RegistryServer(tmp_path / "r")
    assert "apt-get install -y docker-registry" in str(outcome.value)


def test_missing_skopeo_fails_in_ci(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(skopeo, "SKOPEO", str(tmp_path / "skopeo"))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y skopeo"):
        skopeo.inspect_raw("127.0.0.1:1/x:y")


@pytest.mark.parametrize(
    ("kind", "platforms", "media_type"),
    [
        ("oci", [("linux", "amd64"), ("linux", "arm64")], images.OCI_INDEX),
        ("docker", ["linux/amd64", "linux/arm/v7"], images.DOCKER_LIST),
    ],
)
def test_multi_platform_image_reads_back_whole(
    registry: RegistryServer, kind: str, platforms: list[Any], media_type: str, tmp_path: Path
) -> None:
    pushed = images.push_image(registry, "team/app", "1.0", platforms, kind=kind, layers=3)
    assert pushed.media_type == media_type
    assert len(pushed.children) == 2 and len(set(pushed.children)) == 2
    assert pushed.blob_count == 2 * (1 + 3)
    assert pushed.total_bytes == pushed.blob_bytes + pushed.size + sum(
        m.size for m in pushed.manifests
    )
    read_back(Pusher(registry), pushed)
    images.assert_complete(registry, "team/app", pushed, check_blob_bytes=True)

    reference = registry.reference("team/app", "1.0")
    assert skopeo.inspect_raw(reference) == pushed.raw
    assert skopeo.inspect_digest(reference) == pushed.digest
    arm = pushed.platforms[1]
    inspected = skopeo.inspect(reference, platform=arm)
    assert inspected["Digest"] == pushed.digest
    assert inspected["Architecture"] == arm.split("/")[1]
    assert (
        skopeo.inspect_digest(registry.reference("team/app", pushed.children[1]))
        == (pushed.child_by_platform[arm])
    )
    copied = skopeo.copy_to_dir(reference, tmp_path / "copy")
    assert (copied / "manifest.json").read_bytes() == pushed.raw
    for child in pushed.manifests:
        hexdigest = child.digest.removeprefix("sha256:")
        assert (copied / f"{hexdigest}.manifest.json").read_bytes() == child.raw


@pytest.mark.parametrize(
    ("kind", "media_type", "config_type"),
    [
        ("oci", images.OCI_MANIFEST, images.OCI_CONFIG),
        ("docker", images.DOCKER_MANIFEST, images.DOCKER_CONFIG),
    ],
)
def test_single_platform_image(
    registry: RegistryServer, kind: str, media_type: str, config_type: str
) -> None:
    pushed = images.push_image(registry, "team/one", "v1", ["linux/arm64"], kind=kind, index=False)
    assert pushed.media_type == media_type and pushed.platforms == ("linux/arm64",)
    assert pushed.children == () and pushed.blob_count == 3
    read_back(Pusher(registry), pushed)
    assert json.loads(pushed.raw)["config"]["mediaType"] == config_type
    config = json.loads(skopeo.inspect_raw(registry.reference("team/one", "v1"), config=True))
    assert (config["os"], config["architecture"]) == ("linux", "arm64")


def test_seeds_are_deterministic_and_distinct(
    source_registry: RegistryServer, target_registry: RegistryServer
) -> None:
    one = images.push_image(source_registry, "a/b", "1", seed=7)
    again = images.push_image(target_registry, "other/name", "2", seed=7)
    other = images.push_image(source_registry, "a/b", "3", seed=8)
    assert one.raw == again.raw and one.digest == again.digest and one.blobs == again.blobs
    assert one.digest != other.digest
    assert not set(one.blobs) & set(other.blobs)
    more_layers = images.push_image(source_registry, "a/b", "4", seed=7, layers=3)
    shared = set(one.blobs) & set(more_layers.blobs)
    assert len(shared) == 4  # two layers per platform; the configs differ


def test_manifest_bytes_are_stored_as_sent(registry: RegistryServer) -> None:
    pusher = Pusher(registry)
    config = images.push_blob(registry, "raw/repo", b'{"architecture":"amd64","os":"linux"}')
    layer = images.push_blob(registry, "raw/repo", iter([b"abc", b"", b"def"]))
    assert layer == images.Blob(sha256(b"abcdef"), 6)
    config_descriptor = f'"mediaType": "{images.OCI_CONFIG}", "digest": "{config.digest}"'
    layer_descriptor = f'"mediaType": "{images.OCI_LAYER}", "digest": "{layer.digest}"'
    body = (
        f'{{ "schemaVersion" : 2,\n\t"mediaType": "{images.OCI_MANIFEST}", '
        f'"config": {{{config_descriptor}, "size": {config.size}}}, '
        f'"layers": [{{{layer_descriptor}, "size": 6}}]   }}\n'
    ).encode()
    digest = images.push_manifest_raw(registry, "raw/repo", "odd", body, images.OCI_MANIFEST)
    assert digest == sha256(body)
    fetched = pusher.fetch_manifest("raw/repo", "odd")
    assert fetched.raw == body and fetched.header_digest == digest
    assert pusher.tags("raw/repo") == ["odd"]
    pusher.delete_manifest("raw/repo", digest)  # 2.8 deletes by digest only; tags go with it
    assert not pusher.manifest_exists("raw/repo", "odd")


def test_big_layers_stream_without_holding_them(registry: RegistryServer) -> None:
    size = 48 * 1024 * 1024
    tracemalloc.start()
    try:
        pushed = images.push_image(registry, "big/one", "1", index=False, layers=[size, 3])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 12 * 1024 * 1024, peak
    assert pushed.blobs[1] == images.Blob(
        images.layer_digest(images.stable_seed(1, ("linux", "amd64"), 0, size), size), size
    )
    pusher = Pusher(registry)
    assert pusher.blob_digest("big/one", pushed.blobs[1].digest) == pushed.blobs[1].digest
    # Resumable chunked upload (PATCH with Content-Range), and chunked transfer encoding.
    chunked = images.push_blob(
        registry, "big/two", images.layer_chunks(3, 5_000_000), chunk_size=2_000_000
    )
    assert chunked == images.Blob(images.layer_digest(3, 5_000_000), 5_000_000)
    unsized = images.push_blob(registry, "big/two", images.layer_chunks(4, 3_000_000))
    assert unsized == images.Blob(images.layer_digest(4, 3_000_000), 3_000_000)


def test_cosign_signature_layout(registry: RegistryServer) -> None:
    image = images.push_image(registry, "team/signed", "1.0")
    signature = images.push_cosign_signature(registry, "team/signed", image)
    hexdigest = image.digest.removeprefix("sha256:")
    assert signature.tag == f"sha256-{hexdigest}.sig"
    raw = skopeo.inspect_raw(registry.reference("team/signed", signature.tag))
    assert raw == signature.raw
    layer = json.loads(raw)["layers"][0]
    assert layer["mediaType"] == "application/vnd.dev.cosign.simplesigning.v1+json"
    assert layer["annotations"]["dev.cosignproject.cosign/signature"]
    payload = (
        Pusher(registry)
        .session.get(f"{registry.url}/v2/team/signed/blobs/{layer['digest']}")
        .json()
    )
    assert payload["critical"]["image"]["docker-manifest-digest"] == image.digest
    attestation = images.push_cosign_signature(registry, "team/signed", image.digest, suffix=".att")
    assert attestation.tag == f"sha256-{hexdigest}.att"
    tags = skopeo.list_tags(registry.reference("team/signed"))
    assert sorted(tags) == sorted(["1.0", signature.tag, attestation.tag])


def test_referrers_with_subject_and_tag_schema(registry: RegistryServer) -> None:
    image = images.push_image(registry, "team/ref", "1.0")
    sbom = images.push_referrer(registry, "team/ref", image)
    other = images.push_referrer(
        registry, "team/ref", image.digest, artifact_type="application/vnd.example+json", seed=2
    )
    pusher = Pusher(registry)
    manifest = pusher.fetch_manifest("team/ref", sbom.digest).json
    assert manifest["artifactType"] == "application/spdx+json"
    assert manifest["subject"] == {
        "mediaType": images.OCI_INDEX,
        "digest": image.digest,
        "size": image.size,
    }
    assert pusher.fetch_manifest("team/ref", other.digest).json["subject"]["digest"] == (
        image.digest
    )
    schema = pusher.fetch_manifest("team/ref", images.cosign_tag(image.digest, ""))
    assert schema.media_type == images.OCI_INDEX
    assert [m["digest"] for m in schema.json["manifests"]] == [sbom.digest, other.digest]
    assert [m["artifactType"] for m in schema.json["manifests"]] == [
        "application/spdx+json",
        "application/vnd.example+json",
    ]
    # Registry 2.8 has no referrers API: tests of it need a fake, named as such.
    answer = pusher.session.get(f"{registry.url}/v2/team/ref/referrers/{image.digest}")
    assert answer.status_code == 404


def test_artifacts_as_their_tools_write_them(registry: RegistryServer) -> None:
    pusher = Pusher(registry)
    chart = images.push_helm_chart(registry, "charts/mychart", "0.1.0", provenance=True)
    assert chart.tag == "0.1.0"  # helm's strict mode: the tag is the version
    manifest = json.loads(skopeo.inspect_raw(registry.reference("charts/mychart", "0.1.0")))
    assert "mediaType" not in manifest  # helm sets none; the registry serves it as OCI
    assert pusher.fetch_manifest("charts/mychart", "0.1.0").media_type == images.OCI_MANIFEST
    assert manifest["config"]["mediaType"] == images.HELM_CONFIG
    assert [layer["mediaType"] for layer in manifest["layers"]] == [
        images.HELM_CHART,
        images.HELM_PROVENANCE,
    ]
    assert manifest["annotations"]["org.opencontainers.image.title"] == "mychart"
    assert manifest["annotations"]["org.opencontainers.image.version"] == "0.1.0"
    config = json.loads(pusher.get_blob("charts/mychart", manifest["config"]["digest"]))
    assert (config["name"], config["version"], config["apiVersion"]) == ("mychart", "0.1.0", "v2")
    package = pusher.get_blob("charts/mychart", manifest["layers"][0]["digest"])
    with tarfile.open(fileobj=io.BytesIO(package), mode="r:gz") as archive:
        chart_yaml = archive.extractfile("mychart/Chart.yaml")
        assert chart_yaml is not None and b"version: 0.1.0" in chart_yaml.read()

    wasm = images.push_wasm_module(registry, "wasm/hello", "1.0")
    manifest = json.loads(wasm.raw)
    assert manifest["config"]["mediaType"] == images.WASM_CONFIG
    assert "artifactType" not in manifest
    assert pusher.get_blob("wasm/hello", manifest["layers"][0]["digest"]).startswith(b"\0asm")
    config = json.loads(pusher.get_blob("wasm/hello", manifest["config"]["digest"]))
    assert config["layerDigests"] == [manifest["layers"][0]["digest"]]

    policy = images.push_artifact(registry, "policy/bundle", "1.0")
    manifest = json.loads(skopeo.inspect_raw(registry.reference("policy/bundle", "1.0")))
    assert manifest["artifactType"] == policy.artifact_type
    assert manifest["config"]["mediaType"] == images.OCI_EMPTY
    assert pusher.get_blob("policy/bundle", manifest["config"]["digest"]) == b"{}"
    assert base64.b64decode(manifest["config"]["data"]) == b"{}"

    members = [
        images.push_wasm_module(registry, "bundles/all", None),
        images.push_artifact(registry, "bundles/all", None),
    ]
    index = images.push_index(
        registry, "bundles/all", "1.0", members, artifact_type="application/vnd.example.b"
    )
    listed = json.loads(skopeo.inspect_raw(registry.reference("bundles/all", "1.0")))
    assert listed["artifactType"] == "application/vnd.example.b"
    assert [m.get("artifactType") for m in listed["manifests"]] == [None, policy.artifact_type]
    images.assert_complete(registry, "bundles/all", index, check_blob_bytes=True)
    # An index whose child is also its subject, listed in its subject's tag-schema index.
    cycle = images.push_index(registry, "bundles/all", None, [index], subject=index)
    assert json.loads(cycle.raw)["subject"]["digest"] == index.digest
    schema = pusher.fetch_manifest("bundles/all", images.cosign_tag(index.digest, ""))
    assert [m["digest"] for m in schema.json["manifests"]] == [cycle.digest]


def test_basic_auth_variant(basic_auth_registry: RegistryServer) -> None:
    server = basic_auth_registry
    assert server.credentials is not None
    user, password = server.credentials
    assert requests.get(f"{server.url}/v2/", timeout=5).status_code == 401
    assert requests.get(f"{server.url}/v2/", auth=(user, "wrong"), timeout=5).status_code == 401
    assert requests.get(f"{server.url}/v2/", auth=(user, password), timeout=5).status_code == 200
    pushed = images.push_image(server, "secure/app", "1.0")
    read_back(Pusher(server), pushed)
    assert skopeo.inspect_digest(server.reference("secure/app", "1.0"), registry=server) == (
        pushed.digest
    )
    with pytest.raises(skopeo.SkopeoError):
        skopeo.inspect_raw(server.reference("secure/app", "1.0"))
    assert server.config["auth"]["htpasswd"]["path"]
    assert password not in (server.directory / "htpasswd").read_text()


def test_tls_variant(tls_registry: RegistryServer) -> None:
    server = tls_registry
    assert server.url == f"https://{server.host}" and server.ca_file is not None
    assert requests.get(f"{server.url}/v2/", verify=str(server.ca_file), timeout=5).ok
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{server.url}/v2/", timeout=5)
    localhost = server.url.replace("127.0.0.1", "localhost")
    assert requests.get(f"{localhost}/v2/", verify=str(server.ca_file), timeout=5).ok
    pushed = images.push_image(server, "tls/app", "1.0", kind="docker")
    read_back(Pusher(server), pushed)
    reference = server.reference("tls/app", "1.0")
    assert skopeo.inspect_digest(reference, registry=server) == pushed.digest  # verifies TLS
    assert server.cert_dir is not None
    assert sorted(p.name for p in server.cert_dir.iterdir()) == ["ca.crt"]


def test_token_auth_hook(token_registry: RegistryServer, token_server: TokenServer) -> None:
    server = token_registry
    assert server.config["auth"] == token_server.registry_auth()
    challenge = requests.get(f"{server.url}/v2/", timeout=5)
    assert challenge.status_code == 401
    assert challenge.headers["WWW-Authenticate"].startswith(f'Bearer realm="{token_server.realm}"')
    pusher_creds = ("pusher", token_server.users["pusher"])
    reader_creds = ("reader", token_server.users["reader"])
    pushed = images.push_image(server, "tok/app", "1.0", credentials=pusher_creds)
    read_back(Pusher(server, credentials=reader_creds), pushed)
    assert skopeo.inspect_digest(server.reference("tok/app", "1.0"), creds=reader_creds) == (
        pushed.digest
    )
    with pytest.raises(AssertionError, match="401"):
        images.push_image(server, "tok/other", "1.0", credentials=reader_creds)
    assert any(user == "pusher" for user, _ in token_server.issued)


def test_shared_registry_is_usable(shared_registry: RegistryServer) -> None:
    pushed = images.push_image(shared_registry, "harness/shared-read", "x", seed=11)
    images.assert_complete(shared_registry, "harness/shared-read", pushed)
