"""What imagesync signs, checked by the independent verifier (tests/harness/cosign.py, written
from cosign's signature spec apart from imagesync), and how a ``.sig`` image is extended:
existing layers byte for byte, one new layer, once."""

from __future__ import annotations

import json
from collections.abc import Mapping

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from imagesync.reference import Repository
from imagesync.signing import (
    BadSignatureImage,
    SignatureImage,
    SignatureImageUpdate,
    SigningKey,
    has_signature,
    load_signing_key,
    sign_image,
    signature_tag,
    simple_signing_payload,
)
from imagesync.signing.gojson import go_json
from imagesync.signing.sigimage import MAX_LAYERS
from tests.harness import cosign

TARGET = Repository("reg.example.com", "mirror/library/busybox")
DIGEST = "sha256:" + "4c1c50d0" * 8
OTHER_DIGEST = "sha256:" + "0123abcd" * 8
UPSTREAM = "docker.io/library/busybox"


@pytest.fixture(scope="module")
def team() -> ec.EllipticCurvePrivateKey:
    return cosign.new_key()


@pytest.fixture(scope="module")
def signing_key(
    team: ec.EllipticCurvePrivateKey, tmp_path_factory: pytest.TempPathFactory
) -> SigningKey:
    path = tmp_path_factory.mktemp("keys") / "cosign.key"
    path.write_bytes(cosign.pkcs8_pem(team))
    return load_signing_key(path, None)


def blobs_of(update: SignatureImageUpdate, before: Mapping[str, bytes] = {}) -> dict[str, bytes]:
    return {**before, **{blob.digest: blob.data for blob in update.blobs}}


def no_fetch(digest: str) -> bytes:
    raise AssertionError(f"nothing should be fetched, asked for {digest}")


def parsed(image: cosign.SignatureImage | SignatureImageUpdate) -> SignatureImage:
    raw = image.manifest
    return SignatureImage.parse(raw, image.media_type, "test .sig")


def test_what_imagesync_signs_verifies_with_the_independent_verifier(
    team: ec.EllipticCurvePrivateKey, signing_key: SigningKey
) -> None:
    update = sign_image(signing_key, TARGET, DIGEST, None, no_fetch)
    assert (
        update.tag == "sha256-" + DIGEST.removeprefix("sha256:") + ".sig" == signature_tag(DIGEST)
    )
    assert update.replaces is None and update.changed
    blobs = blobs_of(update)
    [layer] = cosign.verify(update.manifest, blobs, cosign.public_pem(team), DIGEST)
    document = json.loads(update.manifest)
    assert document["mediaType"] == cosign.OCI_MANIFEST == update.media_type
    [descriptor] = document["layers"]
    assert descriptor["digest"] == layer
    assert descriptor["mediaType"] == "application/vnd.dev.cosign.simplesigning.v1+json"
    assert set(descriptor["annotations"]) == {"dev.cosignproject.cosign/signature"}
    assert blobs[layer] == cosign.payload("reg.example.com/mirror/library/busybox", DIGEST)

    with pytest.raises(cosign.NotVerified, match="does not verify with the key"):
        cosign.verify(update.manifest, blobs, cosign.public_pem(cosign.new_key()), DIGEST)
    with pytest.raises(cosign.NotVerified, match=f"signs {DIGEST}"):
        cosign.verify(update.manifest, blobs, cosign.public_pem(team), OTHER_DIGEST)


def test_the_payload_and_config_are_the_bytes_cosign_writes(signing_key: SigningKey) -> None:
    """cosign marshals Go structs: compact, struct key order, ``optional`` null; Docker Hub
    repositories are named ``index.docker.io/...`` (go-containerregistry's Repository.Name)."""
    hub = simple_signing_payload(Repository("docker.io", "library/busybox"), DIGEST)
    assert hub == (
        b'{"critical":{"identity":{"docker-reference":"index.docker.io/library/busybox"},'
        b'"image":{"docker-manifest-digest":"' + DIGEST.encode() + b'"},'
        b'"type":"cosign container image signature"},"optional":null}'
    )
    local = simple_signing_payload(Repository("localhost:5000", "team/app"), DIGEST)
    assert b'"docker-reference":"localhost:5000/team/app"' in local

    update = sign_image(signing_key, TARGET, DIGEST, None, no_fetch)
    document = json.loads(update.manifest)
    layer = document["layers"][0]["digest"]
    config = blobs_of(update)[document["config"]["digest"]]
    assert config == (
        b'{"architecture":"","created":"0001-01-01T00:00:00Z",'
        b'"history":[{"created":"0001-01-01T00:00:00Z"}],"os":"",'
        b'"rootfs":{"type":"layers","diff_ids":["' + layer.encode() + b'"]},"config":{}}'
    )
    assert document["config"]["mediaType"] == cosign.OCI_CONFIG
    assert list(document) == ["schemaVersion", "mediaType", "config", "layers"]
    assert list(document["layers"][0]) == ["mediaType", "size", "digest", "annotations"]
    assert b" " not in update.manifest


