"""OCI image layouts on disk, written and checked apart from imagesync (image-spec
``image-layout.md``): the layout counterpart of :class:`~tests.harness.images.Pusher`.

:class:`LayoutPusher` is a Pusher whose "registry" is a directory tree: repository ``R`` is the
layout ``DIR/R``, as ``imagesync --target oci:DIR`` and ``skopeo copy … oci:DIR/R:TAG`` lay it
out. Every generator of ``images.py`` (``push_image``, ``push_cosign_signature``,
``push_referrer`` with ``update_tag_schema=False``) writes into it, and ``assert_complete``
reads from it. :func:`layout_problems` says what an ``index.json`` entry lacks.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from tests.harness.images import (
    CHUNK,
    OCI_INDEX,
    Blob,
    Fetched,
    Pusher,
    digest_of,
)

REF_NAME = "org.opencontainers.image.ref.name"
INDEXES = (OCI_INDEX, "application/vnd.docker.distribution.manifest.list.v2+json")


class LayoutPusher(Pusher):
    """Writes blobs, manifests and tags into the layouts of the tree ``root``."""

    def __init__(self, root: Path) -> None:  # no session: nothing goes over the network
        self.root = root
        self.host = f"oci:{root}"

    def layout(self, repository: str) -> Path:
        directory = self.root / repository
        (directory / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        layout_file = directory / "oci-layout"
        if not layout_file.exists():
            layout_file.write_text('{"imageLayoutVersion": "1.0.0"}')
        return directory

    def index(self, repository: str) -> dict[str, Any]:
        path = self.root / repository / "index.json"
        if not path.exists():
            return {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
        index: dict[str, Any] = json.loads(path.read_bytes())
        return index

    def blob_path(self, repository: str, digest: str) -> Path:
        return self.root / repository / "blobs" / Path(*digest.split(":", 1))

    def put_blob(self, repository: str, data: bytes) -> Blob:
        digest = digest_of(data)
        self.layout(repository)
        self.blob_path(repository, digest).write_bytes(data)
        return Blob(digest, len(data))

    def upload_stream(
        self,
        repository: str,
        chunks: Iterable[bytes],
        *,
        size: int | None = None,
        chunk_size: int | None = None,
    ) -> Blob:
        directory = self.layout(repository)
        temporary = directory / "upload.tmp"
        sha256 = hashlib.sha256()
        total = 0
        with temporary.open("wb") as handle:
            for chunk in chunks:
                sha256.update(chunk)
                total += len(chunk)
                handle.write(chunk)
        digest = "sha256:" + sha256.hexdigest()
        temporary.rename(self.blob_path(repository, digest))
        return Blob(digest, total)

    def put_manifest(self, repository: str, reference: str, raw: bytes, media_type: str) -> str:
        """The bytes as a blob; a tag (or a manifest with a subject, untagged) in index.json."""
        digest = self.put_blob(repository, raw).digest
        tagged = not reference.startswith("sha256:")
        if tagged or "subject" in json.loads(raw):
            index = self.index(repository)
            kept = [
                e
                for e in index["manifests"]
                if not (tagged and (e.get("annotations") or {}).get(REF_NAME) == reference)
                and not (not tagged and e.get("digest") == digest)
            ]
            entry: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": len(raw)}
            if tagged:
                entry["annotations"] = {REF_NAME: reference}
            index["manifests"] = [*kept, entry]
            (self.root / repository / "index.json").write_text(json.dumps(index))
        return digest

    def fetch_manifest(self, repository: str, reference: str) -> Fetched:
        digest, media_type = self._resolve(repository, reference)
        raw = self.blob_path(repository, digest).read_bytes()
        assert digest_of(raw) == digest, f"{repository}@{digest} does not hash to its name"
        document = json.loads(raw)
        return Fetched(raw, media_type or document.get("mediaType", ""), None, document)

    def manifest_exists(self, repository: str, reference: str) -> bool:
        try:
            digest, _ = self._resolve(repository, reference)
        except LookupError:
            return False
        return self.blob_path(repository, digest).is_file()

    def blob_exists(self, repository: str, digest: str) -> bool:
        return self.blob_path(repository, digest).is_file()

    def blob_digest(self, repository: str, digest: str) -> str:
        sha256 = hashlib.sha256()
        with self.blob_path(repository, digest).open("rb") as handle:
            while chunk := handle.read(CHUNK):
                sha256.update(chunk)
        return "sha256:" + sha256.hexdigest()

    def tags(self, repository: str) -> list[str]:
        return [
            e["annotations"][REF_NAME]
            for e in self.index(repository)["manifests"]
            if REF_NAME in (e.get("annotations") or {})
        ]

    def _resolve(self, repository: str, reference: str) -> tuple[str, str | None]:
        entries = self.index(repository)["manifests"]
        if reference.startswith("sha256:"):
            listed = [e for e in entries if e["digest"] == reference]
            return reference, listed[0].get("mediaType") if listed else None
        tagged = [e for e in entries if (e.get("annotations") or {}).get(REF_NAME) == reference]
        if len(tagged) != 1:
            raise LookupError(f"{repository}:{reference} is tagged {len(tagged)} times")
        return tagged[0]["digest"], tagged[0].get("mediaType")


def layout_problems(directory: Path) -> list[str]:
    """What the ``index.json`` of the layout ``directory`` points at and the layout lacks: a
    manifest or blob that is absent or does not hash to its name, anywhere below any entry.
    Empty when every entry's image is complete."""
    index_path = directory / "index.json"
    if not index_path.exists():
        return []
    problems: list[str] = []
    seen: set[str] = set()

    def blob(digest: str) -> bytes | None:
        path = directory / "blobs" / Path(*digest.split(":", 1))
        if not path.is_file():
            problems.append(f"{digest} is missing")
            return None
        data = path.read_bytes()
        if digest_of(data) != digest:
            problems.append(f"{digest} does not hash to its name")
            return None
        return data

    def walk(descriptor: dict[str, Any], depth: int = 0) -> None:
        digest = descriptor["digest"]
        if digest in seen or depth > 4:
            return
        seen.add(digest)
        raw = blob(digest)
        if raw is None:
            return
        manifest = json.loads(raw)
        media_type = descriptor.get("mediaType") or manifest.get("mediaType")
        if media_type in INDEXES or "manifests" in manifest:
            for child in manifest.get("manifests", []):
                walk(child, depth + 1)
            return
        for part in [manifest["config"], *manifest.get("layers", [])]:
            blob(part["digest"])

    for entry in json.loads(index_path.read_bytes())["manifests"]:
        walk(entry)
    return problems


def tagged_entries(directory: Path) -> dict[str, str]:
    """The layout's tags and the digests they name."""
    path = directory / "index.json"
    if not path.exists():
        return {}
    entries: Sequence[dict[str, Any]] = json.loads(path.read_bytes())["manifests"]
    return {
        e["annotations"][REF_NAME]: e["digest"]
        for e in entries
        if REF_NAME in (e.get("annotations") or {})
    }
