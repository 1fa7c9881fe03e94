"""cosign's signature image: the ``sha256-<hex>.sig`` tag next to an image, and how it grows.

The layout, as cosign writes it (sigstore/cosign ``pkg/oci/static``, ``pkg/oci/mutate``,
``pkg/oci/empty`` on go-containerregistry's ``mutate.Append``; its README's "Storage
Specification"):

- tag ``sha256-<hex>.sig`` in the image's repository, ``<hex>`` the signed image's digest;
- an OCI image manifest (``mediaType`` set), config ``application/vnd.oci.image.config.v1+json``
  (a Docker v2 manifest when cosign ran with ``COSIGN_DOCKER_MEDIA_TYPES=1``: kept as found);
- one layer per signature: media type ``application/vnd.dev.cosign.simplesigning.v1+json``,
  the blob the simple-signing payload, the base64 ECDSA signature in the layer annotation
  ``dev.cosignproject.cosign/signature`` (keyless signatures add certificate and Rekor bundle
  annotations);
- the config ``{"architecture":"","created":"0001-01-01T00:00:00Z","history":[…],"os":"",
  "rootfs":{"type":"layers","diff_ids":[…]},"config":{}}``: ``mutate.Append`` adds a diff_id
  (the payload's sha256: the layer is not compressed) and an empty history entry per layer.

Adding a signature appends a layer. imagesync keeps what is there byte for byte: the new
manifest is the old manifest's text with the config descriptor replaced and the new layer
descriptors inserted before the ``layers`` array closes. (cosign re-serialises the whole
manifest, which would drop fields it does not know and rewrite other tools' formatting.) The
config is re-encoded from its parsed form with its key order kept, which gives cosign's own
bytes for a config cosign wrote. A config that is not an image config is left alone, as
go-containerregistry does for artifacts.

Signing what is signed already adds nothing: like cosign's duplicate detector
(``pkg/cosign/remote``), a layer with the same payload digest and media type whose signature
verifies with the key over that payload is the signature we would add.

Everything here is a pure function of bytes; the caller reads the ``.sig`` tag and blobs and
writes what :class:`SignatureImageUpdate` lists.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from imagesync.content import mediatypes
from imagesync.content.manifest import Descriptor, Manifest, sha256_digest
from imagesync.content.referrers import digest_tag
from imagesync.errors import RegistryError, shorten
from imagesync.reference import Repository, check_digest
from imagesync.signing.gojson import go_json
from imagesync.signing.keys import SigningKey, VerificationKey
from imagesync.signing.payload import (
    MAX_PAYLOAD_BYTES,
    BadPayload,
    read_claim,
    simple_signing_payload,
)

SIGNATURE_SUFFIX = ".sig"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
# cosign refuses signature images with more layers (pkg/oci/mutate/signatures.go, maxLayers).
MAX_LAYERS = 1000
ZERO_TIME = "0001-01-01T00:00:00Z"

BlobFetcher = Callable[[str], bytes]

# What cosign's empty.Signatures() starts from; appending to it gives cosign's bytes.
_EMPTY_CONFIG: dict[str, Any] = {
    "architecture": "",
    "created": ZERO_TIME,
    "history": [],
    "os": "",
    "rootfs": {"type": "layers", "diff_ids": []},
    "config": {},
}
_JSON_WHITESPACE = " \t\n\r"


class BadSignatureImage(RegistryError):
    """What a ``.sig`` tag holds cannot be extended as a cosign signature image."""


def signature_tag(image_digest: str) -> str:
    """cosign's tag for the signatures of ``image_digest``: ``sha256-<hex>.sig``."""
    return digest_tag(check_digest(image_digest)) + SIGNATURE_SUFFIX


@dataclass(frozen=True)
class Blob:
    """Content the caller uploads (HEAD first: it may be there) before the manifest."""

    media_type: str
    digest: str
    data: bytes = field(repr=False)

    @classmethod
    def of(cls, media_type: str, data: bytes) -> Blob:
        return cls(media_type, sha256_digest(data), data)

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class Signature:
    """A signature to add: the payload and the raw (DER) signature over it."""

    payload: bytes
    signature: bytes

    @property
    def layer(self) -> Blob:
        return Blob.of(mediatypes.COSIGN_SIMPLE_SIGNING, self.payload)

    def descriptor_json(self) -> str:
        layer = self.layer
        annotations = {SIGNATURE_ANNOTATION: base64.b64encode(self.signature).decode()}
        descriptor = {
            "mediaType": layer.media_type,
            "size": layer.size,
            "digest": layer.digest,
            "annotations": annotations,
        }
        return go_json(descriptor).decode("utf-8")


