"""The passphrase-encrypted container inside cosign's private key PEM.

``cosign generate-key-pair`` PEM-wraps (type ``ENCRYPTED SIGSTORE PRIVATE KEY``, before
cosign 2 ``ENCRYPTED COSIGN PRIVATE KEY``) the output of go-securesystemslib's
``encrypted.Encrypt``: a JSON document

    {"kdf": {"name": "scrypt", "params": {"N": 65536, "r": 8, "p": 1}, "salt": <base64>},
     "cipher": {"name": "nacl/secretbox", "nonce": <base64, 24 bytes>},
     "ciphertext": <base64>}

The passphrase goes through scrypt (32-byte key) and opens the NaCl secretbox
(XSalsa20-Poly1305), whose plaintext is the PKCS#8 DER private key. Specified by its code:
github.com/secure-systems-lab/go-securesystemslib ``encrypted/encrypted.go`` (Go's JSON
writes ``[]byte`` as standard base64). Like it, we accept only the three scrypt parameter sets
it writes (legacy N=2^15, standard 2^16, OWASP 2^17; r=8, p=1): the parameters are
attacker-controlled, and a file asking for N=2^30 would otherwise cost gigabytes of memory.

PyNaCl (libsodium) does scrypt and secretbox: both are exactly NaCl's constructions, and a
library that is the reference for them beats a second implementation of our own.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import nacl.bindings
import nacl.exceptions
import nacl.secret

from imagesync.errors import shorten

SCRYPT_PARAMETERS = frozenset({(32768, 8, 1), (65536, 8, 1), (131072, 8, 1)})
_KEY_BYTES = 32
_NONCE_BYTES = nacl.secret.SecretBox.NONCE_SIZE
# 128·r·N for the largest accepted N, plus libsodium's working room.
_SCRYPT_MAXMEM = 256 * 1024 * 1024


class NotEncryptedDocument(ValueError):
    """The bytes are not the JSON document ``encrypted.Encrypt`` writes; the text says why."""


class WrongPassphrase(Exception):
    """The secretbox did not open: another passphrase, or damaged bytes (indistinguishable)."""


def decrypt(document: bytes, passphrase: bytes) -> bytes:
    """The plaintext sealed in ``document`` under ``passphrase``."""
    try:
        parsed = json.loads(document)
    except (ValueError, RecursionError):
        raise NotEncryptedDocument("its contents are not JSON") from None
    kdf = _member(parsed, "kdf", dict)
    cipher = _member(parsed, "cipher", dict)
    if kdf.get("name") != "scrypt":
        raise NotEncryptedDocument(f"key derivation {_shown(kdf.get('name'))} is not scrypt")
    if cipher.get("name") != "nacl/secretbox":
        raise NotEncryptedDocument(f"cipher {_shown(cipher.get('name'))} is not nacl/secretbox")
    params = _member(kdf, "params", dict)
    n, r, p = (params.get(name) for name in ("N", "r", "p"))
    if not all(type(v) is int for v in (n, r, p)) or (n, r, p) not in SCRYPT_PARAMETERS:
        raise NotEncryptedDocument(
            f"scrypt parameters N={_shown(n)}, r={_shown(r)}, p={_shown(p)} are not a set "
            "cosign writes"
        )
    salt = _base64(kdf, "salt")
    nonce = _base64(cipher, "nonce")
    ciphertext = _base64(parsed, "ciphertext")
    if len(nonce) != _NONCE_BYTES:
        raise NotEncryptedDocument(f"the nonce is {len(nonce)} bytes, secretbox needs 24")
    key = nacl.bindings.crypto_pwhash_scryptsalsa208sha256_ll(
        passphrase, salt, n, r, p, dklen=_KEY_BYTES, maxmem=_SCRYPT_MAXMEM
    )
    try:
        return nacl.secret.SecretBox(key).decrypt(ciphertext, nonce)
    except nacl.exceptions.CryptoError:
        raise WrongPassphrase() from None


def _member(value: Any, name: str, kind: type) -> Any:
    member = value.get(name) if isinstance(value, dict) else None
    if not isinstance(member, kind):
        raise NotEncryptedDocument(f"it has no {name!r} {'object' if kind is dict else 'text'}")
    return member


def _base64(value: dict[str, Any], name: str) -> bytes:
    text = _member(value, name, str)
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error:
        raise NotEncryptedDocument(f"its {name!r} is not base64") from None


def _shown(value: object) -> str:
    return shorten(repr(value), 40)
