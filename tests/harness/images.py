"""Generated test images, pushed with plain HTTP requests — an independent producer.

Nothing here uses imagesync's code: a bug there cannot hide itself by being on both sides of a
test. Layers are deterministic pseudo-random bytes from a seed (different seeds, different
digests) and are streamed, so a 1 GiB layer never sits in memory.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import requests

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
COSIGN_SIGNATURE = "application/vnd.dev.cosign.simplesigning.v1+json"
CHUNK = 1024 * 1024

Platform = tuple[str, str] | tuple[str, str, str]


@dataclass(frozen=True)
class Pushed:
    """What was pushed: the tagged manifest and everything below it."""

    repository: str
    tag: str | None
    digest: str
    media_type: str
    raw: bytes
    children: tuple[str, ...] = ()
    blobs: tuple[tuple[str, int], ...] = ()

    @property
    def size(self) -> int:
        return len(self.raw)

    @property
    def blob_count(self) -> int:
        return len(self.blobs)

    @property
    def blob_bytes(self) -> int:
        return sum(size for _, size in self.blobs)

    def descriptor(self) -> dict[str, object]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Pusher:
    """Talks to one registry: ``host`` plus an optional session (TLS trust, basic auth)."""

    def __init__(self, host: str, session: requests.Session | None = None, scheme: str = "http"):
        self.base = f"{scheme}://{host}"
        self.session = session or requests.Session()

    def blob(self, repository: str, data: bytes) -> str:
        return self.stream_blob(repository, lambda: iter([data]), digest_of(data), len(data))

    def stream_blob(self, repository: str, chunks, digest: str, size: int) -> str:  # type: ignore[no-untyped-def]
        if self.session.head(f"{self.base}/v2/{repository}/blobs/{digest}").status_code == 200:
            return digest
        start = self.session.post(f"{self.base}/v2/{repository}/blobs/uploads/")
        assert start.status_code == 202, start.text
        location = start.headers["Location"]
        if location.startswith("/"):
            location = self.base + location
        separator = "&" if "?" in location else "?"
        body = _Stream(chunks(), size)
        done = self.session.put(
            f"{location}{separator}digest={digest}",
            data=body,
            headers={"Content-Type": "application/octet-stream"},
        )
        assert done.status_code == 201, done.text
        return digest

    def manifest(self, repository: str, reference: str, raw: bytes, media_type: str) -> str:
        response = self.session.put(
            f"{self.base}/v2/{repository}/manifests/{reference}",
            data=raw,
            headers={"Content-Type": media_type},
        )
        assert response.status_code == 201, response.text
        return digest_of(raw)

    def get_manifest(self, repository: str, reference: str) -> requests.Response:
        accept = ", ".join([OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST])
        return self.session.get(
            f"{self.base}/v2/{repository}/manifests/{reference}", headers={"Accept": accept}
        )


class _Stream:
    """A sized file-like body, so requests sends Content-Length and reads it in blocks."""

    def __init__(self, chunks: Iterator[bytes], size: int) -> None:
        self._chunks = chunks
        self._size = size
        self._buffer = b""

    def __len__(self) -> int:
        return self._size

    def read(self, size: int = -1) -> bytes:
        if not self._buffer:
            self._buffer = next(self._chunks, b"")
        if size is None or size < 0:
            size = len(self._buffer)
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data


def _stable_seed(*parts: object) -> int:
    # hash() of strings changes between processes; tests and benchmarks need the same bytes.
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "big")


def layer_chunks(seed: int, size: int) -> Iterator[bytes]:
    generator = random.Random(seed)
    left = size
    while left > 0:
        step = min(CHUNK, left)
        yield generator.randbytes(step)
        left -= step


def layer_digest(seed: int, size: int) -> str:
    digest = hashlib.sha256()
    for chunk in layer_chunks(seed, size):
        digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def push_single(
    pusher: Pusher,
    repository: str,
    reference: str | None,
    platform: Platform,
    *,
    kind: str = "oci",
    layers: int = 2,
    layer_size: int = 1024,
    seed: int = 1,
) -> Pushed:
    """A single-platform image manifest; ``reference`` None pushes it by digest only."""
    docker = kind == "docker"
    config: dict[str, object] = {
        "architecture": platform[1],
        "os": platform[0],
        "rootfs": {"type": "layers", "diff_ids": []},
        "config": {"Labels": {"seed": str(seed)}},
    }
    if len(platform) == 3:
        config["variant"] = platform[2]
    config_raw = json.dumps(config, sort_keys=True).encode()
    blobs = [(pusher.blob(repository, config_raw), len(config_raw))]
    layer_descriptors = []
    for number in range(layers):
        layer_seed = _stable_seed(seed, platform, number)
        digest = layer_digest(layer_seed, layer_size)
        pusher.stream_blob(
            repository,
            lambda s=layer_seed: layer_chunks(s, layer_size),
            digest,
            layer_size,
        )
        blobs.append((digest, layer_size))
        layer_descriptors.append(
            {
                "mediaType": DOCKER_LAYER if docker else OCI_LAYER,
                "digest": digest,
                "size": layer_size,
            }
        )
    media_type = DOCKER_MANIFEST if docker else OCI_MANIFEST
    manifest = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {
            "mediaType": DOCKER_CONFIG if docker else OCI_CONFIG,
            "digest": blobs[0][0],
            "size": len(config_raw),
        },
        "layers": layer_descriptors,
    }
    raw = json.dumps(manifest, indent=3).encode()  # indent: bytes a re-serialiser would change
    digest = digest_of(raw)
    pusher.manifest(repository, reference or digest, raw, media_type)
    return Pushed(repository, reference, digest, media_type, raw, (), tuple(blobs))


def push_image(
    host: str,
    repository: str,
    tag: str | None,
    platforms: Sequence[Platform] = (("linux", "amd64"), ("linux", "arm64")),
    *,
    kind: str = "oci",
    index: bool = True,
    layers: int = 2,
    layer_size: int = 1024,
    seed: int = 1,
    session: requests.Session | None = None,
    scheme: str = "http",
) -> Pushed:
    """Push an image: an OCI index / Docker manifest list over ``platforms`` (``index``), or
    with ``index=False`` a single-platform manifest of ``platforms[0]``."""
    pusher = Pusher(host, session, scheme)
    if not index:
        return push_single(
            pusher,
            repository,
            tag,
            platforms[0],
            kind=kind,
            layers=layers,
            layer_size=layer_size,
            seed=seed,
        )
    children = [
        push_single(
            pusher,
            repository,
            None,
            platform,
            kind=kind,
            layers=layers,
            layer_size=layer_size,
            seed=seed,
        )
        for platform in platforms
    ]
    media_type = DOCKER_LIST if kind == "docker" else OCI_INDEX
    entries = []
    for child, platform in zip(children, platforms, strict=True):
        entry: dict[str, object] = child.descriptor()
        entry["platform"] = {"os": platform[0], "architecture": platform[1]}
        if len(platform) == 3:
            entry["platform"]["variant"] = platform[2]  # type: ignore[index]
        entries.append(entry)
    raw = json.dumps({"schemaVersion": 2, "mediaType": media_type, "manifests": entries}).encode()
    digest = digest_of(raw)
    pusher.manifest(repository, tag or digest, raw, media_type)
    blobs = {b for child in children for b in child.blobs}
    return Pushed(
        repository,
        tag,
        digest,
        media_type,
        raw,
        tuple(c.digest for c in children),
        tuple(sorted(blobs)),
    )


def push_cosign_signature(
    host: str,
    repository: str,
    subject: str,
    *,
    suffix: str = ".sig",
    seed: int = 1,
    session: requests.Session | None = None,
    scheme: str = "http",
) -> Pushed:
    """A signature in cosign's layout: tag ``sha256-<hex>.sig`` with a simple-signing layer."""
    pusher = Pusher(host, session, scheme)
    payload = json.dumps(
        {
            "critical": {
                "identity": {"docker-reference": f"{host}/{repository}"},
                "image": {"docker-manifest-digest": subject},
                "type": "cosign container image signature",
            },
            "optional": {"seed": seed},
        }
    ).encode()
    config_raw = b'{"architecture":"","os":"","config":{},"rootfs":{"type":"layers","diff_ids":[]}}'
    config_digest = pusher.blob(repository, config_raw)
    payload_digest = pusher.blob(repository, payload)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config_raw)},
        "layers": [
            {
                "mediaType": COSIGN_SIGNATURE,
                "digest": payload_digest,
                "size": len(payload),
                "annotations": {"dev.cosignproject.cosign/signature": f"MEUCIQ-test-{seed}"},
            }
        ],
    }
    raw = json.dumps(manifest).encode()
    tag = subject.replace(":", "-") + suffix
    digest = pusher.manifest(repository, tag, raw, OCI_MANIFEST)
    return Pushed(
        repository,
        tag,
        digest,
        OCI_MANIFEST,
        raw,
        (),
        ((config_digest, len(config_raw)), (payload_digest, len(payload))),
    )