@dataclass(frozen=True)
class SignatureLayer:
    """One layer of a signature image."""

    descriptor: Descriptor

    @property
    def annotations(self) -> dict[str, str]:
        return dict(self.descriptor.annotations)

    @property
    def is_simple_signing(self) -> bool:
        return self.descriptor.media_type == mediatypes.COSIGN_SIMPLE_SIGNING

    @property
    def signature(self) -> bytes | None:
        """The decoded signature annotation; None when absent or not base64."""
        text = self.annotations.get(SIGNATURE_ANNOTATION)
        if not text:
            return None
        try:
            return base64.b64decode(text, validate=True)
        except binascii.Error:
            return None

    def signed_by(self, key: VerificationKey, payload: bytes) -> bool:
        """Whether this layer is ``key``'s signature over ``payload`` (cosign's duplicate test:
        same payload digest and media type, and the signature verifies)."""
        if not self.is_simple_signing or self.descriptor.digest != sha256_digest(payload):
            return False
        signature = self.signature
        return signature is not None and key.verifies(payload, signature)


@dataclass(frozen=True)
class _Layout:
    """Where the parts that change sit in the manifest's text (character offsets)."""

    config: tuple[int, int]
    layers_open: int
    layers: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class SignatureImage:
    """A signature image as a registry served it."""

    manifest: Manifest
    config: Descriptor
    layers: tuple[SignatureLayer, ...]
    _text: str = field(repr=False, compare=False)
    _layout: _Layout = field(repr=False, compare=False)

    @classmethod
    def held(cls, manifest: Manifest | None, where: str) -> SignatureImage | None:
        """What a ``.sig`` tag holds, as a store answered for it; None when it holds nothing."""
        return None if manifest is None else cls.parse(manifest.raw, manifest.media_type, where)

    @classmethod
    def parse(cls, raw: bytes, content_type: str | None, where: str) -> SignatureImage:
        """Read the bytes of a ``.sig`` tag; ``where`` names it in errors."""
        manifest = Manifest.parse(raw, content_type, where)
        if not mediatypes.is_image_manifest(manifest.media_type):
            raise BadSignatureImage(
                f"{where} is {manifest.media_type}, not the image manifest of cosign signatures",
                "imagesync appends signatures only to cosign's own .sig images",
            )
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadSignatureImage(f"{where} is not UTF-8 JSON") from None
        layout = _scan(text, where)
        config, *layers = manifest.blobs  # an image manifest's config comes first
        return cls(manifest, config, tuple(SignatureLayer(d) for d in layers), text, layout)

    def find(self, key: VerificationKey, payload: bytes) -> SignatureLayer | None:
        """The layer that is ``key``'s signature over ``payload``, if there is one."""
        return next((layer for layer in self.layers if layer.signed_by(key, payload)), None)

    def foreign_to(self, subject: str, fetch_blob: BlobFetcher) -> str | None:
        """What makes this something other than cosign signatures of ``subject``, in words
        (None when it is them): only then may a signature be appended. Every layer must be a
        simple-signing payload with cosign's signature annotation whose claim names
        ``subject``; an image of anything else under the ``.sig`` name is someone's, and
        appending to it would move their tag. ``fetch_blob`` reads each (small) payload."""
        if not self.layers:
            return "an image without layers, not cosign signatures"
        for layer in self.layers:
            found = _foreign_layer(layer, subject, fetch_blob)
            if found is not None:
                return found
        return None

    @property
    def has_image_config(self) -> bool:
        """Whether adding layers changes the config (and so needs its bytes)."""
        return mediatypes.is_image_config(self.config.media_type)


