"""Manifests: find, read and write them, by tag or digest.

Every manifest read is checked against the digest asked for and the one the registry
announced; one written is sent as its exact bytes (oras-py would re-serialise it).
"""

from __future__ import annotations

import hashlib

from imagesync.content import mediatypes
from imagesync.content.manifest import MAX_MANIFEST_BYTES, Descriptor, Manifest, sha256_digest
from imagesync.errors import DigestMismatch
from imagesync.redact import excerpt
from imagesync.reference import Reference, Repository, is_valid_digest
from imagesync.stores.memory import ManifestMemory
from imagesync.stores.registry.answers import raise_for_status
from imagesync.stores.registry.core import Core, Endpoint, Read, content_length, media_type
from imagesync.stores.registry.transport import push_scope
from imagesync.stores.registry.wire import Call

_ACCEPT = {"Accept": mediatypes.ACCEPT}


class Manifests:
    """Manifest requests over a :class:`Core`. Manifests by digest are content-addressed and
    cannot change: ``memory`` keeps them, so that apply does not ask again what plan asked."""

    def __init__(self, core: Core) -> None:
        self._core = core
        self.memory = ManifestMemory()

    def locate(
        self, ref: Reference, *, pull: bool, at: Endpoint | None
    ) -> tuple[Descriptor, Endpoint] | None:
        """Digest, media type and size of what ``ref`` points at, and the endpoint (a mirror or
        the registry itself) that answered; None if none has it.

        HEAD first: registries (Docker Hub) do not count HEADs against pull limits. A registry
        that sends no Docker-Content-Digest on HEAD costs one GET instead.
        """
        path = f"/v2/{ref.path}/manifests/{ref.identifier}"
        read = Read(ref.repository, "HEAD", path, pull, at, _ACCEPT)
        answer, endpoint = self._core.read(read)
        if answer.status_code == 404:
            return None
        raise_for_status(answer, f"HEAD {ref}")
        digest = answer.headers.get("Docker-Content-Digest")
        kind = media_type(answer)
        # A HEAD that lacks any of these (or sends nonsense) costs one GET, which is checked.
        if digest and is_valid_digest(digest) and mediatypes.is_manifest(kind):
            if ref.digest and digest != ref.digest:
                raise DigestMismatch(f"{ref}: the registry answered with digest {digest}")
            return Descriptor(kind, digest, content_length(answer)), endpoint
        manifest = self.get(ref, pull=pull, missing_ok=False, at=endpoint)
        assert manifest is not None
        return manifest.descriptor, endpoint

    def get(
        self, ref: Reference, *, pull: bool, missing_ok: bool, at: Endpoint | None
    ) -> Manifest | None:
        """The exact bytes of a manifest, checked against the digest asked for and announced;
        ``missing_ok``: None when it does not exist."""
        known = self.memory.get(str(ref.repository), ref.digest) if ref.digest else None
        if known is not None:
            return known
        path = f"/v2/{ref.path}/manifests/{ref.identifier}"
        read = Read(ref.repository, "GET", path, pull, at, _ACCEPT, limit=MAX_MANIFEST_BYTES)
        answer = self._core.fetch(read, f"GET manifest {ref}", missing_ok=missing_ok)
        if answer is None:
            return None
        raw = answer.body
        announced = answer.headers.get("Docker-Content-Digest")
        # The digest first: bytes that are not what was asked for are not worth parsing.
        for expected in (ref.digest, announced):
            actual = _digest_like(raw, expected) if expected else None
            if expected and actual != expected:
                raise DigestMismatch(
                    f"manifest {ref} hashes to {actual}, expected {shown(expected)}",
                    "the registry or a proxy altered the content; try again",
                )
        manifest = Manifest.parse(raw, answer.headers.get("Content-Type"), str(ref))
        self.memory.keep(str(ref.repository), manifest)
        return manifest

    def put(self, repository: Repository, reference: str, manifest: Manifest) -> str:
        """Upload the manifest's exact bytes; ``reference`` is a tag or the digest."""
        answer = self._core.transport.request(
            Call(
                "PUT",
                repository.endpoint,
                f"/v2/{repository.path}/manifests/{reference}",
                frozenset({push_scope(repository.path)}),
                headers={"Content-Type": manifest.media_type},
                data=manifest.raw,
            )
        )
        raise_for_status(answer, f"PUT manifest {repository}:{reference}")
        written = answer.headers.get("Docker-Content-Digest") or manifest.digest
        if written != manifest.digest:
            raise DigestMismatch(
                f"{repository}:{reference} was stored as {shown(written)}, not {manifest.digest}"
            )
        return str(written)


def shown(text: str) -> str:
    """A header value in a message: at a readable length."""
    return excerpt(text) if len(text) <= 80 else excerpt(repr(text), 80)


def _digest_like(data: bytes, expected: str) -> str:
    """The digest of ``data`` in the algorithm of ``expected`` (sha256 unless it says sha512)."""
    if expected.startswith("sha512:"):
        return "sha512:" + hashlib.sha512(data).hexdigest()
    return sha256_digest(data)
