"""cosign-compatible signing and verification of the images imagesync mirrors.

What it is: cosign's key-based image signatures, the format that ``cosign sign --key`` writes
(as cosign 1 and 2 do by default; cosign 3 still verifies it, falling back to it when an image
has no Sigstore bundle) and that ``cosign verify --key``, Kyverno and the Sigstore
policy-controller check. One module per part of the format, each with its specification:

- :mod:`~imagesync.signing.keys`: ``cosign.key`` (scrypt + NaCl secretbox over PKCS#8) and
  unencrypted PKCS#8 / SEC 1 private keys, ``cosign.pub`` public keys; ECDSA P-256 only;
  ``COSIGN_PASSWORD`` as cosign reads it;
- :mod:`~imagesync.signing.encrypted`: go-securesystemslib's passphrase-encrypted container;
- :mod:`~imagesync.signing.payload`: the simple-signing payload a signature signs;
- :mod:`~imagesync.signing.sigimage`: the ``sha256-<hex>.sig`` signature image, and appending
  signatures to it without touching what is there;
- :mod:`~imagesync.signing.verification`: does an image carry a signature by one of a set of
  keys, and if not, what does it carry;
- :mod:`~imagesync.signing.gojson`: JSON as Go writes it, so our bytes are cosign's bytes.

Why this shape: every function here is pure, over bytes and frozen dataclasses. Reading the
``.sig`` tag and blobs and writing what an update lists is the caller's (planner, applier,
client), so this package needs no registry, and the registry code needs to know nothing
about cosign beyond "these blobs, then this manifest to that tag".

Why our own code and not the cosign binary: the format is small and fixed, and a binary would
be a second tool to install, pin and trust in every CI job that runs imagesync; Python's
Sigstore client is built around keyless signing and Sigstore bundles rather than cosign's
encrypted key files and ``.sig`` tags.
``cryptography`` does ECDSA and key parsing; PyNaCl (libsodium) does scrypt and secretbox.
"""

from imagesync.signing.keys import (
    PASSWORD_VARIABLE,
    SigningKey,
    VerificationKey,
    cosign_password,
    load_public_half,
    load_signing_key,
    load_verification_key,
)
from imagesync.signing.payload import Claim, docker_reference, read_claim, simple_signing_payload
from imagesync.signing.sigimage import (
    BadSignatureImage,
    Blob,
    BlobFetcher,
    Signature,
    SignatureImage,
    SignatureImageUpdate,
    SignatureLayer,
    extend,
    has_signature,
    sign_image,
    signature_tag,
)
from imagesync.signing.verification import Finding, Kind, Verification, verify_image

__all__ = [
    "PASSWORD_VARIABLE",
    "BadSignatureImage",
    "Blob",
    "BlobFetcher",
    "Claim",
    "Finding",
    "Kind",
    "Signature",
    "SignatureImage",
    "SignatureImageUpdate",
    "SignatureLayer",
    "SigningKey",
    "Verification",
    "VerificationKey",
    "cosign_password",
    "docker_reference",
    "extend",
    "has_signature",
    "load_public_half",
    "load_signing_key",
    "load_verification_key",
    "read_claim",
    "sign_image",
    "signature_tag",
    "simple_signing_payload",
    "verify_image",
]
