"""Example images for the demo, made from nothing, and the places the demo puts them.

The images (small, deterministic: the same bytes and digests on every run):

- ``demo.example/app:1.0``: an OCI image index over linux/amd64 and linux/arm64, signed (a
  cosign-style ``sha256-<hex>.sig`` signature image beside it; the signature bytes are made
  up, it only has to travel);
- ``demo.example/legacy:2.3``: a Docker manifest list over the same two platforms;
- ``demo.example/tool``: a single-platform linux/amd64 OCI image, synced by digest under a tag
  of our own (``amd64Only: true``);
- later (:func:`later_images`): ``legacy:2.3`` re-published upstream, and ``new:1.0``.

:class:`Layouts` writes them into a tree of OCI image layouts (repository ``R`` in ``DIR/R``,
as ``imagesync --target oci:DIR`` lays it out); :class:`Registry` pushes them to a registry
over plain HTTP; :func:`local_registry` runs a throw-away distribution registry on 127.0.0.1.
Python's standard library only: this is the demo's, apart from imagesync and its tests.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Protocol

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
COSIGN_PAYLOAD = "application/vnd.dev.cosign.simplesigning.v1+json"
REF_NAME = "org.opencontainers.image.ref.name"
PLATFORMS = (("linux", "amd64"), ("linux", "arm64"))


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Image:
    """One tagged manifest (``tag`` None: by digest) and everything below it, as bytes."""

    repository: str
    tag: str | None
    media_type: str
    manifest: bytes
    blobs: list[bytes] = field(default_factory=list)
    children: list[Image] = field(default_factory=list)

    @property
    def digest(self) -> str:
        return digest_of(self.manifest)


def _descriptor(media_type: str, data: bytes) -> dict[str, object]:
    return {"mediaType": media_type, "digest": digest_of(data), "size": len(data)}


def _json(value: object) -> bytes:
    # Indented on purpose: a tool that re-encoded manifests would change their digests.
    return json.dumps(value, indent=3).encode()


def _single(repository: str, platform: tuple[str, str], seed: str, docker: bool) -> Image:
    layer = hashlib.sha256(f"{seed}/{platform}".encode()).digest() * 2048  # 64 KiB
    config = json.dumps(
        {
            "architecture": platform[1],
            "os": platform[0],
            "rootfs": {"type": "layers", "diff_ids": [digest_of(layer)]},
            "config": {"Labels": {"demo": seed}},
        }
    ).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST if docker else OCI_MANIFEST,
        "config": _descriptor(DOCKER_CONFIG if docker else OCI_CONFIG, config),
        "layers": [_descriptor(DOCKER_LAYER if docker else OCI_LAYER, layer)],
    }
    return Image(repository, None, str(manifest["mediaType"]), _json(manifest), [config, layer])


def _index(repository: str, tag: str, seed: str, docker: bool) -> Image:
    children = [_single(repository, platform, seed, docker) for platform in PLATFORMS]
    entries = [
        {
            **_descriptor(child.media_type, child.manifest),
            "platform": {"os": p[0], "architecture": p[1]},
        }
        for child, p in zip(children, PLATFORMS, strict=True)
    ]
    media_type = DOCKER_LIST if docker else OCI_INDEX
    index = {"schemaVersion": 2, "mediaType": media_type, "manifests": entries}
    return Image(repository, tag, media_type, _json(index), children=children)


def _signature(subject: Image) -> Image:
    payload = json.dumps(
        {
            "critical": {
                "identity": {"docker-reference": subject.repository},
                "image": {"docker-manifest-digest": subject.digest},
                "type": "cosign container image signature",
            },
            "optional": None,
        }
    ).encode()
    config = json.dumps({"architecture": "", "os": "", "rootfs": {"type": "layers"}}).encode()
    layer = {
        **_descriptor(COSIGN_PAYLOAD, payload),
        "annotations": {"dev.cosignproject.cosign/signature": "MEUCIQDdemoOnlyNotASignature=="},
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": _descriptor(OCI_CONFIG, config),
        "layers": [layer],
    }
    tag = subject.digest.replace(":", "-") + ".sig"
    return Image(subject.repository, tag, OCI_MANIFEST, _json(manifest), [config, payload])


def example_images(prefix: str = "demo.example") -> list[Image]:
    """The demo's images under ``prefix`` (a registry host, or a name for the images file)."""
    app = _index(f"{prefix}/app", "1.0", "app", docker=False)
    legacy = _index(f"{prefix}/legacy", "2.3", "legacy", docker=True)
    tool = _single(f"{prefix}/tool", PLATFORMS[0], "tool", docker=False)
    return [app, _signature(app), legacy, tool]