def _foreign_layer(layer: SignatureLayer, subject: str, fetch_blob: BlobFetcher) -> str | None:
    """What ``layer`` is when it is not a cosign signature of ``subject``; None when it is."""
    descriptor = layer.descriptor
    if not layer.is_simple_signing:
        return f"a layer of type {shorten(descriptor.media_type, 100)!r}, not a cosign signature"
    if SIGNATURE_ANNOTATION not in layer.annotations:
        return f"a layer without cosign's {SIGNATURE_ANNOTATION} annotation"
    if descriptor.size > MAX_PAYLOAD_BYTES:
        return f"a layer of {descriptor.size} bytes, too large to be a signature's payload"
    payload = fetch_blob(descriptor.digest)
    if sha256_digest(payload) != descriptor.digest:
        return f"a layer that is not what its digest {descriptor.digest} says"
    try:
        claim = read_claim(payload)
    except BadPayload as error:
        return f"a layer that is not a simple-signing payload ({error})"
    if claim.digest != subject:
        shown = shorten(claim.digest, 80) or "no image"
        return f"a signature of another image ({shown}), not of {subject}"
    return None


@dataclass(frozen=True)
class SignatureImageUpdate:
    """What the caller writes: every blob of ``blobs`` (HEAD first), then ``manifest`` with
    ``media_type`` to ``tag``, the tag still holding ``replaces`` (None: the tag is new).

    ``added`` lists the new layers; when it is empty nothing needs writing, and ``manifest``
    is the existing one.
    """

    tag: str
    manifest: bytes = field(repr=False)
    media_type: str
    digest: str
    blobs: tuple[Blob, ...]
    added: tuple[Descriptor, ...]
    replaces: str | None

    @property
    def changed(self) -> bool:
        return bool(self.added)


def has_signature(
    existing: SignatureImage | None,
    key: VerificationKey,
    repository: Repository,
    image_digest: str,
) -> bool:
    """Whether the signature image ``existing`` (None: no ``.sig`` tag) holds the signature
    :func:`sign_image` would add with ``key``: what plan asks to decide on a sub-change."""
    payload = simple_signing_payload(repository, image_digest)
    return existing is not None and existing.find(key, payload) is not None


def sign_image(
    key: SigningKey,
    repository: Repository,
    image_digest: str,
    existing: SignatureImage | None,
    fetch_blob: BlobFetcher,
) -> SignatureImageUpdate:
    """Sign ``image_digest`` (in ``repository``, the docker-reference of the payload) with
    ``key`` into its signature image: ``existing`` is what the ``.sig`` tag holds now (None:
    no such tag). Adds nothing when that image holds the key's signature already.
    ``fetch_blob`` is asked for the existing config, only when a layer is added to it.
    """
    tag = signature_tag(image_digest)
    if existing is not None and has_signature(
        existing, key.verification_key, repository, image_digest
    ):
        manifest = existing.manifest
        return SignatureImageUpdate(
            tag, manifest.raw, manifest.media_type, manifest.digest, (), (), manifest.digest
        )
    config = None
    if existing is not None and existing.has_image_config:
        config = fetch_blob(existing.config.digest)
    payload = simple_signing_payload(repository, image_digest)
    return extend(tag, existing, config, [Signature(payload, key.sign(payload))])


def extend(
    tag: str,
    existing: SignatureImage | None,
    config: bytes | None,
    signatures: Sequence[Signature],
) -> SignatureImageUpdate:
    """``existing`` (None: a new signature image) with ``signatures`` appended as layers.

    ``config`` is the existing config blob's bytes, needed when it is an image config. Every
    existing layer descriptor keeps its text; only the config descriptor and the end of the
    ``layers`` array change.
    """
    if existing is None:
        existing = _empty()
        config = go_json(_EMPTY_CONFIG)
        replaces = None
    else:
        replaces = existing.manifest.digest
    where = f"signature image {existing.manifest.digest}"
    if len(existing.layers) + len(signatures) > MAX_LAYERS:
        raise BadSignatureImage(
            f"{where} would hold {len(existing.layers) + len(signatures)} layers, more than "
            f"cosign reads ({MAX_LAYERS})",
            "remove signatures that are no longer needed from the .sig tag before adding more",
        )
    layers = [signature.layer for signature in signatures]
    blobs = list(layers)
    text = existing._text
    edits: list[tuple[int, int, str]] = []
    if existing.has_image_config:
        if config is None or sha256_digest(config) != existing.config.digest:
            raise BadSignatureImage(
                f"{where}: the config given is not its config {existing.config.digest}"
            )
        new_config = Blob.of(existing.config.media_type, _grown_config(config, layers, where))
        blobs.append(new_config)
        start, end = existing._layout.config
        edits.append((start, end, _config_descriptor(text[start:end], new_config)))
    added = ",".join(signature.descriptor_json() for signature in signatures)
    if existing._layout.layers:
        insert_at = existing._layout.layers[-1][1]
        added = "," + added
    else:
        insert_at = existing._layout.layers_open
    edits.append((insert_at, insert_at, added))
    for start, end, replacement in sorted(edits, reverse=True):
        text = text[:start] + replacement + text[end:]
    raw = text.encode("utf-8")
    return SignatureImageUpdate(
        tag=tag,
        manifest=raw,
        media_type=existing.manifest.media_type,
        digest=sha256_digest(raw),
        blobs=tuple(blobs),
        added=tuple(Descriptor(b.media_type, b.digest, b.size) for b in layers),
        replaces=replaces,
    )


