"""cosign's formats, written a second time from their specifications, apart from imagesync.

Debian's skopeo is built with sigstore disabled and there is no cosign package to install, so
this is the independent checker for signatures. It uses only the standard library,
``cryptography`` and the harness's media type names: never imagesync, and not PyNaCl, which
imagesync uses (a bug in a shared library could otherwise pass on both sides).

- a key maker: cosign's encrypted private key (go-securesystemslib ``encrypted``: scrypt from
  :mod:`hashlib`, NaCl secretbox as XSalsa20 written here from Bernstein's Salsa20 and XSalsa20
  papers plus ``cryptography``'s Poly1305), PKCS#8 DER inside, either PEM type;
- a signer: the simple-signing payload, ECDSA P-256 SHA-256 over it, the ``.sig`` image in
  cosign's layout (OCI manifest, config with rootfs diff_ids, one layer per signature);
- a verifier (:func:`verify`): what ``cosign verify --key K --insecure-ignore-tlog`` checks,
  plus the layout's own consistency (config digest, diff_ids, layer sizes).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.poly1305 import Poly1305

from tests.harness.images import (
    COSIGN_SIGNATURE,
    COSIGN_SIGNATURE_ANNOTATION,
    DOCKER_CONFIG,
    DOCKER_MANIFEST,
    OCI_CONFIG,
    OCI_MANIFEST,
    digest_of,
)

SIGSTORE_PEM_TYPE = "ENCRYPTED SIGSTORE PRIVATE KEY"
COSIGN_PEM_TYPE = "ENCRYPTED COSIGN PRIVATE KEY"
SIMPLE_SIGNING = COSIGN_SIGNATURE
SIGNATURE_ANNOTATION = COSIGN_SIGNATURE_ANNOTATION
SIGNATURE_TYPE = "cosign container image signature"
ZERO_TIME = "0001-01-01T00:00:00Z"

_MASK = 0xFFFFFFFF
_SIGMA = struct.unpack("<4I", b"expand 32-byte k")


# --- NaCl secretbox (XSalsa20-Poly1305) -------------------------------------------------------


def _rotl(value: int, shift: int) -> int:
    return ((value << shift) & _MASK) | (value >> (32 - shift))


def _quarter_round(x: list[int], a: int, b: int, c: int, d: int) -> None:
    x[b] ^= _rotl((x[a] + x[d]) & _MASK, 7)
    x[c] ^= _rotl((x[b] + x[a]) & _MASK, 9)
    x[d] ^= _rotl((x[c] + x[b]) & _MASK, 13)
    x[a] ^= _rotl((x[d] + x[c]) & _MASK, 18)


def _double_rounds(x: list[int]) -> None:
    for _ in range(10):
        for a, b, c, d in ((0, 4, 8, 12), (5, 9, 13, 1), (10, 14, 2, 6), (15, 3, 7, 11)):
            _quarter_round(x, a, b, c, d)  # columns
        for a, b, c, d in ((0, 1, 2, 3), (5, 6, 7, 4), (10, 11, 8, 9), (15, 12, 13, 14)):
            _quarter_round(x, a, b, c, d)  # rows


def _initial_state(key: bytes, block_input: bytes) -> list[int]:
    k = struct.unpack("<8I", key)
    n = struct.unpack("<4I", block_input)
    s = _SIGMA
    return [s[0], *k[:4], s[1], *n, s[2], *k[4:], s[3]]


def _hsalsa20(key: bytes, nonce16: bytes) -> bytes:
    x = _initial_state(key, nonce16)
    _double_rounds(x)
    return struct.pack("<8I", x[0], x[5], x[10], x[15], x[6], x[7], x[8], x[9])


def _salsa20_block(key: bytes, nonce8: bytes, counter: int) -> bytes:
    start = _initial_state(key, nonce8 + struct.pack("<Q", counter))
    x = list(start)
    _double_rounds(x)
    return struct.pack("<16I", *((x[i] + start[i]) & _MASK for i in range(16)))


def _xsalsa20_stream(key: bytes, nonce24: bytes, length: int) -> bytes:
    subkey = _hsalsa20(key, nonce24[:16])
    blocks = (length + 63) // 64
    return b"".join(_salsa20_block(subkey, nonce24[16:], i) for i in range(blocks))[:length]


def secretbox_seal(key: bytes, nonce: bytes, message: bytes) -> bytes:
    """NaCl ``crypto_secretbox``: Poly1305 tag (16 bytes) then the XSalsa20 ciphertext."""
    stream = _xsalsa20_stream(key, nonce, 32 + len(message))
    ciphertext = bytes(m ^ s for m, s in zip(message, stream[32:], strict=True))
    return Poly1305.generate_tag(stream[:32], ciphertext) + ciphertext


def secretbox_open(key: bytes, nonce: bytes, box: bytes) -> bytes:
    """Raises ``InvalidSignature`` when the tag does not match (another key, altered bytes)."""
    tag, ciphertext = box[:16], box[16:]
    stream = _xsalsa20_stream(key, nonce, 32 + len(ciphertext))
    Poly1305.verify_tag(stream[:32], ciphertext, tag)
    return bytes(c ^ s for c, s in zip(ciphertext, stream[32:], strict=True))


# --- keys ------------------------------------------------------------------------------------


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def pem(pem_type: str, der: bytes) -> bytes:
    """PEM as Go's ``pem.EncodeToMemory`` writes it: 64-character lines."""
    body = base64.b64encode(der).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    text = f"-----BEGIN {pem_type}-----\n" + "\n".join(lines) + f"\n-----END {pem_type}-----\n"
    return text.encode()