def test_json_is_written_as_go_writes_it() -> None:
    """encoding/json escapes <, >, & and U+2028/9 in strings and writes other non-ASCII as UTF-8."""
    value = {"b": "<a&b> café \u2028\u2029", "a": [1, None, True]}
    assert go_json(value) == (
        '{"b":"\\u003ca\\u0026b\\u003e café \\u2028\\u2029","a":[1,null,true]}'.encode()
    )


def upstream_image(
    upstream: ec.EllipticCurvePrivateKey, **options: object
) -> cosign.SignatureImage:
    """An upstream ``.sig`` as another tool might write it: indented, a keyless-style bundle
    annotation with characters JSON encoders disagree on, and a layer that is no signature."""
    signed = cosign.signed_layer(
        upstream,
        UPSTREAM,
        DIGEST,
        **{"dev.sigstore.cosign/bundle": '{"note":"<a&b> café \u2028"}'},
    )
    other = cosign.Layer(
        b'{"something":"else"}', {"org.example/kind": "not a signature"}, "application/json"
    )
    return cosign.signature_image([signed, other], **options)  # type: ignore[arg-type]


def test_extending_keeps_every_existing_layer_byte_for_byte(
    team: ec.EllipticCurvePrivateKey, signing_key: SigningKey
) -> None:
    upstream = cosign.new_key()
    existing = upstream_image(upstream, indent=3)
    fetched: list[str] = []

    def fetch(digest: str) -> bytes:
        fetched.append(digest)
        return existing.blobs[digest]

    update = sign_image(signing_key, TARGET, DIGEST, parsed(existing), fetch)
    assert fetched == [json.loads(existing.manifest)["config"]["digest"]]
    assert update.replaces == existing.digest and update.changed
    old, new = existing.manifest.decode(), update.manifest.decode()
    # Everything from "layers" to the end of the last existing layer, whitespace and all.
    kept = old[old.index('"layers"') : old.rindex("]")].rstrip()
    assert kept in new
    assert new[new.index(kept) + len(kept)] == ","
    old_layers, new_layers = json.loads(old)["layers"], json.loads(new)["layers"]
    assert new_layers[:-1] == old_layers
    blobs = blobs_of(update, existing.blobs)
    [ours] = cosign.verify(update.manifest, blobs, cosign.public_pem(team), DIGEST)
    [theirs] = cosign.verify(update.manifest, blobs, cosign.public_pem(upstream), DIGEST)
    assert ours == new_layers[-1]["digest"] and theirs == old_layers[0]["digest"]
    assert {blob.digest for blob in update.blobs} == {ours, json.loads(new)["config"]["digest"]}


def test_signing_twice_adds_one_layer_once(signing_key: SigningKey) -> None:
    existing = upstream_image(cosign.new_key())
    first = sign_image(signing_key, TARGET, DIGEST, parsed(existing), existing.blobs.__getitem__)
    assert len(json.loads(first.manifest)["layers"]) == 3
    key = signing_key.verification_key
    assert has_signature(parsed(first), key, TARGET, DIGEST)
    assert not has_signature(parsed(existing), key, TARGET, DIGEST)
    assert not has_signature(None, key, TARGET, DIGEST)
    second = sign_image(signing_key, TARGET, DIGEST, parsed(first), no_fetch)
    assert not second.changed and second.blobs == () and second.added == ()
    assert second.manifest == first.manifest and second.digest == first.digest

    fresh = sign_image(signing_key, TARGET, DIGEST, None, no_fetch)
    again = sign_image(signing_key, TARGET, DIGEST, parsed(fresh), no_fetch)
    assert not again.changed and len(parsed(again).layers) == 1