def push_referrer(
    host: str,
    repository: str,
    subject: Pushed | dict[str, object],
    *,
    artifact_type: str = "application/spdx+json",
    seed: int = 1,
    update_tag_schema: bool = True,
    session: requests.Session | None = None,
    scheme: str = "http",
) -> Pushed:
    """An OCI 1.1 artifact whose ``subject`` is ``subject``, pushed by digest.

    The distribution registry 2.8 has no referrers API, so (like oras and cosign do against
    such registries) the ``sha256-<hex>`` tag-schema index is updated to list it.
    """
    pusher = Pusher(host, session, scheme)
    subject_descriptor = subject.descriptor() if isinstance(subject, Pushed) else subject
    content = json.dumps({"spdxVersion": "SPDX-2.3", "seed": seed}).encode()
    empty = b"{}"
    empty_digest = pusher.blob(repository, empty)
    content_digest = pusher.blob(repository, content)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": OCI_EMPTY, "digest": empty_digest, "size": 2},
        "layers": [{"mediaType": artifact_type, "digest": content_digest, "size": len(content)}],
        "subject": subject_descriptor,
        "annotations": {"org.opencontainers.image.created": "2026-01-01T00:00:00Z"},
    }
    raw = json.dumps(manifest).encode()
    digest = digest_of(raw)
    pusher.manifest(repository, digest, raw, OCI_MANIFEST)
    if update_tag_schema:
        tag = str(subject_descriptor["digest"]).replace(":", "-")
        existing = pusher.get_manifest(repository, tag)
        entries = existing.json()["manifests"] if existing.status_code == 200 else []
        entries.append(
            {
                "mediaType": OCI_MANIFEST,
                "digest": digest,
                "size": len(raw),
                "artifactType": artifact_type,
            }
        )
        index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
        pusher.manifest(repository, tag, index.encode(), OCI_INDEX)
    return Pushed(
        repository,
        None,
        digest,
        OCI_MANIFEST,
        raw,
        (),
        ((empty_digest, 2), (content_digest, len(content))),
    )