def public_pem(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> bytes:
    public = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def pkcs8_pem(key: object) -> bytes:
    assert hasattr(key, "private_bytes")
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def encrypted_key_pem(
    key: object,
    passphrase: bytes,
    *,
    pem_type: str = SIGSTORE_PEM_TYPE,
    n: int = 32768,
    r: int = 8,
    p: int = 1,
    plaintext: bytes | None = None,
) -> bytes:
    """``cosign generate-key-pair``'s private key: go-securesystemslib ``encrypted.Encrypt``
    (as Go's ``json.Marshal`` writes its struct) around the PKCS#8 DER key (or ``plaintext``)."""
    if plaintext is None:
        assert hasattr(key, "private_bytes")
        plaintext = key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    salt, nonce = os.urandom(32), os.urandom(24)
    box_key = hashlib.scrypt(passphrase, salt=salt, n=n, r=r, p=p, dklen=32, maxmem=2**28)
    document = {
        "kdf": {
            "name": "scrypt",
            "params": {"N": n, "r": r, "p": p},
            "salt": base64.b64encode(salt).decode(),
        },
        "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(nonce).decode()},
        "ciphertext": base64.b64encode(secretbox_seal(box_key, nonce, plaintext)).decode(),
    }
    return pem(pem_type, json.dumps(document, separators=(",", ":")).encode())


def open_encrypted_key(data: bytes, passphrase: bytes) -> bytes:
    """The PKCS#8 DER inside a cosign private key (raises ``InvalidSignature`` when the
    passphrase is wrong)."""
    text = data.decode().replace("\r\n", "\n")
    begin = text.index("-----BEGIN ")
    header_end = text.index("-----\n", begin) + 6
    pem_type = text[begin + 11 : header_end - 6]
    assert pem_type in (SIGSTORE_PEM_TYPE, COSIGN_PEM_TYPE), pem_type
    body = text[header_end : text.index("-----END ")]
    document = json.loads(base64.b64decode("".join(body.split())))
    assert document["kdf"]["name"] == "scrypt"
    assert document["cipher"]["name"] == "nacl/secretbox"
    params = document["kdf"]["params"]
    box_key = hashlib.scrypt(
        passphrase,
        salt=base64.b64decode(document["kdf"]["salt"]),
        n=params["N"],
        r=params["r"],
        p=params["p"],
        dklen=32,
        maxmem=2**28,
    )
    return secretbox_open(
        box_key,
        base64.b64decode(document["cipher"]["nonce"]),
        base64.b64decode(document["ciphertext"]),
    )


# --- signing ---------------------------------------------------------------------------------


def payload(docker_reference: str, digest: str, optional: object = None) -> bytes:
    """The simple-signing payload, compact, in the key order of cosign's Go structs."""
    document = {
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": digest},
            "type": SIGNATURE_TYPE,
        },
        "optional": optional,
    }
    return json.dumps(document, separators=(",", ":")).encode()


def sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> str:
    """What cosign puts in the signature annotation: base64 of the DER ECDSA-SHA256 signature."""
    return base64.b64encode(key.sign(data, ec.ECDSA(hashes.SHA256()))).decode()


@dataclass(frozen=True)
class Layer:
    """One signature layer to put into a signature image."""

    payload: bytes
    annotations: Mapping[str, str]
    media_type: str = SIMPLE_SIGNING


def signed_layer(
    key: ec.EllipticCurvePrivateKey, docker_reference: str, digest: str, **extra: str
) -> Layer:
    data = payload(docker_reference, digest)
    return Layer(data, {SIGNATURE_ANNOTATION: sign(key, data), **extra})


@dataclass(frozen=True)
class SignatureImage:
    """A ``.sig`` image: manifest bytes, and every blob (config and payloads) by digest."""

    manifest: bytes
    media_type: str
    blobs: dict[str, bytes] = field(repr=False)

    @property
    def digest(self) -> str:
        return digest_of(self.manifest)

    @property
    def document(self) -> dict[str, object]:
        value: dict[str, object] = json.loads(self.manifest)
        return value

    @property
    def config(self) -> bytes:
        config = self.document["config"]
        assert isinstance(config, dict)
        return self.blobs[config["digest"]]


