"""cosign's keys: a private key to sign with, public keys to verify with.

Formats, as cosign reads and writes them (sigstore/cosign ``pkg/cosign/keys.go``):

- ``cosign.key`` from ``cosign generate-key-pair``: PEM ``ENCRYPTED SIGSTORE PRIVATE KEY``
  (cosign 1 wrote ``ENCRYPTED COSIGN PRIVATE KEY``; both are read) around a passphrase-sealed
  PKCS#8 DER key (see :mod:`imagesync.signing.encrypted`). Its plaintext must be PKCS#8:
  cosign's ``LoadPrivateKey`` refuses anything else, and a key cosign cannot use would only
  surprise later.
- Unencrypted ``PRIVATE KEY`` (PKCS#8), what ``openssl genpkey`` writes, and
  ``EC PRIVATE KEY`` (SEC 1), what ``openssl ecparam -genkey`` writes: the same key in
  another wrapper, and ``cosign import-key-pair`` takes both, so a team that made its key with
  openssl needs no conversion step. A file on disk is then the only protection of the key;
  that is the user's choice, as it is for cosign.
- ``cosign.pub``: PEM ``PUBLIC KEY`` (PKIX SubjectPublicKeyInfo).

Only ECDSA P-256 keys, signing with SHA-256: what ``generate-key-pair`` makes, and the one
combination on which cosign's signer and its verifier agree by default (for other curves its
signer picks SHA-384/512 while ``cosign verify`` assumes SHA-256). Other key types are refused
when the key is loaded, with what to do instead.

The passphrase: cosign takes ``COSIGN_PASSWORD`` when it is set, even to the empty string;
unset, it prompts on a terminal or reads stdin to its end. imagesync runs unattended (CI),
so it never prompts and leaves stdin alone: with the variable unset it tries the empty
passphrase, which is what cosign gets from an empty stdin in CI, and otherwise says that the
variable is missing. Loading (and so every passphrase or key problem) happens before any
request. The passphrase and every form of the key are added to :data:`imagesync.redact.secrets`
when read, so no log line or message can carry them; no message here quotes either.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from imagesync.errors import ConfigError, shorten
from imagesync.inputfile import InputTooLarge, UnreadableInput, read_input
from imagesync.redact import secrets
from imagesync.signing.encrypted import NotEncryptedDocument, WrongPassphrase, decrypt

PASSWORD_VARIABLE = "COSIGN_PASSWORD"
ENCRYPTED_PEM_TYPES = ("ENCRYPTED SIGSTORE PRIVATE KEY", "ENCRYPTED COSIGN PRIVATE KEY")
PKCS8_PEM_TYPE = "PRIVATE KEY"
SEC1_PEM_TYPE = "EC PRIVATE KEY"
PUBLIC_PEM_TYPE = "PUBLIC KEY"
# A key file is a few hundred bytes; anything much larger is the wrong file.
MAX_KEY_FILE_BYTES = 64 * 1024

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.DOTALL)
_P256 = "secp256r1"
_CURVE_NAMES = {
    "secp224r1": "P-224",
    "secp256r1": "P-256",
    "secp384r1": "P-384",
    "secp521r1": "P-521",
}
_SIGNATURE_HASH = ec.ECDSA(hashes.SHA256())
_MAKE_A_KEY = "make one with cosign generate-key-pair, whose keys are ECDSA P-256"


@dataclass(frozen=True)
class VerificationKey:
    """A public key that cosign signatures are checked against.

    ``source`` says where it came from (the file, as given); ``fingerprint`` is the sha256 of
    its DER SubjectPublicKeyInfo, which tells two keys apart in messages.
    """

    source: str
    fingerprint: str
    public_key: ec.EllipticCurvePublicKey = field(repr=False, compare=False)

    @classmethod
    def of(cls, public_key: ec.EllipticCurvePublicKey, source: str) -> VerificationKey:
        der = public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return cls(source, "sha256:" + hashlib.sha256(der).hexdigest(), public_key)

    @property
    def name(self) -> str:
        """How messages name the key: its file and the start of its fingerprint."""
        return f"{self.source} ({self.fingerprint[:19]})"

    def verifies(self, payload: bytes, signature: bytes) -> bool:
        """Whether ``signature`` (ASN.1 DER, as cosign writes it) is this key's over ``payload``."""
        try:
            self.public_key.verify(signature, payload, _SIGNATURE_HASH)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class SigningKey:
    """A private key that signs; ``verification_key`` is its public half."""

    source: str
    verification_key: VerificationKey
    private_key: ec.EllipticCurvePrivateKey = field(repr=False, compare=False)

    def sign(self, payload: bytes) -> bytes:
        """ECDSA-SHA256 over ``payload``, ASN.1 DER encoded (what cosign base64s into the
        layer annotation)."""
        return self.private_key.sign(payload, _SIGNATURE_HASH)


