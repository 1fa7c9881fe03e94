"""Descriptors and manifests as typed values over the raw bytes a registry served.

A Manifest keeps its bytes: they are what we copy (re-serialising JSON would change the
digest). The parsed view only answers questions: children, blobs, platform, subject.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from imagesync.content import mediatypes
from imagesync.content.documents import json_object
from imagesync.errors import RegistryError
from imagesync.redact import excerpt
from imagesync.reference import is_valid_digest

# The distribution spec lets registries refuse manifests above 4 MiB; so do we.
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
# No blob is larger; a bigger size is a lie (and would not fit a Content-Length).
MAX_BLOB_SIZE = 2**63 - 1
# RFC 6838 caps a media type's type and subtype at 127 characters each: a longer "media type"
# is none (and plans, whose schema holds the types they show, would not hold it).
MAX_MEDIA_TYPE = 255


class BadManifest(RegistryError):
    """The bytes a registry served are not a manifest we can copy."""


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def type_text(value: Any, what: str) -> str | None:
    """A mediaType or artifactType from a registry's document: text, of a media type's length
    at most; None when absent."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadManifest(f"{what} {excerpt(repr(value), 80)} is not text")
    if len(value) > MAX_MEDIA_TYPE:
        raise BadManifest(
            f"{what} is {len(value)} characters long, more than a media type can be "
            f"({MAX_MEDIA_TYPE})"
        )
    return value


