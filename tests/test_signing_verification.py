"""Verification on the way in: signatures made apart from imagesync (tests/harness/cosign.py, in
cosign's layout) pass with the right key; another key's signature, a payload naming another
digest, and altered signatures are each reported as what they are, in words a plan shows."""

from __future__ import annotations

import base64
import datetime
import json
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from imagesync.errors import NotFound
from imagesync.signing import (
    Kind,
    SignatureImage,
    Verification,
    VerificationKey,
    load_verification_key,
    verify_image,
)
from tests.harness import cosign

DIGEST = "sha256:" + "5f481572" * 8
OTHER_DIGEST = "sha256:" + "deadbeef" * 8
REFERENCE = "quay.io/vendor/app"
BUNDLE = "dev.sigstore.cosign/bundle"


@pytest.fixture(scope="module")
def team() -> ec.EllipticCurvePrivateKey:
    return cosign.new_key()


@pytest.fixture(scope="module")
def keys(
    team: ec.EllipticCurvePrivateKey, tmp_path_factory: pytest.TempPathFactory
) -> list[VerificationKey]:
    """The keys a user configured: the team's, and an old one that signs nothing here."""
    folder = tmp_path_factory.mktemp("keys")
    loaded = []
    for name, key in (("team.pub", team), ("old.pub", cosign.new_key())):
        (folder / name).write_bytes(cosign.public_pem(key))
        loaded.append(load_verification_key(folder / name))
    return loaded


def check(
    image: cosign.SignatureImage | None,
    keys: list[VerificationKey],
    fetch: Callable[[str], bytes] | None = None,
) -> Verification:
    parsed = SignatureImage.parse(image.manifest, image.media_type, "x") if image else None
    blobs: Mapping[str, bytes] = image.blobs if image else {}
    return verify_image(DIGEST, keys, parsed, fetch or blobs.__getitem__)


def only(verification: Verification) -> tuple[Kind, str]:
    [finding] = verification.findings
    return finding.kind, finding.detail


def with_signature(layer: cosign.Layer, signature: str) -> cosign.Layer:
    annotations = {**layer.annotations, cosign.SIGNATURE_ANNOTATION: signature}
    return cosign.Layer(layer.payload, annotations, layer.media_type)


def test_a_signature_by_one_of_the_keys_over_the_image_digest_passes(
    team: ec.EllipticCurvePrivateKey, keys: list[VerificationKey]
) -> None:
    image = cosign.signature_image([cosign.signed_layer(team, REFERENCE, DIGEST)])
    verification = check(image, keys[::-1])  # the second key tried is the one that verifies
    assert verification.ok and verification.verified_by == keys[0]
    assert verification.message == f"cosign signature of {DIGEST} verifies with {keys[0].name}"
    assert keys[0].name.startswith(keys[0].source + " (sha256:")


def test_another_keys_signature_is_reported_with_the_keys_tried(
    keys: list[VerificationKey],
) -> None:
    image = cosign.signature_image([cosign.signed_layer(cosign.new_key(), REFERENCE, DIGEST)])
    verification = check(image, keys)
    assert not verification.ok
    kind, detail = only(verification)
    assert kind is Kind.UNVERIFIED
    assert "made with another key, or altered" in detail
    message = verification.message
    assert f"no cosign signature of {DIGEST} verifies with the keys tried" in message
    assert keys[0].name in message and keys[1].name in message
    layer_digest = cosign.digest_of(image.blobs[list(image.blobs)[1]])
    assert f"layer {layer_digest[:19]}" in message


def test_a_payload_naming_another_digest_is_reported_as_such(
    team: ec.EllipticCurvePrivateKey, keys: list[VerificationKey]
) -> None:
    """A valid signature of another image, copied next to this one: it verifies with the key,
    and must still not pass."""
    copied = cosign.signed_layer(team, REFERENCE, OTHER_DIGEST)
    kind, detail = only(check(cosign.signature_image([copied]), keys))
    assert kind is Kind.OTHER_IMAGE
    assert f"signed by {keys[0].name}, for another image ({OTHER_DIGEST})" in detail

    foreign = cosign.signed_layer(cosign.new_key(), REFERENCE, OTHER_DIGEST)
    verification = check(cosign.signature_image([foreign]), keys)
    kind, detail = only(verification)
    assert kind is Kind.OTHER_IMAGE and verification.findings[0].key is None
    assert f"by none of the keys tried, for another image ({OTHER_DIGEST})" in detail