def test_a_signature_for_another_repository_is_not_ours(signing_key: SigningKey) -> None:
    """As cosign's duplicate check: a payload naming another docker-reference is another
    signature, so signing the mirror adds one even when upstream used the same key."""
    upstream = sign_image(
        signing_key, Repository("docker.io", "library/busybox"), DIGEST, None, no_fetch
    )
    mirror = sign_image(
        signing_key, TARGET, DIGEST, parsed(upstream), blobs_of(upstream).__getitem__
    )
    assert mirror.changed and len(parsed(mirror).layers) == 2


def test_docker_media_types_are_kept(
    team: ec.EllipticCurvePrivateKey, signing_key: SigningKey
) -> None:
    existing = upstream_image(cosign.new_key(), docker=True)
    update = sign_image(signing_key, TARGET, DIGEST, parsed(existing), existing.blobs.__getitem__)
    document = json.loads(update.manifest)
    assert update.media_type == document["mediaType"] == cosign.DOCKER_MANIFEST
    assert document["config"]["mediaType"] == cosign.DOCKER_CONFIG
    cosign.verify(
        update.manifest, blobs_of(update, existing.blobs), cosign.public_pem(team), DIGEST
    )


def test_a_config_that_is_not_an_image_config_is_left_alone(signing_key: SigningKey) -> None:
    """go-containerregistry does not touch an artifact's config; neither do we (nor fetch it)."""
    empty = {
        "mediaType": "application/vnd.oci.empty.v1+json",
        "size": 2,
        "digest": cosign.digest_of(b"{}"),
    }
    raw = json.dumps(
        {"schemaVersion": 2, "mediaType": cosign.OCI_MANIFEST, "config": empty, "layers": []}
    ).encode()
    update = sign_image(signing_key, TARGET, DIGEST, SignatureImage.parse(raw, None, "x"), no_fetch)
    document = json.loads(update.manifest)
    assert document["config"] == empty
    assert [blob.media_type for blob in update.blobs] == [cosign.SIMPLE_SIGNING]


def manifest(**members: object) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": cosign.OCI_MANIFEST, **members}).encode()


def test_what_cannot_be_extended_is_refused(signing_key: SigningKey) -> None:
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [],
        }
    ).encode()
    with pytest.raises(BadSignatureImage, match="not the image manifest of cosign signatures"):
        SignatureImage.parse(index, None, "reg/x:sha256-ab.sig")

    config = {"mediaType": cosign.OCI_CONFIG, "size": 2, "digest": cosign.digest_of(b"{}")}
    twice = manifest(config=config, layers=[])[:-1] + b', "layers": []}'
    with pytest.raises(BadSignatureImage, match="has two 'layers' members"):
        SignatureImage.parse(twice, None, "reg/x:sha256-ab.sig")

    existing = SignatureImage.parse(manifest(config=config, layers=[]), None, "x")
    with pytest.raises(BadSignatureImage, match="is not its config"):
        sign_image(signing_key, TARGET, DIGEST, existing, lambda digest: b'{"other":1}')

    layer = {"mediaType": cosign.SIMPLE_SIGNING, "size": 2, "digest": cosign.digest_of(b"{}")}
    full = SignatureImage.parse(manifest(config=config, layers=[layer] * MAX_LAYERS), None, "x")
    with pytest.raises(BadSignatureImage, match="would hold 1001 layers"):
        sign_image(signing_key, TARGET, DIGEST, full, lambda digest: b"{}")


def test_the_update_says_what_to_write(signing_key: SigningKey) -> None:
    update = sign_image(signing_key, TARGET, DIGEST, None, no_fetch)
    assert update.digest == cosign.digest_of(update.manifest)
    [added] = update.added
    assert added.media_type == cosign.SIMPLE_SIGNING
    assert added.digest in {blob.digest for blob in update.blobs}
    assert all(
        blob.digest == cosign.digest_of(blob.data) and blob.size == len(blob.data)
        for blob in update.blobs
    )
    scalar = signing_key.private_key.private_numbers().private_value
    assert f"{scalar:x}" not in repr(signing_key) and "private_key" not in repr(signing_key)
