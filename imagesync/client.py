"""Registry operations on manifests, blobs and tags, spoken in typed values.

Pulls go through the registry's mirrors first (registries config), pushes go to the registry
itself. Every byte read is checked against the digest it was asked for.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urlencode, urljoin, urlsplit, urlunsplit

import requests

from imagesync import mediatypes
from imagesync.errors import DigestMismatch, RegistryError
from imagesync.manifest import MAX_MANIFEST_BYTES, Descriptor, Manifest, sha256_digest
from imagesync.reference import Reference, Repository
from imagesync.transport import Transport, pull_scope, push_scope, raise_for_status

log = logging.getLogger("imagesync.client")

CHUNK_SIZE = 1024 * 1024
# Config blobs are read whole to learn the platform; real ones are a few KiB.
MAX_CONFIG_BYTES = 4 * 1024 * 1024

Progress = Callable[[int], None]


@dataclass(frozen=True)
class Endpoint:
    """Where a pull is served from: the registry itself or one of its mirrors."""

    host: str
    repository: Repository


class RegistryClient:
    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        # Hosts that answered "no referrers API": asking again per digest would be wasted work.
        self._without_referrers_api: set[str] = set()

    # -- manifests -------------------------------------------------------------------------

    def head_manifest(self, ref: Reference, *, pull: bool = True) -> Descriptor | None:
        """Digest, media type and size of what ``ref`` points at; None if it does not exist.

        HEAD first: registries (Docker Hub) do not count HEADs against pull limits. A registry
        that sends no Docker-Content-Digest on HEAD costs one GET instead.
        """
        path = f"/v2/{ref.path}/manifests/{ref.identifier}"
        headers = {"Accept": mediatypes.ACCEPT}
        response = self._read(ref.repository, "HEAD", path, pull, headers=headers)
        if response.status_code == 404:
            return None
        raise_for_status(response, f"HEAD {ref}")
        digest = response.headers.get("Docker-Content-Digest")
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        if digest and mediatypes.is_manifest(media_type):
            if ref.digest and digest != ref.digest:
                raise DigestMismatch(f"{ref}: the registry answered with digest {digest}")
            size = int(response.headers.get("Content-Length") or 0)
            return Descriptor(media_type, digest, size)
        return self.get_manifest(ref, pull=pull).descriptor

    def get_manifest(self, ref: Reference, *, pull: bool = True) -> Manifest:
        """The exact bytes of a manifest, checked against the digest asked for and announced."""
        path = f"/v2/{ref.path}/manifests/{ref.identifier}"
        headers = {"Accept": mediatypes.ACCEPT}
        response = self._read(ref.repository, "GET", path, pull, headers=headers)
        raise_for_status(response, f"GET manifest {ref}")
        raw = _read_limited(response, MAX_MANIFEST_BYTES, f"manifest {ref}")
        manifest = Manifest.parse(raw, response.headers.get("Content-Type"), str(ref))
        announced = response.headers.get("Docker-Content-Digest")
        for expected in (ref.digest, announced):
            if expected and expected != manifest.digest:
                raise DigestMismatch(
                    f"manifest {ref} hashes to {manifest.digest}, expected {expected}",
                    "the registry or a proxy altered the content; try again",
                )
        return manifest

    def put_manifest(self, repository: Repository, reference: str, manifest: Manifest) -> str:
        """Upload the manifest's exact bytes; ``reference`` is a tag or the digest."""
        response = self.transport.request(
            "PUT",
            repository.endpoint,
            f"/v2/{repository.path}/manifests/{reference}",
            scopes=[push_scope(repository.path)],
            headers={"Content-Type": manifest.media_type},
            data=manifest.raw,
        )
        raise_for_status(response, f"PUT manifest {repository}:{reference}")
        written = response.headers.get("Docker-Content-Digest") or manifest.digest
        if written != manifest.digest:
            raise DigestMismatch(
                f"{repository}:{reference} was stored as {written}, not {manifest.digest}"
            )
        return written

    def list_tags(self, repository: Repository, *, pull: bool = True) -> list[str]:
        """Every tag of a repository, following pagination; empty if it does not exist."""
        tags: list[str] = []
        path: str | None = f"/v2/{repository.path}/tags/list?n=1000"
        while path:
            response = self._read(repository, "GET", path, pull)
            if response.status_code == 404:
                return tags
            raise_for_status(response, f"list tags of {repository}")
            try:
                tags.extend(response.json().get("tags") or [])
            except ValueError:
                raise RegistryError(f"the tag list of {repository} is not JSON") from None
            path = _next_link(response)
        return tags

    def referrers(
        self, repository: Repository, digest: str, *, pull: bool = True
    ) -> list[Descriptor] | None:
        """Descriptors from the OCI referrers API; None when the registry does not offer it."""
        host = self._endpoints(repository, pull)[0].host
        if host in self._without_referrers_api:
            return None
        path = f"/v2/{repository.path}/referrers/{digest}"
        # Only the first endpoint is asked: a mirror without the API falls back to the tag
        # schema, which the mirror serves like any tag.
        response = self._send(
            self._endpoints(repository, pull)[0], "GET", path, {"Accept": mediatypes.OCI_INDEX}
        )
        content_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        # Registries without the API answer 404 (or an HTML/text error); one with it always
        # answers an index, empty when nothing refers to the digest.
        if response.status_code == 404 or content_type != mediatypes.OCI_INDEX:
            response.close()
            self._without_referrers_api.add(host)
            return None
        raise_for_status(response, f"referrers of {repository}@{digest}")
        raw = _read_limited(response, MAX_MANIFEST_BYTES, f"referrers of {digest}")
        index = Manifest.parse(raw, mediatypes.OCI_INDEX, f"referrers of {repository}@{digest}")
        return list(index.children)

    # -- blobs -----------------------------------------------------------------------------

    def blob_size(self, repository: Repository, digest: str) -> int | None:
        """Size of a blob in the target registry, or None when it is not there.

        Pull scope suffices, so plan works with read-only credentials on the target.
        """
        response = self.transport.request(
            "HEAD",
            repository.endpoint,
            f"/v2/{repository.path}/blobs/{digest}",
            scopes=[pull_scope(repository.path)],
        )
        if response.status_code == 404:
            return None
        raise_for_status(response, f"HEAD blob {digest} in {repository}")
        return int(response.headers.get("Content-Length") or 0)

    def get_blob(self, repository: Repository, digest: str, *, pull: bool = True) -> bytes:
        """A small blob (an image config), read whole and checked against its digest."""
        path = f"/v2/{repository.path}/blobs/{digest}"
        response = self._read(repository, "GET", path, pull, stream=True)
        raise_for_status(response, f"GET blob {digest} from {repository}")
        data = _read_limited(response, MAX_CONFIG_BYTES, f"blob {digest}")
        if sha256_digest(data) != digest:
            raise DigestMismatch(f"blob {digest} from {repository} does not match its digest")
        return data

    def mount_blob(self, target: Repository, digest: str, source: Repository) -> bool:
        """Ask the registry to link a blob from another repository; True when it did."""
        response = self.transport.request(
            "POST",
            target.endpoint,
            f"/v2/{target.path}/blobs/uploads/",
            params={"mount": digest, "from": source.path},
            scopes=[push_scope(target.path), pull_scope(source.path)],
        )
        if response.status_code == 201:
            return True
        # 202 means "mount refused, here is an upload session instead": cancel it, the caller
        # streams the blob with a fresh session and its own retry.
        if response.status_code == 202 and response.headers.get("Location"):
            self.transport.request(
                "DELETE",
                target.endpoint,
                self._location(target, response),
                scopes=[push_scope(target.path)],
            ).close()
            return False
        raise_for_status(response, f"mount {digest} into {target}")
        return False

    def copy_blob(
        self,
        source: Repository,
        target: Repository,
        blob: Descriptor,
        progress: Progress | None = None,
    ) -> None:
        """Stream one blob from source to target, checking its sha256 as the bytes pass.

        Nothing is held in memory beyond one chunk, and nothing touches disk. A digest or size
        mismatch aborts the upload before its last byte is sent, so the target never stores it.
        """
        path = f"/v2/{source.path}/blobs/{blob.digest}"
        download = self._read(source, "GET", path, pull=True, stream=True)
        try:
            raise_for_status(download, f"GET blob {blob.digest} from {source}")
            start = self.transport.request(
                "POST",
                target.endpoint,
                f"/v2/{target.path}/blobs/uploads/",
                scopes=[push_scope(target.path)],
            )
            raise_for_status(start, f"start upload to {target}")
            location = self._location(target, start, digest=blob.digest)
            body = VerifyingReader(download, blob, progress)
            finish = self.transport.request(
                "PUT",
                target.endpoint,
                location,
                scopes=[push_scope(target.path)],
                headers={"Content-Type": "application/octet-stream"},
                data=body,
                retry=False,
            )
            raise_for_status(finish, f"upload {blob.digest} to {target}")
        finally:
            download.close()

    # -- plumbing --------------------------------------------------------------------------

    def _endpoints(self, repository: Repository, pull: bool) -> list[Endpoint]:
        own = Endpoint(repository.endpoint, repository)
        if not pull:
            return [own]
        mirrors = self.transport.config.settings(repository.registry).mirrors
        return [Endpoint(host, repository) for host in mirrors] + [own]

    def _read(
        self,
        repository: Repository,
        method: str,
        path: str,
        pull: bool,
        *,
        headers: dict[str, str] | None = None,
        stream: bool = False,
    ) -> requests.Response:
        """A read request, tried on each mirror, then on the registry itself.

        A mirror that fails or lacks the content is passed over; the registry's own answer,
        whatever it is, is returned for the caller to judge.
        """
        endpoints = self._endpoints(repository, pull)
        for endpoint in endpoints[:-1]:
            try:
                response = self._send(endpoint, method, path, headers, stream)
            except RegistryError as error:
                log.debug("mirror %s failed, trying the next: %s", endpoint.host, error)
                continue
            if response.status_code < 400:
                return response
            response.close()
        return self._send(endpoints[-1], method, path, headers, stream)

    def _send(
        self,
        endpoint: Endpoint,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        stream: bool = False,
    ) -> requests.Response:
        scope = pull_scope(endpoint.repository.path)
        return self.transport.request(
            method, endpoint.host, path, scopes=[scope], headers=headers, stream=stream
        )

    def _location(
        self, target: Repository, response: requests.Response, digest: str | None = None
    ) -> str:
        location = response.headers.get("Location")
        if not location:
            raise RegistryError(f"{target.endpoint} started an upload but sent no Location")
        absolute = urljoin(self.transport.url(target.endpoint, "/"), location)
        if urlsplit(absolute).netloc != urlsplit(self.transport.url(target.endpoint, "/")).netloc:
            # Sending our credentials elsewhere is never what a registry should ask for.
            raise RegistryError(
                f"{target.endpoint} sent an upload location on another host",
                "check the registry's configuration (its public URL)",
            )
        if digest is None:
            return absolute
        parts = urlsplit(absolute)
        query = f"{parts.query}&" if parts.query else ""
        query += urlencode({"digest": digest})
        return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


