"""The signing core against the real distribution registry: what it produces is accepted as a
``.sig`` image next to a real image, reads back byte for byte (skopeo as the independent
reader), verifies with the independent verifier from what the registry serves, and extending
an upstream ``.sig`` keeps its layer. The registry reads and writes here are the harness's
(the wiring into plan/apply is a later step); the signing decisions are imagesync's."""

from __future__ import annotations

import json
from pathlib import Path

from imagesync.reference import Repository
from imagesync.signing import (
    SignatureImage,
    SignatureImageUpdate,
    load_signing_key,
    load_verification_key,
    sign_image,
    verify_image,
)
from tests.harness import cosign, skopeo
from tests.harness.images import Pusher, connect, push_image
from tests.harness.registry import RegistryServer

REPOSITORY = "mirror/library/busybox"


def write(pusher: Pusher, update: SignatureImageUpdate) -> None:
    for blob in update.blobs:
        if not pusher.blob_exists(REPOSITORY, blob.digest):
            pusher.put_blob(REPOSITORY, blob.data)
    pusher.put_manifest(REPOSITORY, update.tag, update.manifest, update.media_type)


def read(pusher: Pusher, tag: str) -> tuple[SignatureImage, dict[str, bytes]]:
    fetched = pusher.fetch_manifest(REPOSITORY, tag)
    image = SignatureImage.parse(fetched.raw, fetched.media_type, f"{REPOSITORY}:{tag}")
    blobs = {
        digest: pusher.get_blob(REPOSITORY, digest)
        for digest in [image.config.digest, *(layer.descriptor.digest for layer in image.layers)]
    }
    return image, blobs


def test_signatures_land_next_to_the_image_and_verify_from_the_registry(
    registry: RegistryServer, tmp_path: Path
) -> None:
    pusher = connect(registry)
    image = push_image(pusher, REPOSITORY, "1.36", index=False, seed=7)
    team, upstream = cosign.new_key(), cosign.new_key()
    (tmp_path / "cosign.key").write_bytes(cosign.encrypted_key_pem(team, b"s3cret passphrase"))
    (tmp_path / "cosign.pub").write_bytes(cosign.public_pem(team))
    key = load_signing_key(tmp_path / "cosign.key", b"s3cret passphrase")
    target = Repository(registry.host, REPOSITORY)

    # What upstream published and the mirror copied: a .sig by another key.
    theirs = cosign.signature_image(
        [cosign.signed_layer(upstream, "docker.io/library/busybox", image.digest)]
    )
    for data in theirs.blobs.values():
        pusher.put_blob(REPOSITORY, data)
    tag = "sha256-" + image.digest.removeprefix("sha256:") + ".sig"
    pusher.put_manifest(REPOSITORY, tag, theirs.manifest, theirs.media_type)

    existing, _ = read(pusher, tag)
    update = sign_image(
        key, target, image.digest, existing, lambda d: pusher.get_blob(REPOSITORY, d)
    )
    assert update.tag == tag and update.replaces == theirs.digest
    write(pusher, update)

    served = skopeo.inspect_raw(f"{registry.host}/{REPOSITORY}:{tag}")
    assert served == update.manifest
    signed, blobs = read(pusher, tag)
    assert json.loads(served)["layers"][0] == json.loads(theirs.manifest)["layers"][0]
    assert theirs.manifest.decode().split('"layers":[')[1][:-2] in served.decode()
    [ours] = cosign.verify(served, blobs, cosign.public_pem(team), image.digest)
    [kept] = cosign.verify(served, blobs, cosign.public_pem(upstream), image.digest)
    assert ours != kept

    verification = verify_image(
        image.digest, [load_verification_key(tmp_path / "cosign.pub")], signed, blobs.__getitem__
    )
    assert verification.ok, verification.message

    again = sign_image(key, target, image.digest, signed, lambda d: pusher.get_blob(REPOSITORY, d))
    assert not again.changed and again.digest == update.digest