def _empty() -> SignatureImage:
    """cosign's empty signature image (OCI media types), as if a registry had served it."""
    config = go_json(_EMPTY_CONFIG)
    document = {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_MANIFEST,
        "config": {
            "mediaType": mediatypes.OCI_CONFIG,
            "size": len(config),
            "digest": sha256_digest(config),
        },
        "layers": [],
    }
    return SignatureImage.parse(go_json(document), mediatypes.OCI_MANIFEST, "empty")


def _grown_config(config: bytes, layers: Sequence[Blob], where: str) -> bytes:
    """The config with a diff_id and an empty history entry per new layer, as
    go-containerregistry's ``mutate.Append`` writes them."""
    try:
        document = json.loads(config)
    except (ValueError, RecursionError):
        raise BadSignatureImage(f"{where}: its config is not JSON") from None
    if not isinstance(document, dict):
        raise BadSignatureImage(f"{where}: its config is not a JSON object")
    rootfs = document.setdefault("rootfs", {"type": "layers"})
    if not isinstance(rootfs, dict):
        raise BadSignatureImage(f"{where}: its config's rootfs is not an object")
    diff_ids = rootfs.get("diff_ids") or []
    history = document.get("history") or []
    if not isinstance(diff_ids, list) or not isinstance(history, list):
        raise BadSignatureImage(f"{where}: its config's rootfs.diff_ids or history is not a list")
    rootfs["diff_ids"] = [*diff_ids, *(layer.digest for layer in layers)]
    document["history"] = [*history, *({"created": ZERO_TIME} for _ in layers)]
    try:
        return go_json(document)
    except ValueError:
        raise BadSignatureImage(f"{where}: its config holds numbers JSON cannot write") from None


def _config_descriptor(old: str, config: Blob) -> str:
    """The config descriptor's text with the new digest and size; every other field kept."""
    descriptor = json.loads(old)
    descriptor["size"] = config.size
    descriptor["digest"] = config.digest
    if "data" in descriptor:
        descriptor["data"] = base64.b64encode(config.data).decode()
    return go_json(descriptor).decode("utf-8")


def _scan(text: str, where: str) -> _Layout:
    """Locate the top-level ``config`` value and the ``layers`` array's elements.

    Duplicate ``config`` or ``layers`` keys are refused: a JSON reader takes the last one,
    and a manifest whose readers may disagree on its layers is not one to extend.
    """
    decoder = json.JSONDecoder()
    members: dict[str, tuple[int, int]] = {}
    try:
        i = _skip(text, 0)
        if text[i] != "{":
            raise ValueError
        i = _skip(text, i + 1)
        while text[i] != "}":
            key, i = decoder.raw_decode(text, i)
            i = _skip(text, i)
            if text[i] != ":":
                raise ValueError
            start = _skip(text, i + 1)
            _, end = decoder.raw_decode(text, start)
            if key in members and key in ("config", "layers"):
                raise BadSignatureImage(f"{where} has two {key!r} members")
            members[key] = (start, end)
            i = _skip(text, end)
            if text[i] == ",":
                i = _skip(text, i + 1)
        layers_start, _ = members["layers"]
        if text[layers_start] != "[":
            raise ValueError
        elements: list[tuple[int, int]] = []
        i = _skip(text, layers_start + 1)
        while text[i] != "]":
            _, end = decoder.raw_decode(text, i)
            elements.append((i, end))
            i = _skip(text, end)
            if text[i] == ",":
                i = _skip(text, i + 1)
        return _Layout(members["config"], layers_start + 1, tuple(elements))
    except (ValueError, IndexError, KeyError):
        raise BadSignatureImage(f"{where} has no config and layers imagesync can read") from None


def _skip(text: str, i: int) -> int:
    while text[i] in _JSON_WHITESPACE:
        i += 1
    return i