def later_images(prefix: str = "demo.example") -> list[Image]:
    """What happens upstream after the first sync: ``legacy:2.3`` is re-published (other
    bytes under the same tag; the old manifest stays, by digest), ``new:1.0`` appears."""
    legacy = _index(f"{prefix}/legacy", "2.3", "legacy, rebuilt", docker=True)
    new = _index(f"{prefix}/new", "1.0", "new", docker=False)
    return [legacy, new]


class Writer(Protocol):
    def write(self, image: Image, repository: str) -> None: ...


class Layouts:
    """Writes images into the tree of OCI image layouts ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def write(self, image: Image, repository: str) -> None:
        layout = self.root / repository
        blobs = layout / "blobs" / "sha256"
        blobs.mkdir(parents=True, exist_ok=True)
        (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
        for data in self._everything(image):
            (blobs / digest_of(data).split(":", 1)[1]).write_bytes(data)
        index_file = layout / "index.json"
        index = json.loads(index_file.read_text()) if index_file.exists() else {"manifests": []}
        entry = _descriptor(image.media_type, image.manifest)
        if image.tag:
            entry["annotations"] = {REF_NAME: image.tag}
        index["manifests"] = [
            e for e in index["manifests"] if e.get("annotations", {}).get(REF_NAME) != image.tag
        ] + [entry]
        index_file.write_text(json.dumps({"schemaVersion": 2, **index}))

    def _everything(self, image: Image) -> Iterator[bytes]:
        yield from image.blobs
        for child in image.children:
            yield from self._everything(child)
        yield image.manifest


class Registry:
    """Pushes images to the registry at ``host`` over plain HTTP (the distribution API)."""

    def __init__(self, host: str) -> None:
        self.base = f"http://{host}/v2"

    def write(self, image: Image, repository: str) -> None:
        for blob in image.blobs:
            self._blob(repository, blob)
        for child in image.children:
            self.write(child, repository)
        reference = image.tag or image.digest
        self._send(
            "PUT",
            f"{self.base}/{repository}/manifests/{reference}",
            image.manifest,
            image.media_type,
        )

    def _blob(self, repository: str, data: bytes) -> None:
        started = self._send("POST", f"{self.base}/{repository}/blobs/uploads/", b"")
        location = urllib.parse.urljoin(self.base, started["Location"])
        separator = "&" if "?" in location else "?"
        self._send("PUT", f"{location}{separator}digest={digest_of(data)}", data)

    @staticmethod
    def _send(
        method: str, url: str, body: bytes, media_type: str = "application/octet-stream"
    ) -> Message:
        request = urllib.request.Request(
            url, data=body, method=method, headers={"Content-Type": media_type}
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            headers: Message = answer.headers
            return headers


@contextlib.contextmanager
def local_registry(binary: str | None = None) -> Iterator[str]:
    """A throw-away distribution registry on a free 127.0.0.1 port; its host, until the end.
    The binary: ``IMAGESYNC_REGISTRY_BINARY`` (as the tests'), else Debian's."""
    binary = binary or os.environ.get("IMAGESYNC_REGISTRY_BINARY", "/usr/bin/docker-registry")
    if not shutil.which(binary):
        raise SystemExit(
            f"{binary} is not installed: on Debian or Ubuntu, scripts/setup installs it "
            "(or run the demo without --registries)"
        )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    host = f"127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="imagesync-demo-registry-") as directory:
        config = Path(directory) / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log: {level: error}\n"
            f"storage: {{filesystem: {{rootdirectory: {directory}/storage}}}}\n"
            f"http: {{addr: '{host}', secret: demo-{os.getpid()}}}\n"
        )
        environment = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        process = subprocess.Popen(
            [binary, "serve", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            env=environment,
        )
        try:
            _wait_for(f"http://{host}/v2/", process)
            yield host
        finally:
            process.terminate()
            process.wait(timeout=30)


def _wait_for(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"the registry at {url} did not start")
