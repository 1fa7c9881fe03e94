"""Manifest media types and what each one means for a sync."""

from __future__ import annotations

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
# A config of one of these types has rootfs.diff_ids and history, which grow with the layers.
# A manifest with any other config (a Helm chart's, a WASM module's, the empty config of an
# OCI 1.1 artifact) is an artifact: no platform to it (see Manifest.is_artifact).
IMAGE_CONFIGS = frozenset({OCI_CONFIG, DOCKER_CONFIG})

# The layer of a cosign signature image (``sha256-<hex>.sig``): a simple-signing payload.
COSIGN_SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"

# Referrers that are signatures (--require-signatures counts them like cosign's .sig tags):
# cosign's OCI 1.1 signatures, Sigstore bundles (cosign 3) and Notary Project signatures.
SIGNATURE_ARTIFACT_TYPES = frozenset(
    {
        "application/vnd.dev.cosign.artifact.sig.v1+json",
        "application/vnd.dev.sigstore.bundle.v0.3+json",
        "application/vnd.dev.sigstore.bundle+json;version=0.3",
        "application/vnd.cncf.notary.signature",
    }
)

# The artifact manifest of the OCI 1.1 release candidates, withdrawn from the final spec:
# artifacts are image manifests with an artifactType. Named to say so when a registry serves one.
OCI_ARTIFACT_MANIFEST = "application/vnd.oci.artifact.manifest.v1+json"

INDEXES = frozenset({OCI_INDEX, DOCKER_LIST})
IMAGE_MANIFESTS = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
SCHEMA1 = frozenset({DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED})

# Schema 1 is listed so that registries answer with it rather than 404, and we can say why
# it is refused instead of "not found".
ACCEPT = ", ".join([OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST, *sorted(SCHEMA1)])


def is_index(media_type: str) -> bool:
    return media_type in INDEXES


def is_image_manifest(media_type: str) -> bool:
    return media_type in IMAGE_MANIFESTS


def is_image_config(media_type: str) -> bool:
    return media_type in IMAGE_CONFIGS


def is_schema1(media_type: str) -> bool:
    return media_type in SCHEMA1


def is_manifest(media_type: str) -> bool:
    return media_type in INDEXES or media_type in IMAGE_MANIFESTS or media_type in SCHEMA1