class VerifyingReader:
    """A file-like request body that hashes a download as it is uploaded.

    It has a length, so requests sends a Content-Length and reads it in blocks. The digest is
    checked before the final block is handed over: a corrupt blob never completes an upload.
    """

    def __init__(self, download: requests.Response, blob: Descriptor, progress: Progress | None):
        self._chunks: Iterator[bytes] = download.raw.stream(CHUNK_SIZE, decode_content=False)
        self._blob = blob
        self._progress = progress
        self._hash = hashlib.sha256()
        self._sent = 0
        self._buffer = b""

    def __len__(self) -> int:
        return self._blob.size

    def read(self, size: int = -1) -> bytes:
        if not self._buffer:
            self._buffer = next(self._chunks, b"")
            self._check(self._buffer)
        if size is None or size < 0:
            size = len(self._buffer)
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        if self._progress and data:
            self._progress(len(data))
        return data

    def _check(self, chunk: bytes) -> None:
        self._hash.update(chunk)
        self._sent += len(chunk)
        if self._sent > self._blob.size:
            raise DigestMismatch(
                f"blob {self._blob.digest} is longer than its {self._blob.size} bytes"
            )
        if self._sent == self._blob.size or not chunk:
            if self._sent != self._blob.size:
                raise DigestMismatch(
                    f"blob {self._blob.digest} ended after {self._sent} of {self._blob.size} bytes"
                )
            actual = "sha256:" + self._hash.hexdigest()
            if actual != self._blob.digest:
                raise DigestMismatch(f"blob {self._blob.digest} arrived with digest {actual}")


def _read_limited(response: requests.Response, limit: int, what: str) -> bytes:
    declared = response.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > limit:
        response.close()
        raise RegistryError(f"{what} is {declared} bytes, more than the {limit} allowed")
    data = b""
    for chunk in response.iter_content(64 * 1024):
        data += chunk
        if len(data) > limit:
            response.close()
            raise RegistryError(f"{what} is more than the {limit} bytes allowed")
    return data


def _next_link(response: requests.Response) -> str | None:
    link = response.links.get("next", {}).get("url")
    return str(link) if link else None