def test_an_altered_signature_does_not_pass(
    team: ec.EllipticCurvePrivateKey, keys: list[VerificationKey]
) -> None:
    layer = cosign.signed_layer(team, REFERENCE, DIGEST)
    der = bytearray(base64.b64decode(layer.annotations[cosign.SIGNATURE_ANNOTATION]))
    der[-1] ^= 0x01  # the last byte of s: still well-formed DER, no longer the team's signature
    tampered = with_signature(layer, base64.b64encode(bytes(der)).decode())
    verification = check(cosign.signature_image([tampered]), keys)
    assert not verification.ok
    # A key signature names no key, so "altered" and "another key" look the same: both said.
    assert only(verification) == (
        Kind.UNVERIFIED,
        f"layer {cosign.digest_of(layer.payload)[:19]}: made with another key, or altered "
        "(a key signature does not name its key)",
    )


@pytest.mark.parametrize(
    ("signature", "why"),
    [
        ("", "no base64 dev.cosignproject.cosign/signature annotation"),
        ("this is not base64!", "no base64 dev.cosignproject.cosign/signature annotation"),
    ],
)
def test_a_damaged_signature_annotation_is_invalid(
    team: ec.EllipticCurvePrivateKey, keys: list[VerificationKey], signature: str, why: str
) -> None:
    layer = with_signature(cosign.signed_layer(team, REFERENCE, DIGEST), signature)
    kind, detail = only(check(cosign.signature_image([layer]), keys))
    assert kind is Kind.INVALID and why in detail


def test_a_payload_that_is_not_what_its_digest_says_is_reported_altered(
    team: ec.EllipticCurvePrivateKey, keys: list[VerificationKey]
) -> None:
    image = cosign.signature_image([cosign.signed_layer(team, REFERENCE, DIGEST)])
    swapped = cosign.payload(REFERENCE, DIGEST, optional={"swapped": True})
    kind, detail = only(check(image, keys, lambda digest: swapped))
    assert kind is Kind.INVALID and "its payload is not what its digest says: altered" in detail

    def missing(digest: str) -> bytes:
        raise NotFound(f"blob {digest} not found")

    kind, detail = only(check(image, keys, missing))
    assert kind is Kind.INVALID and "its payload blob is missing" in detail


def test_a_payload_that_is_not_simple_signing_is_invalid(
    team: ec.EllipticCurvePrivateKey, keys: list[VerificationKey]
) -> None:
    data = b'{"critical": "no"}'
    layer = cosign.Layer(data, {cosign.SIGNATURE_ANNOTATION: cosign.sign(team, data)})
    kind, detail = only(check(cosign.signature_image([layer]), keys))
    assert kind is Kind.INVALID and "the payload's 'critical' is not an object" in detail


def certificate(key: ec.EllipticCurvePrivateKey, email: str) -> str:
    """A keyless-style signing certificate (self-issued here; only its key and SAN matter)."""
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sigstore.dev")])
    now = datetime.datetime.now(datetime.UTC)
    built = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(minutes=10))
        .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=True)
        .sign(key, hashes.SHA256())
    )
    return built.public_bytes(serialization.Encoding.PEM).decode()


