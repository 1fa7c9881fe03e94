"""Registry operations on manifests, blobs and tags, spoken in typed values.

Pulls go through the registry's mirrors first (registries config), pushes go to the registry
itself. Every byte read is checked against the digest it was asked for.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlencode, urljoin, urlsplit, urlunsplit

import requests
import urllib3

from imagesync.content import mediatypes
from imagesync.content.documents import json_object
from imagesync.content.manifest import MAX_MANIFEST_BYTES, Descriptor, Manifest, sha256_digest
from imagesync.errors import AuthenticationFailed, DigestMismatch, RegistryError
from imagesync.inputfile import limit_text
from imagesync.redact import excerpt
from imagesync.reference import Reference, Repository, is_valid_digest
from imagesync.retry import is_retriable_status
from imagesync.stores.holders import Holders
from imagesync.stores.memory import ManifestMemory
from imagesync.stores.registry.netfailure import broken_body
from imagesync.stores.registry.transport import (
    MAX_ANSWER_BYTES,
    Transport,
    Unreachable,
    pull_scope,
    push_scope,
    raise_for_status,
    registry_message,
    shown_url,
)
from imagesync.stores.store import (
    MAX_CONFIG_BYTES,
    BlobOpener,
    MountAnswer,
    Progress,
    TransferBroken,
)
from imagesync.stores.stream import verified

log = logging.getLogger("imagesync.stores.registry.client")

# A blob passes in chunks of up to CHUNK_SIZE (fewer, larger writes on fast links). The first
# is FIRST_CHUNK and each next one twice the last: a chunk is read whole before it is sent, so
# on a slow link a large first chunk would hold the upload back while it arrives.
CHUNK_SIZE = 1024 * 1024
FIRST_CHUNK = 64 * 1024
# A referrers list this long is not something a registry should page through.
MAX_REFERRERS_PAGES = 1000

# A tag list longer than this many pages is a registry that never stops paging.
MAX_TAG_PAGES = 1000
# One page of a tag list (registries that ignore ?n= send every tag at once, some with a
# manifest map), and all pages together: a million tags is a broken or hostile registry.
MAX_TAG_PAGE_BYTES = 16 * 1024 * 1024
MAX_TAG_LIST_BYTES = 64 * 1024 * 1024
# Threads that open upload sessions while downloads start (put_blob): about one per blob stream
# of a registry (6 by default); one more session waits for a thread a request long.
SESSION_OPENERS = 8
# What goes wrong while a body is read after the status line arrived: resets, truncation.
_BODY_ERRORS = (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError)


@dataclass(frozen=True)
class Endpoint:
    """Where a pull is served from: the registry itself or one of its mirrors."""

    host: str
    repository: Repository


class RegistryClient:
    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        # Whether a host has the referrers API, once an answer told: a host without it is not
        # asked again, and while nobody knows, one request at a time per host finds out.
        self._referrers_api: dict[str, bool] = {}
        self._referrers_probes: dict[str, threading.Lock] = {}
        # What this run has learnt already, so that apply does not ask again what plan just
        # asked. Manifests by digest are content-addressed and cannot change; a blob's presence
        # in a repository is taken as it was seen (one that vanished makes the push of the
        # manifest fail; one that appeared is sent again, harmlessly).
        self._lock = threading.Lock()
        self.manifests = ManifestMemory()
        self._blobs: dict[tuple[str, str], int | None] = {}
        # The repositories of a registry seen holding a blob, or given it: mount sources.
        self.holders = Holders()
        # Repositories their own registry called unknown (404 NAME_UNKNOWN): they hold no
        # blob, so asking for each one would be a request per blob for nothing.
        self._unknown: set[str] = set()
        self._probed: set[str] = set()
        # Kept, not one started per blob: starting a thread waits for it to run, and on a busy
        # interpreter that wait is on every copy's path.
        self._session_openers = ThreadPoolExecutor(SESSION_OPENERS, "upload-session")

    # -- manifests -------------------------------------------------------------------------

    def head_manifest(
        self, ref: Reference, *, pull: bool = True, at: Endpoint | None = None
    ) -> Descriptor | None:
        """Digest, media type and size of what ``ref`` points at; None if it does not exist.

        HEAD first: registries (Docker Hub) do not count HEADs against pull limits. A registry
        that sends no Docker-Content-Digest on HEAD costs one GET instead. ``at`` asks that
        endpoint only (see :meth:`locate`).
        """
        located = self.locate(ref, pull=pull, at=at)
        return located[0] if located else None

    def locate(
        self, ref: Reference, *, pull: bool = True, at: Endpoint | None = None
    ) -> tuple[Descriptor, Endpoint] | None:
        """Like :meth:`head_manifest`, also saying which endpoint (a mirror or the registry
        itself) answered; None if none has it."""
        path = f"/v2/{ref.path}/manifests/{ref.identifier}"
        headers = {"Accept": mediatypes.ACCEPT}
        response, endpoint = self._read(ref.repository, "HEAD", path, pull, headers=headers, at=at)
        if response.status_code == 404:
            return None
        raise_for_status(response, f"HEAD {ref}")
        digest = response.headers.get("Docker-Content-Digest")
        media_type = _media_type(response)
        size = _content_length(response)
        # A HEAD that lacks any of these (or sends nonsense) costs one GET, which is checked.
        if digest and is_valid_digest(digest) and mediatypes.is_manifest(media_type):
            if ref.digest and digest != ref.digest:
                raise DigestMismatch(f"{ref}: the registry answered with digest {digest}")
            return Descriptor(media_type, digest, size), endpoint
        return self.get_manifest(ref, at=endpoint).descriptor, endpoint

    def get_manifest(
        self, ref: Reference, *, pull: bool = True, at: Endpoint | None = None
    ) -> Manifest:
        """The exact bytes of a manifest, checked against the digest asked for and announced."""
        manifest = self._manifest(ref, pull, missing_ok=False, at=at)
        assert manifest is not None
        return manifest

    def find_manifest(
        self, ref: Reference, *, pull: bool = True, at: Endpoint | None = None
    ) -> Manifest | None:
        """Like :meth:`get_manifest`, but None when it does not exist.

        For a tag in the target, one GET answers both "is it there" and "what is it", where a
        HEAD would need a GET after it.
        """
        return self._manifest(ref, pull, missing_ok=True, at=at)

    def _manifest(
        self, ref: Reference, pull: bool, *, missing_ok: bool, at: Endpoint | None = None
    ) -> Manifest | None:
        known = self.manifests.get(str(ref.repository), ref.digest) if ref.digest else None
        if known is not None:
            return known
        path = f"/v2/{ref.path}/manifests/{ref.identifier}"
        headers = {"Accept": mediatypes.ACCEPT}
        fetched = self._fetch(
            ref.repository,
            path,
            pull,
            f"GET manifest {ref}",
            MAX_MANIFEST_BYTES,
            headers,
            missing_ok=missing_ok,
            at=at,
        )
        if fetched is None:
            return None
        raw, response = fetched
        announced = response.headers.get("Docker-Content-Digest")
        # The digest first: bytes that are not what was asked for are not worth parsing.
        for expected in (ref.digest, announced):
            actual = _digest_like(raw, expected) if expected else None
            if expected and actual != expected:
                raise DigestMismatch(
                    f"manifest {ref} hashes to {actual}, expected {_shown(expected)}",
                    "the registry or a proxy altered the content; try again",
                )
        manifest = Manifest.parse(raw, response.headers.get("Content-Type"), str(ref))
        self.manifests.keep(str(ref.repository), manifest)
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
                f"{repository}:{reference} was stored as {_shown(written)}, not {manifest.digest}"
            )
        return written

    def list_tags(
        self,
        repository: Repository,
        *,
        pull: bool = True,
        at: Endpoint | None = None,
        prefixes: tuple[str, ...] = ("",),
    ) -> list[str]:
        """The tags of a repository that start with one of ``prefixes``, following
        pagination; empty if it does not exist (as a mirror answers for a repository it holds
        by digest only). Only those are kept: a repository may hold a million tags, of which a
        caller needs a few.

        Without ``at`` a mirror's 404 passes the question on to the next endpoint, like any
        read; with ``at`` only that endpoint is asked.
        """
        tags: list[str] = []
        path: str | None = f"/v2/{repository.path}/tags/list?n=1000"
        seen: set[str] = set()
        received = 0
        what = f"the tag list of {repository}"
        while path:
            if path in seen or len(seen) >= MAX_TAG_PAGES:
                raise RegistryError(f"{what} has pages without end")
            seen.add(path)
            response, _ = self._read(repository, "GET", path, pull, at=at, limit=MAX_TAG_PAGE_BYTES)
            if response.status_code == 404:
                return tags
            raise_for_status(response, f"list tags of {repository}")
            received += len(response.content)
            if received > MAX_TAG_LIST_BYTES:
                raise RegistryError(f"{what} is longer than {limit_text(MAX_TAG_LIST_BYTES)}")
            page = json_object(response.content, what).get("tags")
            if page is None:
                page = []
            if not isinstance(page, list) or not all(isinstance(t, str) for t in page):
                raise RegistryError(f"{what} is not a list of tags")
            tags.extend(t for t in page if t.startswith(prefixes))
            path = _next_link(response)
        return tags

    def referrers(
        self,
        repository: Repository,
        digest: str,
        *,
        pull: bool = True,
        artifact_type: str | None = None,
        at: Endpoint | None = None,
    ) -> list[Descriptor] | None:
        """Descriptors from the OCI referrers API; None when the registry does not offer it.

        Every page is read (``Link: <...>; rel="next"``). With ``artifact_type`` the registry is
        asked to filter; one that does not say so in ``OCI-Filters-Applied`` is filtered here.
        """
        # Only one endpoint is asked (``at``, else the first): a mirror without the API falls
        # back to the tag schema, which the mirror serves like any tag.
        endpoint = at or self._endpoints(repository, pull)[0]
        known = self._referrers_api.get(endpoint.host)
        if known is None:
            with self._lock:
                probe = self._referrers_probes.setdefault(endpoint.host, threading.Lock())
            with probe:
                if self._referrers_api.get(endpoint.host) is False:
                    return None
                return self._list_referrers(endpoint, repository, digest, artifact_type)
        if not known:
            return None
        return self._list_referrers(endpoint, repository, digest, artifact_type)

    def _list_referrers(
        self, endpoint: Endpoint, repository: Repository, digest: str, artifact_type: str | None
    ) -> list[Descriptor] | None:
        path: str | None = f"/v2/{repository.path}/referrers/{digest}"
        if artifact_type:
            path = f"{path}?{urlencode({'artifactType': artifact_type})}"
        what = f"referrers of {repository}@{digest}"
        found: list[Descriptor] = []
        filtered = False
        seen: set[str] = set()
        while path:
            if path in seen or len(seen) >= MAX_REFERRERS_PAGES:
                raise RegistryError(f"{what}: the registry's pages do not end")
            seen.add(path)
            response = self._send(
                endpoint, "GET", path, {"Accept": mediatypes.OCI_INDEX}, limit=MAX_MANIFEST_BYTES
            )
            content_type = _media_type(response)
            if len(seen) == 1 and not self._has_referrers_api(endpoint.host, response):
                response.close()
                return None
            raise_for_status(response, what)
            if content_type != mediatypes.OCI_INDEX:
                raise RegistryError(
                    f"{what}: a page is {excerpt(repr(content_type), 100)}, not an OCI index"
                )
            applied = response.headers.get("OCI-Filters-Applied", "")
            filtered = "artifacttype" in {f.strip().lower() for f in applied.split(",")}
            found.extend(Manifest.parse(response.content, mediatypes.OCI_INDEX, what).children)
            path = self._same_host_link(endpoint.host, response, what)
        if artifact_type and not filtered:
            found = [d for d in found if d.artifact_type == artifact_type]
        return found

    def _has_referrers_api(self, host: str, response: requests.Response) -> bool:
        """Judge a first referrers answer; remember what it says about the host.

        A registry with the API answers an OCI index, empty when nothing refers to the digest.
        One without answers 404 (the route is unknown; the distribution registry 2.8 says
        "404 page not found" as text), 405 or 501, or a 200 that is not an index (an HTML page
        from a proxy). A 404 NAME_UNKNOWN is a missing repository: that says nothing about
        the host, so it is not remembered. Other errors (denied, 5xx) are not "no API": they
        are raised by the caller, rather than silently falling back to the tag schema.
        """
        status = response.status_code
        content_type = _media_type(response)
        if status == 404 and registry_message(response)[1] == "NAME_UNKNOWN":
            return False
        if status in (404, 405, 501) or (status < 400 and content_type != mediatypes.OCI_INDEX):
            self._referrers_api[host] = False
            return False
        if status < 400:
            self._referrers_api[host] = True
        return True

    def _same_host_link(self, host: str, response: requests.Response, what: str) -> str | None:
        """The next page from a ``Link`` header, refused when it points at another host."""
        link = _next_link(response)
        if link is None:
            return None
        base = self.transport.url(host, "/")
        absolute = urljoin(base, link)
        if urlsplit(absolute).netloc != urlsplit(base).netloc:
            raise RegistryError(f"{what}: the next page is on another host ({shown_url(link)})")
        return absolute

    # -- blobs -----------------------------------------------------------------------------

    def blob_size(self, repository: Repository, digest: str) -> int | None:
        """Size of a blob in the target registry, or None when it is not there.

        Pull scope suffices, so plan works with read-only credentials on the target. Asked once
        per run: apply goes by what plan saw.
        """
        key = (str(repository), digest)
        with self._lock:
            if key in self._blobs:
                return self._blobs[key]
            if str(repository) in self._unknown:
                return None
        size = self._head_blob(repository, digest)
        with self._lock:
            self._blobs[key] = size
            if size is not None:
                self.holders.add(repository, digest, given=False)
        return size

    def probe_repository(self, repository: Repository) -> bool:
        """Ask once whether ``repository`` exists, before asking for its blobs one by one;
        True when it does not (it holds no blob).

        A new repository in the target (a cold mirror) holds no blob: one request that says
        so spares a HEAD per blob. ``tags/list?n=1`` answers 404 NAME_UNKNOWN for it (where the
        distribution registry answers MANIFEST_UNKNOWN for any missing manifest); any other
        answer leaves the blobs to be asked for.
        """
        key = str(repository)
        with self._lock:
            if key in self._probed or key in self._unknown:
                return key in self._unknown
            self._probed.add(key)
        try:
            response = self._send(
                Endpoint(repository.endpoint, repository),
                "GET",
                f"/v2/{repository.path}/tags/list?n=1",
            )
        except RegistryError as error:  # only a shortcut: the blobs are asked for instead
            log.debug("could not tell whether %s exists: %s", repository, error.message)
            return False
        unknown = response.status_code == 404 and registry_message(response)[1] == "NAME_UNKNOWN"
        if unknown:
            with self._lock:
                self._unknown.add(key)
        response.close()
        return unknown

    def _blob_arrived(self, repository: Repository, digest: str, size: int = 0) -> None:
        with self._lock:
            self._blobs[(str(repository), digest)] = size
        self.holders.add(repository, digest, given=True)

    def _head_blob(self, repository: Repository, digest: str) -> int | None:
        response = self.transport.request(
            "HEAD",
            repository.endpoint,
            f"/v2/{repository.path}/blobs/{digest}",
            scopes=[pull_scope(repository.path)],
        )
        if response.status_code == 404:
            return None
        raise_for_status(response, f"HEAD blob {digest} in {repository}")
        return _content_length(response)

    def get_blob(
        self, repository: Repository, digest: str, *, pull: bool = True, at: Endpoint | None = None
    ) -> bytes:
        """A small blob (an image config), read whole and checked against its digest."""
        path = f"/v2/{repository.path}/blobs/{digest}"
        what = f"GET blob {digest} from {repository}"
        fetched = self._fetch(repository, path, pull, what, MAX_CONFIG_BYTES, at=at)
        assert fetched is not None
        data, _ = fetched
        if sha256_digest(data) != digest:
            raise DigestMismatch(f"blob {digest} from {repository} does not match its digest")
        return data

    def mount_blob(self, target: Repository, digest: str, source: Repository) -> MountAnswer:
        """Ask the registry to link a blob from another of its repositories into ``target``.

        A registry that cannot (the blob is not in ``source``, or it does not mount) opens an
        upload session instead (202): the answer carries it, and the copy streams into it, so
        a refused mount costs no request of its own. A registry that refuses the request
        itself (no pull rights on ``source``, no mount support) is answered by a copy too.
        """
        what = f"mount {digest} from {source} into {target}"
        try:
            response = self.transport.request(
                "POST",
                target.endpoint,
                f"/v2/{target.path}/blobs/uploads/",
                params={"mount": digest, "from": source.path},
                scopes=[push_scope(target.path), pull_scope(source.path)],
            )
        except AuthenticationFailed as error:
            log.debug("%s: %s; copying instead", what, error.message)
            return MountAnswer(mounted=False)
        if response.status_code == 201:
            self._blob_arrived(target, digest)
            return MountAnswer(mounted=True)
        if response.status_code == 202 and response.headers.get("Location"):
            return MountAnswer(mounted=False, session=self._location(target, response))
        if 400 <= response.status_code < 500 and response.status_code not in (401, 429):
            detail, _ = registry_message(response)
            log.debug("%s: %s %s; copying instead", what, response.status_code, detail)
            return MountAnswer(mounted=False)
        raise_for_status(response, what)
        return MountAnswer(mounted=False)

    @contextmanager
    def read_blob(
        self,
        repository: Repository,
        blob: Descriptor,
        *,
        pull: bool = True,
        at: Endpoint | None = None,
    ) -> Iterator[Iterator[bytes]]:
        """The blob's bytes as they arrive (mirrors first), checked as they pass
        (:func:`verified`); a body that breaks off raises TransferBroken. The download is
        the transport's to retry until its answer begins; after that, the caller's."""
        path = f"/v2/{repository.path}/blobs/{blob.digest}"
        download, _ = self._read(repository, "GET", path, pull, stream=True, at=at)
        try:
            raise_for_status(download, f"GET blob {blob.digest} from {repository}")
            yield verified(_body(download, blob, str(repository)), blob)
        finally:
            download.close()

    def put_blob(
        self,
        target: Repository,
        blob: Descriptor,
        opener: BlobOpener,
        progress: Progress | None = None,
        session: str | None = None,
    ) -> None:
        """Stream one blob into ``target`` from ``opener`` (another store's read_blob).

        Nothing is held in memory beyond one chunk, and nothing touches disk. The stream
        checks the bytes and stops before its last one when they are not the blob, so the
        target never stores a wrong blob. ``session`` is an upload location the target
        opened already (a refused mount's).

        The upload session is a request the transport retries. What breaks once bytes flow
        (a reset or truncated download, an upload that fails) raises TransferBroken, and a
        body that does not hash to its digest DigestMismatch: the caller may start again.
        """
        streams = self.transport.streams(target.endpoint)
        opening: Future[str] | None = None
        if session is not None:
            slot = _Slot(streams)
        elif streams.acquire(blocking=False):
            # A stream is free, so nothing is waited for: the upload session opens while the
            # download starts, one round trip before the first byte instead of two.
            slot = _Slot(streams, taken=True)
            opening = self._session_openers.submit(self.start_upload, target)
        else:
            # The upload session is opened before the wait for a stream: a small request, it
            # goes out while other blobs stream, and this one's stream starts with its download.
            session = self.start_upload(target)
            slot = _Slot(streams)
        # The stream is given back once the last byte is sent: the wait for the registry's
        # answer uses no bandwidth, and the next blob's download can begin meanwhile.
        try:
            with opener() as chunks:
                if opening is not None:
                    session = opening.result()
                assert session is not None
                body = _UploadBody(chunks, blob.size, progress, slot.release)
                self._upload(target, blob, session, body)
        finally:
            slot.release()

    def start_upload(self, target: Repository) -> str:
        """Open an upload session in ``target``; its location."""
        start = self.transport.request(
            "POST",
            target.endpoint,
            f"/v2/{target.path}/blobs/uploads/",
            scopes=[push_scope(target.path)],
        )
        raise_for_status(start, f"start upload to {target}")
        return self._location(target, start)

    def _upload(
        self, target: Repository, blob: Descriptor, session: str, body: _UploadBody
    ) -> None:
        what = f"upload of blob {blob.digest} to {target}"
        try:
            finish = self.transport.request(
                "PUT",
                target.endpoint,
                _with_digest(session, blob.digest),
                scopes=[push_scope(target.path)],
                headers={"Content-Type": "application/octet-stream"},
                data=body,
                retry=False,
            )
        except Unreachable as error:
            raise TransferBroken(f"{what} broke off: {error.message}") from None
        if is_retriable_status(finish.status_code):
            detail, _ = registry_message(finish)
            raise TransferBroken(
                f"{what} failed: {finish.status_code} {detail}".rstrip(),
                status=finish.status_code,
                retry_after=finish.headers.get("Retry-After"),
            )
        raise_for_status(finish, what)
        self._blob_arrived(target, blob.digest, blob.size)

    # -- plumbing --------------------------------------------------------------------------

    def _endpoints(
        self, repository: Repository, pull: bool, at: Endpoint | None = None
    ) -> list[Endpoint]:
        if at is not None:
            return [at]
        own = Endpoint(repository.endpoint, repository)
        if not pull:
            return [own]
        mirrors = self.transport.config.settings(repository.registry).mirrors
        return [Endpoint(host, repository) for host in mirrors] + [own]

    def _fetch(
        self,
        repository: Repository,
        path: str,
        pull: bool,
        what: str,
        limit: int,
        headers: dict[str, str] | None = None,
        *,
        missing_ok: bool = False,
        at: Endpoint | None = None,
    ) -> tuple[bytes, requests.Response] | None:
        """GET a body of at most ``limit`` bytes (mirrors first); ``missing_ok``: None for a
        404. The transport reads it to that limit, and reads it again when it breaks off."""
        response, _ = self._read(repository, "GET", path, pull, headers=headers, limit=limit, at=at)
        if missing_ok and response.status_code == 404:
            if not pull and at is None and registry_message(response)[1] == "NAME_UNKNOWN":
                with self._lock:
                    self._unknown.add(str(repository))
            return None
        raise_for_status(response, what)
        return response.content, response

    def _read(
        self,
        repository: Repository,
        method: str,
        path: str,
        pull: bool,
        *,
        headers: dict[str, str] | None = None,
        stream: bool = False,
        limit: int = MAX_ANSWER_BYTES,
        at: Endpoint | None = None,
    ) -> tuple[requests.Response, Endpoint]:
        """A read request, tried on each mirror, then on the registry itself (or on ``at``
        only); the answer, and the endpoint that gave it.

        A mirror that fails or lacks the content is passed over; the registry's own answer,
        whatever it is, is returned for the caller to judge. When the registry cannot be
        reached either, the error says what the mirrors answered: "cannot resolve host" alone
        would hide that a mirror was asked and lacked the content.
        """
        endpoints = self._endpoints(repository, pull, at)
        passed: list[str] = []
        for endpoint in endpoints[:-1]:
            try:
                response = self._send(endpoint, method, path, headers, stream, limit)
            except RegistryError as error:
                log.debug("mirror %s failed, trying the next: %s", endpoint.host, error)
                passed.append(f"mirror {endpoint.host} failed: {error.message}")
                continue
            if response.status_code < 400:
                return response, endpoint
            passed.append(f"mirror {endpoint.host} answered {response.status_code}")
            response.close()
        try:
            return self._send(endpoints[-1], method, path, headers, stream, limit), endpoints[-1]
        except RegistryError as error:
            if passed:
                error.message = f"{error.message}, and {'; '.join(passed)}"
            raise

    def _send(
        self,
        endpoint: Endpoint,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        stream: bool = False,
        limit: int = MAX_ANSWER_BYTES,
    ) -> requests.Response:
        scope = pull_scope(endpoint.repository.path)
        return self.transport.request(
            method, endpoint.host, path, scopes=[scope], headers=headers, stream=stream, limit=limit
        )

    def _location(self, target: Repository, response: requests.Response) -> str:
        location = response.headers.get("Location")
        if not location:
            raise RegistryError(f"{target.endpoint} started an upload but sent no Location")
        try:
            absolute = urljoin(self.transport.url(target.endpoint, "/"), location)
        except ValueError:
            absolute = ""
        if not self.transport.on_registry(target.endpoint, absolute):
            # Sending our credentials elsewhere (or in plain text) is never what a registry
            # should ask for.
            raise RegistryError(
                f"{target.endpoint} sent an upload location on another host or scheme: "
                f"{shown_url(location)}",
                "check the registry's configuration (its public URL, X-Forwarded-Proto)",
            )
        return absolute


class _Slot:
    """One of a semaphore's slots, taken now (unless ``taken`` already) and given back once,
    whoever asks first."""

    def __init__(self, semaphore: threading.BoundedSemaphore, *, taken: bool = False) -> None:
        self._semaphore = semaphore
        self._held = True
        if not taken:
            semaphore.acquire()

    def release(self) -> None:
        if self._held:
            self._held = False
            self._semaphore.release()


class _UploadBody:
    """A request body that sends a blob's chunks as they come from its stream.

    It has a length, so requests sends a Content-Length; it is iterable (not file-like), so
    urllib3 sends each chunk as it arrives rather than copying it out in 16 KiB reads. When
    urllib3 asks for more after the last chunk, every byte is with the socket: ``sent`` is
    told.
    """

    def __init__(
        self,
        chunks: Iterator[bytes],
        size: int,
        progress: Progress | None,
        sent: Callable[[], None],
    ) -> None:
        self._chunks = chunks
        self._size = size
        self._progress = progress
        self._sent = sent

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            if self._progress:
                self._progress(len(chunk))
            yield chunk
        self._sent()


def _body(download: requests.Response, blob: Descriptor, source: str) -> Iterator[bytes]:
    """A blob download's body as it arrives, undecoded, in chunks from FIRST_CHUNK up to
    CHUNK_SIZE; a body that breaks off raises TransferBroken."""
    size = FIRST_CHUNK
    received = 0
    while True:
        try:
            chunk = download.raw.read(size, decode_content=False)
        except _BODY_ERRORS as error:
            raise TransferBroken(
                f"the download of blob {blob.digest} from {source} broke off after {received} "
                f"of {blob.size} bytes: {broken_body(error)}"
            ) from None
        if not chunk:
            return
        received += len(chunk)
        yield chunk
        size = min(2 * size, CHUNK_SIZE)


def _with_digest(location: str, digest: str) -> str:
    """An upload location with the ``digest`` query that completes the upload."""
    parts = urlsplit(location)
    query = f"{parts.query}&" if parts.query else ""
    query += urlencode({"digest": digest})
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def _digest_like(data: bytes, expected: str) -> str:
    """The digest of ``data`` in the algorithm of ``expected`` (sha256 unless it says sha512)."""
    if expected.startswith("sha512:"):
        return "sha512:" + hashlib.sha512(data).hexdigest()
    return sha256_digest(data)


def _shown(text: str) -> str:
    """A header value in a message: at a readable length."""
    return excerpt(text) if len(text) <= 80 else excerpt(repr(text), 80)


def _media_type(response: requests.Response) -> str:
    """The Content-Type without its parameters (``; charset=utf-8``)."""
    return response.headers.get("Content-Type", "").split(";")[0].strip()


def _content_length(response: requests.Response) -> int:
    """Content-Length as a number; a missing or malformed one counts as 0 (unknown)."""
    value = (response.headers.get("Content-Length") or "").strip()
    return int(value) if value.isdigit() and len(value) < 19 else 0


def _next_link(response: requests.Response) -> str | None:
    link = response.links.get("next", {}).get("url")
    return str(link) if link else None
