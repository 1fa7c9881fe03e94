"""cosign's simple-signing payload: the document a cosign image signature signs.

    {"critical":{"identity":{"docker-reference":"<registry>/<repository>"},
                 "image":{"docker-manifest-digest":"sha256:<hex>"},
                 "type":"cosign container image signature"},
     "optional":null}

Specified by containers/image ``docs/containers-signature.5.md`` (the "simple signing"
format) and, for cosign's form of it, by sigstore/sigstore ``pkg/signature/payload``:
Go's ``json.Marshal`` of a struct, so compact, in that key order, ``optional`` null when no
annotations are given. cosign's ``pkg/cosign/obsolete_test.go`` pins these exact bytes.

``docker-reference`` is the repository the signer saw the image in, written as
go-containerregistry's ``Repository.Name()`` writes it (Docker Hub as ``index.docker.io``):
for what imagesync signs, the target repository. A repository in an OCI image layout has no
registry: its reference is the layout's, ``oci:/DIR/R``, as skopeo names it. Verification,
like ``cosign verify``, checks the digest only: the digest is what the signature vouches
for, and a mirror serves the image under another name than its publisher signed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from imagesync.reference import DOCKER_HUB, Repository, check_digest
from imagesync.signing.gojson import go_json

SIGNATURE_TYPE = "cosign container image signature"
# A simple-signing payload is a few hundred bytes; cosign's optional annotations add a few more.
MAX_PAYLOAD_BYTES = 1024 * 1024
# go-containerregistry's name for the registry that Docker calls docker.io.
_DOCKER_HUB_NAME = "index.docker.io"


@dataclass(frozen=True)
class Claim:
    """What a payload says it signs: ``digest`` is "" when it names none."""

    docker_reference: str
    digest: str


class BadPayload(ValueError):
    """The bytes are not a simple-signing payload; the text says why."""


def docker_reference(repository: Repository) -> str:
    if repository.is_layout:
        return str(repository)
    registry = _DOCKER_HUB_NAME if repository.registry == DOCKER_HUB else repository.registry
    return f"{registry}/{repository.path}"


def simple_signing_payload(repository: Repository, digest: str) -> bytes:
    """The payload cosign would sign for the image ``digest`` in ``repository``."""
    document = {
        "critical": {
            "identity": {"docker-reference": docker_reference(repository)},
            "image": {"docker-manifest-digest": check_digest(digest)},
            "type": SIGNATURE_TYPE,
        },
        "optional": None,
    }
    return go_json(document)


def read_claim(payload: bytes) -> Claim:
    """What ``payload`` claims, read as cosign's claim check reads it (``critical`` fields;
    absent ones are empty)."""
    try:
        document = json.loads(payload)
    except (ValueError, RecursionError):
        raise BadPayload("the payload is not JSON") from None
    critical = _object(document, "critical")
    identity = _object(critical, "identity")
    image = _object(critical, "image")
    reference = identity.get("docker-reference", "")
    digest = image.get("docker-manifest-digest", "")
    if not isinstance(reference, str) or not isinstance(digest, str):
        raise BadPayload("the payload's docker-reference or docker-manifest-digest is not text")
    return Claim(reference, digest)


def _object(value: object, name: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise BadPayload("the payload is not a JSON object")
    member = value.get(name)
    if member is None:  # absent or null: Go's json.Unmarshal leaves the struct empty
        return {}
    if not isinstance(member, dict):
        raise BadPayload(f"the payload's {name!r} is not an object")
    return member