def test_a_signature_that_names_its_key_is_told_apart_from_an_altered_one(
    keys: list[VerificationKey],
) -> None:
    """Keyless signatures carry their certificate, so "signed by someone else" and "altered"
    can be told apart: the message names the signer, or says the signature was altered."""
    ephemeral = cosign.new_key()
    cert = {"dev.sigstore.cosign/certificate": certificate(ephemeral, "ci@vendor.example")}
    layer = cosign.signed_layer(ephemeral, REFERENCE, DIGEST, **cert)
    kind, detail = only(check(cosign.signature_image([layer]), keys))
    assert kind is Kind.OTHER_KEY
    assert "signed with another key (the certificate of ci@vendor.example)" in detail

    other = cosign.signed_layer(cosign.new_key(), REFERENCE, DIGEST)
    altered = with_signature(layer, other.annotations[cosign.SIGNATURE_ANNOTATION])
    kind, detail = only(check(cosign.signature_image([altered]), keys))
    assert kind is Kind.INVALID
    assert "does not verify with the key it names (the certificate of ci@vendor.example)" in detail


def test_the_key_in_a_rekor_bundle_names_the_signer(keys: list[VerificationKey]) -> None:
    """cosign 2 uploads key signatures to Rekor by default and keeps the entry in a bundle
    annotation, whose body holds the signer's public key."""
    signer = cosign.new_key()
    entry = {
        "spec": {
            "signature": {
                "publicKey": {"content": base64.b64encode(cosign.public_pem(signer)).decode()}
            }
        }
    }
    body = base64.b64encode(json.dumps(entry).encode()).decode()
    bundle = {BUNDLE: json.dumps({"Payload": {"body": body}})}
    layer = cosign.signed_layer(signer, REFERENCE, DIGEST, **bundle)
    kind, detail = only(check(cosign.signature_image([layer]), keys))
    assert kind is Kind.OTHER_KEY
    assert "signed with another key (the public key in its Rekor bundle)" in detail


def test_no_signature_at_all(keys: list[VerificationKey]) -> None:
    missing = check(None, keys)
    assert not missing.ok and missing.signature_image is None
    assert missing.message.endswith(f"there is no sha256-{DIGEST[7:]}.sig tag")

    not_signatures = cosign.signature_image([cosign.Layer(b"{}", {}, "application/json")])
    empty = check(not_signatures, keys)
    assert empty.findings == () and empty.other_layers == 1
    assert empty.message.endswith(
        f"sha256-{DIGEST[7:]}.sig holds no simple-signing signature, only 1 other layer"
    )


def test_verification_stops_at_the_first_verifying_layer_and_keeps_what_it_saw(
    team: ec.EllipticCurvePrivateKey, keys: list[VerificationKey]
) -> None:
    layers = [
        cosign.signed_layer(cosign.new_key(), REFERENCE, DIGEST),
        cosign.signed_layer(team, REFERENCE, DIGEST),
        cosign.signed_layer(cosign.new_key(), "other/ref", DIGEST),
    ]
    image = cosign.signature_image(layers)
    fetched: list[str] = []

    def fetch(digest: str) -> bytes:
        fetched.append(digest)
        return image.blobs[digest]

    verification = check(image, keys, fetch)
    assert verification.ok
    assert [f.kind for f in verification.findings] == [Kind.UNVERIFIED, Kind.VERIFIED]
    assert len(fetched) == 2


def test_the_message_stays_short_for_many_signatures(keys: list[VerificationKey]) -> None:
    stranger = cosign.new_key()
    layers = [cosign.signed_layer(stranger, f"vendor/app{i}", DIGEST) for i in range(40)]
    verification = check(cosign.signature_image(layers), keys)
    assert len(verification.findings) == 40
    message = verification.message
    assert "holds 40 signatures" in message and "and 38 more like it" in message
    assert len(message) < 800


def test_loaded_keys_compare_by_fingerprint(
    tmp_path: Path, team: ec.EllipticCurvePrivateKey
) -> None:
    (tmp_path / "a.pub").write_bytes(cosign.public_pem(team))
    (tmp_path / "b.pub").write_bytes(cosign.public_pem(team))
    a, b = load_verification_key(tmp_path / "a.pub"), load_verification_key(tmp_path / "b.pub")
    assert a.fingerprint == b.fingerprint and a != b  # same key, two files: messages name the file
