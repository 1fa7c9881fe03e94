"""cosign keys: encrypted ``cosign.key`` files made here from the format (tests/harness/cosign.py,
apart from imagesync), unencrypted PKCS#8 / SEC 1 keys, ``cosign.pub``; every way a key file
can be unusable is a ConfigError that names the file and the fix, and never the secret."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import nacl.secret
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from imagesync.errors import ConfigError
from imagesync.redact import REDACTED, secrets
from imagesync.signing import (
    PASSWORD_VARIABLE,
    cosign_password,
    load_signing_key,
    load_verification_key,
)
from tests.harness import cosign

PASSPHRASE = b"correct horse battery staple"


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return cosign.new_key()


@pytest.fixture(scope="module")
def encrypted(key: ec.EllipticCurvePrivateKey) -> bytes:
    """``key`` as cosign.key under PASSPHRASE (made once: scrypt is the slow part)."""
    return cosign.encrypted_key_pem(key, PASSPHRASE)


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def assert_verifies(public: ec.EllipticCurvePublicKey, signature: bytes, data: bytes) -> None:
    public.verify(signature, data, ec.ECDSA(hashes.SHA256()))


@pytest.mark.parametrize("pem_type", [cosign.SIGSTORE_PEM_TYPE, cosign.COSIGN_PEM_TYPE])
def test_encrypted_key_in_cosigns_format_signs_with_its_passphrase(
    tmp_path: Path, key: ec.EllipticCurvePrivateKey, pem_type: str
) -> None:
    path = write(
        tmp_path, "cosign.key", cosign.encrypted_key_pem(key, PASSPHRASE, pem_type=pem_type)
    )
    loaded = load_signing_key(path, PASSPHRASE)
    assert loaded.source == str(path)
    assert_verifies(key.public_key(), loaded.sign(b"payload"), b"payload")
    own = load_verification_key(write(tmp_path, "cosign.pub", cosign.public_pem(key)))
    assert loaded.verification_key.fingerprint == own.fingerprint


def test_wrong_passphrase_is_a_clear_error_that_names_the_file_and_the_fix(
    tmp_path: Path, encrypted: bytes
) -> None:
    path = write(tmp_path, "team.key", encrypted)
    with pytest.raises(ConfigError) as raised:
        load_signing_key(path, b"not the passphrase")
    text = str(raised.value)
    assert str(path) in text
    assert f"the passphrase in {PASSWORD_VARIABLE} does not open it" in text
    assert f"set {PASSWORD_VARIABLE} to the passphrase" in (raised.value.hint or "")
    assert "not the passphrase" not in text and PASSPHRASE.decode() not in text


def test_missing_passphrase_says_that_COSIGN_PASSWORD_is_not_set(
    tmp_path: Path, encrypted: bytes
) -> None:
    path = write(tmp_path, "team.key", encrypted)
    with pytest.raises(ConfigError, match=f"is encrypted and {PASSWORD_VARIABLE} is not set"):
        load_signing_key(path, None)


def test_a_key_made_with_an_empty_passphrase_needs_no_variable(
    tmp_path: Path, key: ec.EllipticCurvePrivateKey
) -> None:
    """``COSIGN_PASSWORD= cosign generate-key-pair`` makes such keys; cosign in CI reads the
    empty passphrase from an empty stdin, so imagesync takes it when the variable is unset."""
    path = write(tmp_path, "cosign.key", cosign.encrypted_key_pem(key, b""))
    without = load_signing_key(path, None)
    assert without.verification_key == load_signing_key(path, b"").verification_key


def test_COSIGN_PASSWORD_is_read_as_cosign_reads_it() -> None:
    assert cosign_password({}) is None
    assert cosign_password({PASSWORD_VARIABLE: ""}) == b""  # set but empty: the empty passphrase
    assert cosign_password({PASSWORD_VARIABLE: "pässwörd 1"}) == "pässwörd 1".encode()
    assert "pässwörd 1" not in secrets("log line with pässwörd 1")


@pytest.mark.parametrize(
    "private_format",
    [serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL],
)
def test_unencrypted_pkcs8_and_sec1_keys_sign(
    tmp_path: Path, key: ec.EllipticCurvePrivateKey, private_format: serialization.PrivateFormat
) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM, private_format, serialization.NoEncryption()
    )
    assert data.startswith(
        b"-----BEGIN PRIVATE KEY"
        if private_format is serialization.PrivateFormat.PKCS8
        else b"-----BEGIN EC PRIVATE KEY"
    )
    loaded = load_signing_key(write(tmp_path, "openssl.pem", data), PASSPHRASE)
    assert_verifies(key.public_key(), loaded.sign(b"x"), b"x")


@pytest.mark.parametrize(
    ("make", "described"),
    [
        (lambda: ec.generate_private_key(ec.SECP384R1()), "an ECDSA P-384 key"),
        (lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048), "an RSA-2048 key"),
        (ed25519.Ed25519PrivateKey.generate, "an Ed25519 key"),
    ],
)
def test_other_key_types_are_refused_when_loaded(
    tmp_path: Path, make: object, described: str
) -> None:
    assert callable(make)
    other = make()
    path = write(tmp_path, "other.pem", cosign.pkcs8_pem(other))
    with pytest.raises(ConfigError) as raised:
        load_signing_key(path, None)
    assert f"{path} is {described}; imagesync signs with ECDSA P-256 keys" in str(raised.value)
    assert "cosign generate-key-pair" in (raised.value.hint or "")
    public_pem = other.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    public = write(tmp_path, "other.pub", public_pem)
    with pytest.raises(ConfigError, match=f"is {described}; imagesync verifies ECDSA P-256"):
        load_verification_key(public)


def test_an_encrypted_key_of_another_curve_is_refused_after_opening(tmp_path: Path) -> None:
    other = ec.generate_private_key(ec.SECP384R1())
    path = write(tmp_path, "p384.key", cosign.encrypted_key_pem(other, PASSPHRASE))
    with pytest.raises(ConfigError, match="is an ECDSA P-384 key"):
        load_signing_key(path, PASSPHRASE)


def test_an_encrypted_key_whose_plaintext_is_not_pkcs8_is_refused_as_cosign_does(
    tmp_path: Path, key: ec.EllipticCurvePrivateKey
) -> None:
    sec1 = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    path = write(tmp_path, "sec1.key", cosign.encrypted_key_pem(key, PASSPHRASE, plaintext=sec1))
    with pytest.raises(ConfigError, match="holds no PKCS#8 private key"):
        load_signing_key(path, PASSPHRASE)


def test_scrypt_parameters_cosign_never_writes_are_refused_before_any_work(
    tmp_path: Path, encrypted: bytes
) -> None:
    """The parameters are the file's: N=2^22 would cost 4 GiB of memory if obeyed."""
    body = b"".join(encrypted.split(b"\n")[1:-2])
    document = base64.b64decode(body).replace(b'"N":32768', b'"N":4194304')
    path = write(tmp_path, "dos.key", cosign.pem(cosign.SIGSTORE_PEM_TYPE, document))
    started = time.monotonic()
    with pytest.raises(ConfigError, match="scrypt parameters N=4194304, r=8, p=1 are not a set"):
        load_signing_key(path, PASSPHRASE)
    assert time.monotonic() - started < 1


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "is not a PEM key"),
        (b"just some text\n", "is not a PEM key"),
        (
            cosign.pem(cosign.SIGSTORE_PEM_TYPE, b"not json"),
            "is not a cosign key: its contents are not JSON",
        ),
        (
            cosign.pem(cosign.SIGSTORE_PEM_TYPE, b'{"kdf":{"name":"pbkdf2"},"cipher":{}}'),
            "key derivation 'pbkdf2' is not scrypt",
        ),
        (
            b"-----BEGIN PGP PRIVATE KEY BLOCK-----\nabcd\n-----END PGP PRIVATE KEY BLOCK-----\n",
            "is a PEM 'PGP PRIVATE KEY BLOCK', not a private key",
        ),
        (
            b"-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n"
            b"DEK-Info: AES-128-CBC,00\n\nAAAA\n-----END EC PRIVATE KEY-----\n",
            "legacy PEM encryption",
        ),
        (
            b"-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n",
            "its PEM body is not base64",
        ),
        (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "holds no PKCS#8 key"),
    ],
)
def test_a_file_that_is_not_a_usable_key_is_a_clear_error(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    path = write(tmp_path, "bad.key", content)
    with pytest.raises(ConfigError) as raised:
        load_signing_key(path, PASSPHRASE)
    assert str(path) in str(raised.value)
    assert expected in str(raised.value)
    assert raised.value.hint


def test_public_and_private_keys_given_the_wrong_way_round(
    tmp_path: Path, key: ec.EllipticCurvePrivateKey
) -> None:
    public = write(tmp_path, "cosign.pub", cosign.public_pem(key))
    with pytest.raises(ConfigError, match="is a public key") as raised:
        load_signing_key(public, None)
    assert "cosign.key" in (raised.value.hint or "")
    private = write(tmp_path, "cosign.key", cosign.pkcs8_pem(key))
    with pytest.raises(ConfigError, match="is a PEM 'PRIVATE KEY', not a public key") as raised:
        load_verification_key(private)
    assert "cosign public-key" in (raised.value.hint or "")


def test_missing_and_oversized_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read signing key .*nope\.key: No such file"):
        load_signing_key(tmp_path / "nope.key", None)
    with pytest.raises(ConfigError, match="too large to be a key file"):
        load_verification_key(write(tmp_path, "big.pub", b"x" * 100_000))


def test_the_key_and_passphrase_never_reach_any_output(
    tmp_path: Path, key: ec.EllipticCurvePrivateKey, encrypted: bytes
) -> None:
    """Once read, every textual form of the key and the passphrase is a known secret: the
    filter all logs and HTTP error texts pass through removes them."""
    plain = cosign.pkcs8_pem(key)
    load_signing_key(write(tmp_path, "plain.pem", plain), None)
    with pytest.raises(ConfigError) as raised:
        load_signing_key(write(tmp_path, "enc.key", encrypted), b"wrong guess 123")
    assert "wrong guess 123" not in str(raised.value)
    cosign_password({PASSWORD_VARIABLE: PASSPHRASE.decode()})
    scalar = key.private_numbers().private_value
    leaks = [
        PASSPHRASE.decode(),
        *plain.decode().splitlines()[1:-1],
        *encrypted.decode().splitlines()[1:-2],
        f"{scalar:x}",
        str(scalar),
    ]
    for leak in leaks:
        assert leak not in secrets(f"error: {leak} (while signing)"), leak
        assert REDACTED in secrets(f"error: {leak} (while signing)")


def test_a_key_file_with_windows_line_ends_loads(
    tmp_path: Path, key: ec.EllipticCurvePrivateKey, encrypted: bytes
) -> None:
    path = write(tmp_path, "cosign.key", encrypted.replace(b"\n", b"\r\n"))
    assert load_signing_key(path, PASSPHRASE).verification_key.public_key.public_numbers() == (
        key.public_key().public_numbers()
    )


def test_the_harness_secretbox_is_nacls(encrypted: bytes) -> None:
    """The test key maker's XSalsa20-Poly1305 (written from the papers) agrees with libsodium,
    so keys made from the format here are keys made as cosign makes them."""
    box_key, nonce, message = bytes(range(32)), bytes(range(24)), b"PKCS#8 DER goes here" * 9
    sealed = cosign.secretbox_seal(box_key, nonce, message)
    assert sealed == nacl.secret.SecretBox(box_key).encrypt(message, nonce).ciphertext
    assert cosign.secretbox_open(box_key, nonce, sealed) == message
    der = cosign.open_encrypted_key(encrypted, PASSPHRASE)
    assert serialization.load_der_private_key(der, None)
