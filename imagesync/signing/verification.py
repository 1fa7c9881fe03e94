"""Whether an image carries a cosign signature by one of a set of keys, and if not, what it has.

An image passes when some simple-signing layer of its ``.sig`` image has a signature that
verifies, with one of the keys, over a payload whose ``docker-manifest-digest`` is the
image's digest: what ``cosign verify --key`` checks (sigstore/cosign ``pkg/cosign/verify.go``:
the signature over the payload bytes first, then the claim's digest), without the Rekor part
(``--insecure-ignore-tlog``), since a mirror's own keys are not in a transparency log.

When it does not pass, the layers found are sorted into what a reviewer can act on:

- ``other-image``: the payload names another digest (a signature copied from another image,
  even when it verifies with one of the keys);
- ``other-key``: it verifies with the key the layer names itself, a keyless certificate or the
  public key in its Rekor bundle, which is not one of the keys tried;
- ``unverified``: it verifies with none of the keys, and names no key. A plain key signature
  does not say which key made it, so "made with another key" and "altered" cannot be told
  apart here, and the words say so;
- ``invalid``: not a signature at all: no or non-base64 signature annotation, a payload that is
  missing, too large, not simple-signing JSON or not what its digest says, or a signature that
  does not verify with the key the layer names (altered).

A key the layer names is used only to say what was found, never to pass an image.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from imagesync.content.manifest import sha256_digest
from imagesync.errors import NotFound, shorten
from imagesync.signing.keys import VerificationKey
from imagesync.signing.payload import MAX_PAYLOAD_BYTES, BadPayload, read_claim
from imagesync.signing.sigimage import BlobFetcher, SignatureImage, SignatureLayer, signature_tag

CERTIFICATE_ANNOTATION = "dev.sigstore.cosign/certificate"
BUNDLE_ANNOTATION = "dev.sigstore.cosign/bundle"
# How many layers of one kind a message spells out before counting the rest.
_SHOWN_PER_KIND = 2


class Kind(enum.Enum):
    VERIFIED = "verified"
    OTHER_IMAGE = "other-image"
    OTHER_KEY = "other-key"
    UNVERIFIED = "unverified"
    INVALID = "invalid"


@dataclass(frozen=True)
class Finding:
    """What one simple-signing layer turned out to be. ``key`` is the key tried that verified
    it (``verified``, and ``other-image`` when it did); ``detail`` says it in words."""

    layer: str
    kind: Kind
    detail: str
    key: VerificationKey | None = None


@dataclass(frozen=True)
class Verification:
    """The answer for one image: which keys were tried and what each signature layer was.

    ``signature_image`` is the digest of the ``.sig`` image looked at (None: there is no such
    tag). ``other_layers`` counts layers that are not simple-signing signatures.
    """

    image_digest: str
    keys: tuple[VerificationKey, ...]
    signature_image: str | None
    findings: tuple[Finding, ...]
    other_layers: int = 0

    @property
    def verified_by(self) -> VerificationKey | None:
        return next((f.key for f in self.findings if f.kind is Kind.VERIFIED), None)

    @property
    def ok(self) -> bool:
        return self.verified_by is not None

    @property
    def message(self) -> str:
        """One line for a plan entry."""
        verified = self.verified_by
        if verified is not None:
            return f"cosign signature of {self.image_digest} verifies with {verified.name}"
        keys = ", ".join(key.name for key in self.keys) or "none"
        return (
            f"no cosign signature of {self.image_digest} verifies with the keys tried "
            f"({keys}): {self._found()}"
        )

    def _found(self) -> str:
        tag = signature_tag(self.image_digest)
        if self.signature_image is None:
            return f"there is no {tag} tag"
        if not self.findings:
            others = self.other_layers
            extra = f", only {others} other layer{'s' if others != 1 else ''}" if others else ""
            return f"{tag} holds no simple-signing signature{extra}"
        parts = []
        for kind in Kind:
            details = [f.detail for f in self.findings if f.kind is kind]
            if not details:
                continue
            shown = "; ".join(details[:_SHOWN_PER_KIND])
            more = len(details) - _SHOWN_PER_KIND
            parts.append(shown + (f"; and {more} more like it" if more > 0 else ""))
        count = len(self.findings)
        return f"{tag} holds {count} signature{'s' if count != 1 else ''}: " + "; ".join(parts)


def verify_image(
    image_digest: str,
    keys: Sequence[VerificationKey],
    signature_image: SignatureImage | None,
    fetch_blob: BlobFetcher,
) -> Verification:
    """Check ``image_digest``'s signature image (None: its ``.sig`` tag does not exist)
    against ``keys``. ``fetch_blob`` returns a payload's bytes by digest (it may raise
    :class:`NotFound`); it is asked for no more than it takes to find a verifying signature.
    """
    findings: list[Finding] = []
    other_layers = 0
    for layer in signature_image.layers if signature_image else ():
        if not layer.is_simple_signing:
            other_layers += 1
            continue
        finding = _examine(layer, image_digest, keys, fetch_blob)
        findings.append(finding)
        if finding.kind is Kind.VERIFIED:
            break
    return Verification(
        image_digest=image_digest,
        keys=tuple(keys),
        signature_image=signature_image.manifest.digest if signature_image else None,
        findings=tuple(findings),
        other_layers=other_layers,
    )


def _examine(
    layer: SignatureLayer, image_digest: str, keys: Sequence[VerificationKey], fetch: BlobFetcher
) -> Finding:
    digest = layer.descriptor.digest
    named = f"layer {digest[:19]}"

    def invalid(why: str) -> Finding:
        return Finding(digest, Kind.INVALID, f"{named}: not a valid signature ({why})")

    signature = layer.signature
    if signature is None:
        return invalid("no base64 dev.cosignproject.cosign/signature annotation")
    if layer.descriptor.size > MAX_PAYLOAD_BYTES:
        return invalid(f"a payload of {layer.descriptor.size} bytes is no simple-signing payload")
    try:
        payload = fetch(digest)
    except NotFound:
        return invalid("its payload blob is missing")
    if sha256_digest(payload) != digest:
        return invalid("its payload is not what its digest says: altered")
    try:
        claim = read_claim(payload)
    except BadPayload as error:
        return invalid(str(error))
    key = next((k for k in keys if k.verifies(payload, signature)), None)
    if claim.digest != image_digest:
        for_what = f"for another image ({shorten(claim.digest, 80) or 'no digest named'})"
        by = f"signed by {key.name}" if key else "by none of the keys tried"
        return Finding(digest, Kind.OTHER_IMAGE, f"{named}: {by}, {for_what}", key)
    if key is not None:
        return Finding(digest, Kind.VERIFIED, f"{named}: signed by {key.name}", key)
    own = _named_key(layer.annotations)
    if own is None:
        return Finding(
            digest,
            Kind.UNVERIFIED,
            f"{named}: made with another key, or altered (a key signature does not name its key)",
        )
    public_key, who = own
    if VerificationKey.of(public_key, who).verifies(payload, signature):
        return Finding(digest, Kind.OTHER_KEY, f"{named}: signed with another key ({who})")
    return invalid(f"it does not verify with the key it names ({who}): altered")


def _named_key(annotations: dict[str, str]) -> tuple[ec.EllipticCurvePublicKey, str] | None:
    """The key a layer names itself: its keyless certificate, or the public key or certificate
    in its Rekor bundle (which we do not verify: this only names the key in a message)."""
    pem = annotations.get(CERTIFICATE_ANNOTATION) or _bundle_key(annotations.get(BUNDLE_ANNOTATION))
    if not pem:
        return None
    key: object
    try:
        if "BEGIN CERTIFICATE" in pem:
            certificate = x509.load_pem_x509_certificate(pem.encode())
            key, who = certificate.public_key(), _certificate_subject(certificate)
        else:
            key, who = load_pem_public_key(pem.encode()), "the public key in its Rekor bundle"
    except ValueError:
        return None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        return None
    return key, who


def _bundle_key(bundle: str | None) -> str | None:
    """``Payload.body`` of cosign's Rekor bundle is a base64 Rekor entry whose
    ``spec.signature.publicKey.content`` is the base64 PEM of the signer's key or certificate."""
    if not bundle:
        return None
    try:
        body = json.loads(base64.b64decode(json.loads(bundle)["Payload"]["body"]))
        content = body["spec"]["signature"]["publicKey"]["content"]
        return base64.b64decode(content).decode("ascii")
    except (ValueError, KeyError, TypeError, binascii.Error, RecursionError):
        return None


def _certificate_subject(certificate: x509.Certificate) -> str:
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        identities = [str(n.value) for n in names]
    except (x509.ExtensionNotFound, ValueError):
        identities = []
    subject = identities[0] if identities else certificate.subject.rfc4514_string() or "?"
    return f"the certificate of {shorten(subject, 80)}"