def signature_image(
    layers: Sequence[Layer], *, docker: bool = False, indent: int | None = None
) -> SignatureImage:
    """The signature image cosign writes for ``layers`` (``docker``: with
    ``COSIGN_DOCKER_MEDIA_TYPES=1``). ``indent`` writes the manifest the way cosign does not,
    to show that a tool extending it keeps other tools' bytes."""
    config = {
        "architecture": "",
        "created": ZERO_TIME,
        "history": [{"created": ZERO_TIME} for _ in layers],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": [digest_of(layer.payload) for layer in layers]},
        "config": {},
    }
    config_bytes = json.dumps(config, separators=(",", ":")).encode()
    blobs = {digest_of(config_bytes): config_bytes}
    descriptors = []
    for layer in layers:
        blobs[digest_of(layer.payload)] = layer.payload
        descriptor: dict[str, object] = {
            "mediaType": layer.media_type,
            "size": len(layer.payload),
            "digest": digest_of(layer.payload),
        }
        if layer.annotations:
            descriptor["annotations"] = dict(layer.annotations)
        descriptors.append(descriptor)
    media_type = DOCKER_MANIFEST if docker else OCI_MANIFEST
    manifest = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {
            "mediaType": DOCKER_CONFIG if docker else OCI_CONFIG,
            "size": len(config_bytes),
            "digest": digest_of(config_bytes),
        },
        "layers": descriptors,
    }
    separators = (",", ":") if indent is None else None
    raw = json.dumps(manifest, indent=indent, separators=separators).encode()
    return SignatureImage(raw, media_type, blobs)


# --- verification ----------------------------------------------------------------------------


class NotVerified(AssertionError):
    """No layer passes; the message lists why each failed."""


def check_layout(manifest: bytes, blobs: Mapping[str, bytes]) -> dict[str, object]:
    """The manifest is a cosign signature image whose config and layers are consistent."""
    document = json.loads(manifest)
    assert document["schemaVersion"] == 2, document
    assert document["mediaType"] in (OCI_MANIFEST, DOCKER_MANIFEST), document["mediaType"]
    config_descriptor = document["config"]
    config = blobs[config_descriptor["digest"]]
    assert digest_of(config) == config_descriptor["digest"]
    assert len(config) == config_descriptor["size"]
    layers = document["layers"]
    for layer in layers:
        data = blobs[layer["digest"]]
        assert digest_of(data) == layer["digest"], layer
        assert len(data) == layer["size"], layer
    if config_descriptor["mediaType"] in (OCI_CONFIG, DOCKER_CONFIG):
        config_document = json.loads(config)
        assert config_document["rootfs"]["type"] == "layers"
        assert config_document["rootfs"]["diff_ids"] == [layer["digest"] for layer in layers]
        assert len(config_document["history"]) == len(layers)
    value: dict[str, object] = document
    return value


def verify(
    manifest: bytes,
    blobs: Mapping[str, bytes],
    public_key_pem: bytes,
    image_digest: str,
) -> list[str]:
    """The digests of the layers that are signatures of ``image_digest`` by the key: media type
    simple-signing, a base64 signature annotation, ECDSA-SHA256 over the payload bytes
    verifying with the key, and a payload whose docker-manifest-digest is ``image_digest``.
    Raises :class:`NotVerified` (saying why for each layer) when there is none."""
    document = check_layout(manifest, blobs)
    public_key = serialization.load_pem_public_key(public_key_pem)
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert public_key.curve.name == "secp256r1"
    verified: list[str] = []
    reasons: list[str] = []
    layers = document["layers"]
    assert isinstance(layers, list)
    for layer in layers:
        digest = layer["digest"]
        if layer["mediaType"] != SIMPLE_SIGNING:
            reasons.append(f"{digest}: media type {layer['mediaType']}")
            continue
        encoded = (layer.get("annotations") or {}).get(SIGNATURE_ANNOTATION)
        if not encoded:
            reasons.append(f"{digest}: no {SIGNATURE_ANNOTATION} annotation")
            continue
        data = blobs[digest]
        try:
            public_key.verify(base64.b64decode(encoded), data, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            reasons.append(f"{digest}: the signature does not verify with the key")
            continue
        claim = json.loads(data)["critical"]
        if claim["image"]["docker-manifest-digest"] != image_digest:
            reasons.append(f"{digest}: signs {claim['image']['docker-manifest-digest']}")
            continue
        if claim["type"] != SIGNATURE_TYPE:
            reasons.append(f"{digest}: type {claim['type']!r}")
            continue
        verified.append(digest)
    if not verified:
        raise NotVerified(f"no signature of {image_digest} by the key: " + "; ".join(reasons))
    return verified