@dataclass(frozen=True, order=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text

    @classmethod
    def from_json(cls, value: Any) -> Platform | None:
        """The platform of an index entry, or of an image config (the same three keys)."""
        if not isinstance(value, dict):
            return None
        # A registry's text, shown in plans: at most a readable length.
        return cls(
            excerpt(str(value.get("os", "")), 40),
            excerpt(str(value.get("architecture", "")), 40),
            excerpt(str(value.get("variant") or ""), 40),
        )


LINUX_AMD64 = Platform("linux", "amd64")


@dataclass(frozen=True)
class Descriptor:
    """What points at content: media type, digest and size (plus a platform in indexes)."""

    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    artifact_type: str | None = None
    annotations: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    @classmethod
    def from_json(cls, value: Any, where: str) -> Descriptor:
        if not isinstance(value, dict):
            raise BadManifest(f"{where}: a descriptor is not a JSON object")
        digest, size = value.get("digest"), value.get("size")
        if not isinstance(digest, str) or not is_valid_digest(digest):
            raise BadManifest(
                f"{where}: descriptor digest {excerpt(repr(digest), 80)} is not valid"
            )
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_BLOB_SIZE:
            raise BadManifest(f"{where}: descriptor size {excerpt(repr(size), 80)} is not valid")
        media_type = type_text(value.get("mediaType", ""), f"{where}: descriptor mediaType")
        artifact_type = type_text(value.get("artifactType"), f"{where}: artifactType")
        annotations = value.get("annotations") or {}
        if not isinstance(annotations, dict):
            raise BadManifest(f"{where}: annotations are not a JSON object")
        return cls(
            media_type=media_type or "",
            digest=digest,
            size=size,
            platform=Platform.from_json(value.get("platform")),
            artifact_type=artifact_type,
            annotations=tuple(sorted((str(k), str(v)) for k, v in annotations.items())),
        )

    def to_json(self) -> dict[str, Any]:
        """The descriptor as an index lists it (without a platform: one that lists a
        referrer or a tagged manifest has none to give)."""
        described: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.artifact_type:
            described["artifactType"] = self.artifact_type
        if self.annotations:
            described["annotations"] = dict(self.annotations)
        return described


@dataclass(frozen=True)
class Manifest:
    """A manifest's exact bytes, its media type and digest, and a parsed view of them."""

    raw: bytes
    media_type: str
    digest: str

    @classmethod
    def parse(cls, raw: bytes, content_type: str | None, where: str) -> Manifest:
        """Check that ``raw`` is a manifest we can handle; the digest is that of ``raw``."""
        if len(raw) > MAX_MANIFEST_BYTES:
            raise BadManifest(f"{where}: manifest is {len(raw)} bytes, more than 4 MiB")
        document = json_object(raw, f"{where}: manifest", BadManifest)
        declared = document.get("mediaType")
        if declared is not None and not isinstance(declared, str):
            raise BadManifest(f"{where}: mediaType {excerpt(repr(declared), 80)} is not text")
        header = (content_type or "").split(";", 1)[0].strip()
        if declared and mediatypes.is_manifest(header) and declared != header:
            raise BadManifest(
                f"{where}: the registry sent it as {excerpt(header, 100)}, but it says it is "
                f"{excerpt(declared, 100)}",
                "the registry or a proxy in front of it mislabels manifests",
            )
        media_type = _media_type(content_type, declared, document)
        if mediatypes.is_schema1(media_type):
            raise BadManifest(
                f"{where}: Docker schema 1 manifests are not supported",
                "use an image published with schema 2 or OCI (schema 1 is deprecated)",
            )
        if media_type == mediatypes.OCI_ARTIFACT_MANIFEST:
            raise BadManifest(
                f"{where}: is an OCI artifact manifest ({media_type}), a format of the OCI 1.1 "
                "release candidates that the final spec withdrew",
                "push the artifact again as an image manifest with artifactType (oras 1.1 and "
                "later write that)",
            )
        if not mediatypes.is_manifest(media_type):
            raise BadManifest(
                f"{where}: {excerpt(repr(media_type), 100)} is not a manifest media type"
            )
        type_text(document.get("artifactType"), f"{where}: artifactType")
        manifest = cls(raw, media_type, sha256_digest(raw))
        # Parse the parts now so that a malformed manifest fails here, not mid-apply.
        _ = manifest.children if manifest.is_index else manifest.blobs
        return manifest

    @cached_property
    def json(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.raw)
        return value

    @property
    def is_index(self) -> bool:
        return mediatypes.is_index(self.media_type)

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, len(self.raw))

    @cached_property
    def children(self) -> tuple[Descriptor, ...]:
        """The manifests an index lists (empty for an image manifest)."""
        if not self.is_index:
            return ()
        entries = self.json.get("manifests")
        if not isinstance(entries, list):
            raise BadManifest(f"index {self.digest} has no 'manifests' list")
        return tuple(Descriptor.from_json(e, f"index {self.digest}") for e in entries)

    @cached_property
    def config(self) -> Descriptor | None:
        if self.is_index:
            return None
        return Descriptor.from_json(self.json.get("config"), f"manifest {self.digest} config")

    @cached_property
    def blobs(self) -> tuple[Descriptor, ...]:
        """Config first, then layers: every blob an image manifest needs."""
        if self.is_index:
            return ()
        layers = self.json.get("layers")
        if not isinstance(layers, list):
            raise BadManifest(f"manifest {self.digest} has no 'layers' list")
        where = f"manifest {self.digest} layer"
        parsed = [Descriptor.from_json(layer, where) for layer in layers]
        return (self.config, *parsed) if self.config else tuple(parsed)

    @property
    def subject(self) -> Descriptor | None:
        value = self.json.get("subject")
        return Descriptor.from_json(value, f"manifest {self.digest} subject") if value else None

    @property
    def is_artifact(self) -> bool:
        """An artifact (a Helm chart, a WASM module, an SBOM, a policy bundle) rather than a
        container image: it says so with ``artifactType``, or its config is not an image
        config. No platform applies to it. An index is one by its own ``artifactType`` only;
        whether its children are, they say themselves."""
        if self.json.get("artifactType"):
            return True
        config = self.config
        return (
            config is not None
            and bool(config.media_type)
            and not mediatypes.is_image_config(config.media_type)
        )

    @property
    def artifact_type(self) -> str | None:
        """``artifactType``, else the config's media type: what the referrers API reports, and
        what a plan shows for an artifact. An image has one too (its config's type); ask
        :attr:`is_artifact` which of the two this is."""
        value = self.json.get("artifactType")
        if isinstance(value, str) and value:
            return value
        config = self.config
        return config.media_type if config else None


def _media_type(content_type: str | None, declared: Any, document: dict[str, Any]) -> str:
    header = (content_type or "").split(";", 1)[0].strip()
    if mediatypes.is_manifest(header):
        return header
    if isinstance(declared, str) and declared:
        return declared
    # OCI manifests may omit mediaType; the shape tells them apart.
    if "manifests" in document:
        return mediatypes.OCI_INDEX
    if document.get("schemaVersion") == 1:
        return mediatypes.DOCKER_SCHEMA1
    return mediatypes.OCI_MANIFEST