def cosign_password(environ: Mapping[str, str] | None = None) -> bytes | None:
    """``COSIGN_PASSWORD`` as cosign reads it: its bytes when set (also when empty), else None."""
    value = (os.environ if environ is None else environ).get(PASSWORD_VARIABLE)
    if value is None:
        return None
    secrets.add(value)
    return os.fsencode(value)


def load_signing_key(path: str | Path, passphrase: bytes | None) -> SigningKey:
    """The private key in ``path``; ``passphrase`` opens an encrypted one (None: not given).

    Raises :class:`ConfigError` naming the file and the fix for anything that keeps it from
    signing: unreadable, not PEM, a public key, a wrong or missing passphrase, not ECDSA P-256.
    """
    source = str(path)
    what = f"signing key {source}"
    pem_type, body = _read_pem(path, what)
    if pem_type not in (*ENCRYPTED_PEM_TYPES, PKCS8_PEM_TYPE, SEC1_PEM_TYPE):
        raise _not_a_signing_key(what, pem_type)
    der = _decoded(body, what)
    if pem_type in ENCRYPTED_PEM_TYPES:
        der = _open(der, passphrase, what)
        if not _is_pkcs8(der):
            raise ConfigError(
                f"{what} opens, but holds no PKCS#8 private key (cosign cannot use it either)",
                f"{_MAKE_A_KEY}, or convert the key with cosign import-key-pair",
            )
    elif pem_type == PKCS8_PEM_TYPE and not _is_pkcs8(der):
        raise ConfigError(f"{what} says PRIVATE KEY but holds no PKCS#8 key", _MAKE_A_KEY)
    try:
        private_key = serialization.load_der_private_key(der, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ConfigError(f"{what} holds no private key that can be read", _MAKE_A_KEY) from None
    if not isinstance(private_key, ec.EllipticCurvePrivateKey) or private_key.curve.name != _P256:
        raise ConfigError(
            f"{what} is {_describe(private_key)}; imagesync signs with ECDSA P-256 keys",
            _MAKE_A_KEY,
        )
    _hide_private_value(private_key)
    return SigningKey(source, VerificationKey.of(private_key.public_key(), source), private_key)


def load_verification_key(path: str | Path) -> VerificationKey:
    """The public key in ``path`` (``cosign.pub``); :class:`ConfigError` when it is not one."""
    source = str(path)
    what = f"verification key {source}"
    pem_type, body = _read_pem(path, what)
    if pem_type != PUBLIC_PEM_TYPE:
        hint = (
            "give the public key: cosign public-key --key FILE prints it (cosign.pub)"
            if "PRIVATE" in pem_type
            else "give the PEM PUBLIC KEY file, as cosign generate-key-pair writes cosign.pub"
        )
        raise ConfigError(f"{what} is a PEM {shorten(pem_type, 60)!r}, not a public key", hint)
    try:
        public_key = serialization.load_der_public_key(_decoded(body, what))
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(f"{what} holds no public key that can be read", _MAKE_A_KEY) from None
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or public_key.curve.name != _P256:
        raise ConfigError(
            f"{what} is {_describe(public_key)}; imagesync verifies ECDSA P-256 keys",
            "sign with an ECDSA P-256 key, the kind cosign generate-key-pair makes",
        )
    return VerificationKey.of(public_key, source)


def load_public_half(path: str | Path, passphrase: bytes | None) -> VerificationKey:
    """The public key in ``path``, or the public half of the private key in it: what plans
    signatures without signing (a pull request's plan job has ``cosign.pub`` and no
    passphrase). ``passphrase`` is used only when ``path`` is an encrypted private key."""
    pem_type, _ = _read_pem(path, f"key {path}")
    if pem_type == PUBLIC_PEM_TYPE:
        return load_verification_key(path)
    try:
        return load_signing_key(path, passphrase).verification_key
    except ConfigError as error:
        if pem_type not in ENCRYPTED_PEM_TYPES:
            raise
        raise ConfigError(
            error.message,
            f"{error.hint}; or give the public key (cosign.pub), which needs no passphrase",
        ) from None


_ACCEPTED = (
    "give cosign's cosign.key (ENCRYPTED SIGSTORE PRIVATE KEY or ENCRYPTED COSIGN PRIVATE KEY) "
    "or an unencrypted PKCS#8 PRIVATE KEY or EC PRIVATE KEY; other formats convert with "
    "cosign import-key-pair"
)


def _read_pem(path: str | Path, what: str) -> tuple[str, bytes]:
    """The first PEM block's type and body (Go's ``pem.Decode`` also takes the first)."""
    try:
        data = read_input(path, MAX_KEY_FILE_BYTES)
    except InputTooLarge:
        raise ConfigError(
            f"{what} is larger than {MAX_KEY_FILE_BYTES // 1024} KiB, too large to be a key file",
            "check the file name",
        ) from None
    except UnreadableInput as error:
        raise ConfigError(f"cannot read {what}: {error.reason}", "check the file name") from None
    block = _PEM_BLOCK.search(data)
    if block is None:
        raise ConfigError(f"{what} is not a PEM key (no BEGIN/END block)", _ACCEPTED)
    pem_type, body = block.group(1).decode("ascii"), block.group(2)
    if "PRIVATE" in pem_type:
        _hide_pem_body(body)
    return pem_type, body


def _decoded(body: bytes, what: str) -> bytes:
    if b"Proc-Type:" in body:
        raise ConfigError(
            f"{what} uses OpenSSL's legacy PEM encryption, which imagesync does not read",
            "convert it to cosign's format with cosign import-key-pair",
        )
    try:
        return base64.b64decode(b"".join(body.split()), validate=True)
    except binascii.Error:
        raise ConfigError(f"{what}: its PEM body is not base64", _ACCEPTED) from None


def _not_a_signing_key(what: str, pem_type: str) -> ConfigError:
    if pem_type == PUBLIC_PEM_TYPE:
        return ConfigError(
            f"{what} is a public key", "give the private key (cosign.key); cosign.pub verifies"
        )
    if pem_type == "RSA PRIVATE KEY":
        return ConfigError(
            f"{what} is an RSA key; imagesync signs with ECDSA P-256 keys", _MAKE_A_KEY
        )
    if pem_type == "ENCRYPTED PRIVATE KEY":
        return ConfigError(
            f"{what} is a PKCS#8 key encrypted by OpenSSL, which imagesync does not read",
            "convert it to cosign's format with cosign import-key-pair",
        )
    return ConfigError(
        f"{what} is a PEM {shorten(pem_type, 60)!r}, not a private key imagesync reads", _ACCEPTED
    )


def _open(document: bytes, passphrase: bytes | None, what: str) -> bytes:
    try:
        return decrypt(document, b"" if passphrase is None else passphrase)
    except NotEncryptedDocument as error:
        raise ConfigError(
            f"{what} is not a cosign key: {error}", f"{_MAKE_A_KEY}, or check the file"
        ) from None
    except WrongPassphrase:
        if passphrase is None:
            raise ConfigError(
                f"{what} is encrypted and {PASSWORD_VARIABLE} is not set",
                f"set {PASSWORD_VARIABLE} to the passphrase it was made with; "
                "imagesync never prompts for it",
            ) from None
        raise ConfigError(
            f"{what}: the passphrase in {PASSWORD_VARIABLE} does not open it",
            f"set {PASSWORD_VARIABLE} to the passphrase given to cosign generate-key-pair; "
            "if it is that one, the key file is damaged",
        ) from None


def _is_pkcs8(der: bytes) -> bool:
    """PKCS#8's PrivateKeyInfo starts SEQUENCE { INTEGER 0|1, SEQUENCE (the algorithm) };
    SEC 1's ECPrivateKey starts SEQUENCE { INTEGER 1, OCTET STRING }: the fourth byte after the
    outer header tells them apart without a full ASN.1 parser."""
    if len(der) < 2 or der[0] != 0x30:
        return False
    offset = 2 + (der[1] & 0x7F if der[1] & 0x80 else 0)
    head = der[offset : offset + 4]
    return len(head) == 4 and head[0:2] == b"\x02\x01" and head[2] in (0, 1) and head[3] == 0x30


def _describe(key: object) -> str:
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return f"an ECDSA {_CURVE_NAMES.get(key.curve.name, key.curve.name)} key"
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return f"an RSA-{key.key_size} key"
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return "an Ed25519 key"
    return shorten(f"a {type(key).__name__}", 60)


def _hide_pem_body(body: bytes) -> None:
    lines = [line.decode("ascii", "replace") for line in body.split()]
    secrets.add("".join(lines))
    # A PEM line is 64 characters; a short last one is no key material worth a false match.
    for line in lines:
        if len(line) >= 16:
            secrets.add(line)


def _hide_private_value(key: ec.EllipticCurvePrivateKey) -> None:
    """Every textual form the key could take in a message: PKCS#8 PEM, DER base64, the scalar."""
    pkcs8 = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    encoded = base64.b64encode(pkcs8).decode()
    secrets.add(encoded)
    for start in range(0, len(encoded), 64):
        secrets.add(encoded[start : start + 64])
    value = key.private_numbers().private_value
    for text in (str(value), f"{value:x}", f"{value:064x}"):
        secrets.add(text)
