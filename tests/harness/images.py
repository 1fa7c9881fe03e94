"""Generated test images, pushed with plain HTTP requests: an independent producer.

Nothing here uses imagesync's code, so a bug there cannot hide itself by being on both sides of
a test. Everything is deterministic from a ``seed``: the same call gives the same bytes and
digests in any registry (push to source and target with one seed and the target has "the same
image"); another seed gives other digests. Layers are streamed in chunks, so a 1 GiB layer
never sits in memory.

Where the registry is given, it is either a host string (``127.0.0.1:PORT``, plain HTTP, with
optional ``credentials``/``ca_file``/``session``) or a :class:`RegistryServer`-like object, whose
scheme, CA and first user are used. Basic auth is sent up front; a ``Bearer`` challenge (token
auth) is answered by fetching a ``pull,push`` token for the repository from the realm.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import re
import tarfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol
from urllib.parse import urljoin, urlsplit

import requests
from requests.auth import AuthBase, HTTPBasicAuth

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
COSIGN_SIGNATURE = "application/vnd.dev.cosign.simplesigning.v1+json"
COSIGN_SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
DSSE_ENVELOPE = "application/vnd.dsse.envelope.v1+json"
SPDX_JSON = "application/spdx+json"
ALL_MANIFEST_TYPES = (OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST)
EMPTY_JSON = b"{}"
# Artifacts as their tools write them: helm push, the CNCF Wasm OCI artifact layout, oras push.
HELM_CONFIG = "application/vnd.cncf.helm.config.v1+json"
HELM_CHART = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
HELM_PROVENANCE = "application/vnd.cncf.helm.chart.provenance.v1.prov"
WASM_CONFIG = "application/vnd.wasm.config.v0+json"
WASM_LAYER = "application/wasm"
OCI_TITLE = "org.opencontainers.image.title"
OCI_CREATED = "org.opencontainers.image.created"
CREATED = "2026-01-01T00:00:00Z"

CHUNK = 1024 * 1024
# Manifests are written with this indent: bytes a JSON re-serialiser would change, so a tool
# that re-encodes instead of copying raw bytes shows up as a digest mismatch.
MANIFEST_INDENT = 3

# ("linux", "amd64"), ("linux", "arm", "v7") or "linux/arm/v7"
Platform = tuple[str, ...] | str
Credentials = tuple[str, str]


class RegistryLike(Protocol):
    """What the helpers need from a registry; :class:`RegistryServer` has it."""

    @property
    def host(self) -> str: ...

    @property
    def scheme(self) -> str: ...

    @property
    def ca_file(self) -> Path | None: ...

    @property
    def credentials(self) -> Credentials | None: ...


class Blob(NamedTuple):
    digest: str
    size: int


@dataclass(frozen=True)
class Pushed:
    """What was pushed: one manifest and everything below it.

    For an index, ``manifests`` are the children in index order and ``blobs`` the distinct blobs
    of all of them; for an image manifest, ``platform`` is ``os/arch[/variant]`` and ``blobs``
    are the config then the layers.
    """

    repository: str
    tag: str | None
    digest: str
    media_type: str
    raw: bytes
    platform: str | None = None
    manifests: tuple[Pushed, ...] = ()
    blobs: tuple[Blob, ...] = ()
    host: str = ""
    artifact_type: str | None = None

    @property
    def size(self) -> int:
        return len(self.raw)

    @property
    def is_index(self) -> bool:
        return self.media_type in (OCI_INDEX, DOCKER_LIST)

    @property
    def children(self) -> tuple[str, ...]:
        """Child manifest digests, in index order (empty for an image manifest)."""
        return tuple(m.digest for m in self.manifests)

    @property
    def platforms(self) -> tuple[str, ...]:
        """``os/arch[/variant]`` of every child, or of this manifest itself."""
        if self.manifests:
            return tuple(m.platform or "" for m in self.manifests)
        return (self.platform,) if self.platform else ()

    @property
    def child_by_platform(self) -> dict[str, str]:
        return {m.platform or "": m.digest for m in self.manifests}

    @property
    def config(self) -> Blob | None:
        return None if self.is_index or not self.blobs else self.blobs[0]

    @property
    def blob_count(self) -> int:
        return len(self.blobs)

    @property
    def blob_bytes(self) -> int:
        return sum(blob.size for blob in self.blobs)

    @property
    def manifest_digests(self) -> tuple[str, ...]:
        """This manifest and its children: everything a copy must write by digest."""
        return (self.digest, *self.children)

    @property
    def total_bytes(self) -> int:
        """Distinct blob bytes plus every manifest's bytes: what a full copy transfers."""
        return self.blob_bytes + self.size + sum(m.size for m in self.manifests)

    @property
    def reference(self) -> str:
        """``host/repository@digest``."""
        return f"{self.host}/{self.repository}@{self.digest}"

    @property
    def tagged_reference(self) -> str:
        """``host/repository:tag`` (the digest reference when pushed without a tag)."""
        return f"{self.host}/{self.repository}:{self.tag}" if self.tag else self.reference

    def descriptor(self) -> dict[str, object]:
        described: dict[str, object] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.artifact_type:
            described["artifactType"] = self.artifact_type
        return described


@dataclass(frozen=True)
class Fetched:
    """A manifest as the registry served it."""

    raw: bytes
    media_type: str
    header_digest: str | None
    json: dict[str, Any] = field(repr=False, compare=False)

    @property
    def digest(self) -> str:
        return digest_of(self.raw)


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def platform_parts(platform: Platform) -> tuple[str, ...]:
    parts = tuple(platform.split("/")) if isinstance(platform, str) else tuple(platform)
    if len(parts) not in (2, 3) or not all(parts):
        raise ValueError(f"platform must be os/arch[/variant], not {platform!r}")
    return parts


def platform_text(platform: Platform) -> str:
    return "/".join(platform_parts(platform))


def platform_object(platform: Platform) -> dict[str, str]:
    parts = platform_parts(platform)
    described = {"architecture": parts[1], "os": parts[0]}
    if len(parts) == 3:
        described["variant"] = parts[2]
    return described


def stable_seed(*parts: object) -> int:
    """A seed from parts; ``hash()`` of strings changes between processes, this does not."""
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "big")


def layer_chunks(seed: int, size: int) -> Iterator[bytes]:
    """``size`` deterministic bytes from ``seed``, in chunks of at most 1 MiB.

    One random block per seed, each later chunk stamped with its number: random-looking,
    distinct per seed, and fast enough (GB/s) for GiB layers, where ``randbytes`` is ~200 MB/s.
    """
    base = random.Random(seed).randbytes(min(size, CHUNK))
    number, left = 0, size
    while left > 0:
        step = min(CHUNK, left)
        yield base[:step] if number == 0 else (number.to_bytes(8, "big") + base[8:])[:step]
        left -= step
        number += 1


def layer_digest(seed: int, size: int) -> str:
    digest = hashlib.sha256()
    for chunk in layer_chunks(seed, size):
        digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def canonical_json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def manifest_json(value: object) -> bytes:
    return json.dumps(value, indent=MANIFEST_INDENT).encode()


def go_json(value: object) -> bytes:
    """JSON as Go's encoding/json writes it (helm, oras): compact, fields in struct order."""
    return json.dumps(value, separators=(",", ":")).encode()


_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')
_REPOSITORY_IN_PATH = re.compile(r"^/v2/(.+?)/(?:blobs|manifests|tags|referrers)/")


class RegistryAuth(AuthBase):
    """Basic credentials sent up front, and the bearer-token flow when challenged.

    Tokens are cached per repository and asked for with ``pull,push`` (the token server grants
    what the user may have), so the first request to a repository (a POST or a HEAD, without a
    body) gets the token and a streamed body is never sent twice.
    """

    def __init__(self, credentials: Credentials | None, verify: str | bool = True) -> None:
        self.credentials = credentials
        self.verify = verify
        self.bearer = False
        self._tokens: dict[str, str] = {}

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        token = self._tokens.get(self._repository(request.url))
        if token:
            request.headers["Authorization"] = f"Bearer {token}"
        elif self.credentials and not self.bearer:
            HTTPBasicAuth(*self.credentials)(request)
        request.hooks.setdefault("response", []).append(self._on_response)
        return request

    @staticmethod
    def _repository(url: str | None) -> str:
        match = _REPOSITORY_IN_PATH.match(urlsplit(url or "").path)
        return match.group(1) if match else ""

    def _on_response(self, response: requests.Response, **kwargs: Any) -> requests.Response:
        challenge = response.headers.get("WWW-Authenticate", "")
        if response.status_code != 401 or not challenge.lower().startswith("bearer "):
            return response
        request = response.request
        if request.body is not None and not isinstance(request.body, bytes | str):
            return response  # a consumed stream cannot be sent again
        self.bearer = True
        params = dict(_CHALLENGE_PARAM.findall(challenge))
        repository = self._repository(request.url)
        query: dict[str, str] = {"service": params.get("service", "")}
        if repository:
            query["scope"] = f"repository:{repository}:pull,push"
        elif "scope" in params:
            query["scope"] = params["scope"]
        with requests.Session() as fetcher:
            fetcher.trust_env = False
            answer = fetcher.get(
                params["realm"],
                params=query,
                auth=self.credentials,
                verify=self.verify,
                timeout=30,
            )
        if answer.status_code != 200:
            return response
        body = answer.json()
        token = str(body.get("token") or body.get("access_token") or "")
        self._tokens[repository] = token
        retry = request.copy()
        retry.headers["Authorization"] = f"Bearer {token}"
        response.content  # noqa: B018 - read it so the connection goes back to the pool
        response.close()
        connection = getattr(response, "connection", None)
        if connection is None:
            return response
        again: requests.Response = connection.send(retry, **kwargs)
        again.history.append(response)
        again.request = retry
        return again


class _SizedStream:
    """A file-like body over chunks with a known length: requests then sends Content-Length
    and reads it block by block. It hashes what passes, so the digest comes for free."""

    def __init__(self, chunks: Iterable[bytes], size: int | None) -> None:
        self._chunks = iter(chunks)
        self._size = size
        self._buffer = b""
        self.sent = 0
        self.sha256 = hashlib.sha256()

    def __len__(self) -> int:
        if self._size is None:
            raise TypeError("unknown length")
        return self._size

    def read(self, size: int | None = -1) -> bytes:
        while not self._buffer:
            chunk = next(self._chunks, None)
            if chunk is None:
                return b""
            self._buffer = chunk
        if size is None or size < 0:
            size = len(self._buffer)
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        self.sha256.update(data)
        self.sent += len(data)
        return data

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read(CHUNK):
            yield chunk


class Pusher:
    """Talks to one registry over plain HTTP(S) with ``requests``; no imagesync code."""

    def __init__(
        self,
        registry: str | RegistryLike,
        session: requests.Session | None = None,
        scheme: str | None = None,
        *,
        credentials: Credentials | None = None,
        ca_file: Path | str | None = None,
    ) -> None:
        if isinstance(registry, str):
            self.host = registry
            scheme = scheme or ("https" if ca_file else "http")
        else:
            self.host = registry.host
            scheme = scheme or registry.scheme
            ca_file = ca_file or registry.ca_file
            credentials = credentials or registry.credentials
        self.base = f"{scheme}://{self.host}"
        if session is None:
            session = requests.Session()
            # Without this, REQUESTS_CA_BUNDLE would override session.verify, and proxy
            # variables could send loopback traffic elsewhere.
            session.trust_env = False
            session.verify = str(ca_file) if ca_file else True
            session.auth = RegistryAuth(credentials, session.verify)
        self.session = session

    def _url(self, path: str) -> str:
        return f"{self.base}/v2/{path}"

    @staticmethod
    def _check(response: requests.Response, *expected: int) -> requests.Response:
        if response.status_code not in expected:
            raise AssertionError(
                f"{response.request.method} {response.url} -> {response.status_code}, "
                f"expected {expected}: {response.text[:2000]}"
            )
        return response

    def _start_upload(self, repository: str) -> str:
        start = self._check(self.session.post(self._url(f"{repository}/blobs/uploads/")), 202)
        return urljoin(self.base, start.headers["Location"])

    @staticmethod
    def _with_digest(location: str, digest: str) -> str:
        return f"{location}{'&' if '?' in location else '?'}digest={digest}"

    def put_blob(self, repository: str, data: bytes) -> Blob:
        """A monolithic upload: POST, then PUT with the bytes and their digest."""
        digest = digest_of(data)
        location = self._start_upload(repository)
        self._check(
            self.session.put(
                self._with_digest(location, digest),
                data=data,
                headers={"Content-Type": "application/octet-stream"},
            ),
            201,
        )
        return Blob(digest, len(data))

    def upload_stream(
        self,
        repository: str,
        chunks: Iterable[bytes],
        *,
        size: int | None = None,
        chunk_size: int | None = None,
    ) -> Blob:
        """A streamed upload whose digest is computed as the bytes pass.

        Without ``chunk_size``: one PATCH with the whole stream (Content-Length when ``size`` is
        known, else chunked transfer encoding). With it: a PATCH per ``chunk_size`` bytes with
        Content-Range, the registry's resumable chunked upload. Then an empty PUT with the digest.
        """
        location = self._start_upload(repository)
        headers = {"Content-Type": "application/octet-stream"}
        sha256 = hashlib.sha256()
        total = 0
        if chunk_size is None:
            stream = _SizedStream(chunks, size)
            body: Any = stream if size is not None else iter(stream)
            patched = self._check(
                self.session.patch(location, data=body, headers=headers), 202, 204
            )
            location = urljoin(self.base, patched.headers["Location"])
            sha256, total = stream.sha256, stream.sent
        else:
            for piece in _regroup(chunks, chunk_size):
                sha256.update(piece)
                patched = self._check(
                    self.session.patch(
                        location,
                        data=piece,
                        headers={
                            **headers,
                            "Content-Range": f"{total}-{total + len(piece) - 1}",
                        },
                    ),
                    202,
                    204,
                )
                location = urljoin(self.base, patched.headers["Location"])
                total += len(piece)
        if size is not None and total != size:
            raise AssertionError(f"the stream gave {total} bytes, {size} were announced")
        digest = "sha256:" + sha256.hexdigest()
        self._check(self.session.put(self._with_digest(location, digest), headers=headers), 201)
        return Blob(digest, total)

    def put_manifest(self, repository: str, reference: str, raw: bytes, media_type: str) -> str:
        """PUT raw manifest bytes; returns their digest (checked against the registry's)."""
        response = self._check(
            self.session.put(
                self._url(f"{repository}/manifests/{reference}"),
                data=raw,
                headers={"Content-Type": media_type},
            ),
            201,
        )
        digest = digest_of(raw)
        served = response.headers.get("Docker-Content-Digest")
        if served and served != digest:
            raise AssertionError(f"the registry says {served} for bytes that hash to {digest}")
        return digest

    def get_manifest(
        self, repository: str, reference: str, accept: Sequence[str] = ALL_MANIFEST_TYPES
    ) -> requests.Response:
        return self.session.get(
            self._url(f"{repository}/manifests/{reference}"),
            headers={"Accept": ", ".join(accept)},
        )

    def fetch_manifest(self, repository: str, reference: str) -> Fetched:
        response = self._check(self.get_manifest(repository, reference), 200)
        return Fetched(
            raw=response.content,
            media_type=response.headers.get("Content-Type", "").split(";")[0].strip(),
            header_digest=response.headers.get("Docker-Content-Digest"),
            json=response.json(),
        )

    def head_manifest(self, repository: str, reference: str) -> requests.Response:
        return self.session.head(
            self._url(f"{repository}/manifests/{reference}"),
            headers={"Accept": ", ".join(ALL_MANIFEST_TYPES)},
        )

    def manifest_exists(self, repository: str, reference: str) -> bool:
        return self._check(self.head_manifest(repository, reference), 200, 404).status_code == 200

    def delete_manifest(self, repository: str, digest: str) -> None:
        """Delete by digest (registry 2.8 cannot delete a tag alone; this drops its tags too)."""
        self._check(self.session.delete(self._url(f"{repository}/manifests/{digest}")), 202)

    def blob_exists(self, repository: str, digest: str) -> bool:
        response = self.session.head(self._url(f"{repository}/blobs/{digest}"))
        return self._check(response, 200, 404).status_code == 200

    def get_blob(self, repository: str, digest: str) -> bytes:
        """A small blob's bytes (a config, a signature payload), checked against its digest."""
        data = self._check(self.session.get(self._url(f"{repository}/blobs/{digest}")), 200).content
        if digest_of(data) != digest:
            raise AssertionError(f"the registry served other bytes for {digest}")
        return data

    def blob_digest(self, repository: str, digest: str) -> str:
        """Stream the blob and hash it: the digest of what the registry really serves."""
        sha256 = hashlib.sha256()
        with self.session.get(self._url(f"{repository}/blobs/{digest}"), stream=True) as got:
            self._check(got, 200)
            for chunk in got.iter_content(CHUNK):
                sha256.update(chunk)
        return "sha256:" + sha256.hexdigest()

    def tags(self, repository: str) -> list[str]:
        response = self.session.get(self._url(f"{repository}/tags/list"))
        if response.status_code == 404:
            return []
        return list(self._check(response, 200).json().get("tags") or [])


def _regroup(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    buffer = bytearray()
    for chunk in chunks:
        buffer += chunk
        while len(buffer) >= size:
            yield bytes(buffer[:size])
            del buffer[:size]
    if buffer:
        yield bytes(buffer)


def connect(
    registry: str | RegistryLike | Pusher,
    *,
    session: requests.Session | None = None,
    scheme: str | None = None,
    credentials: Credentials | None = None,
    ca_file: Path | str | None = None,
) -> Pusher:
    if isinstance(registry, Pusher):
        return registry
    return Pusher(registry, session, scheme, credentials=credentials, ca_file=ca_file)


def push_blob(
    registry: str | RegistryLike | Pusher,
    repository: str,
    data: bytes | Iterable[bytes],
    *,
    size: int | None = None,
    chunk_size: int | None = None,
    session: requests.Session | None = None,
    scheme: str | None = None,
    credentials: Credentials | None = None,
    ca_file: Path | str | None = None,
) -> Blob:
    """Upload a blob: bytes monolithically, an iterable of chunks streamed (see
    :meth:`Pusher.upload_stream`)."""
    pusher = connect(
        registry, session=session, scheme=scheme, credentials=credentials, ca_file=ca_file
    )
    if isinstance(data, bytes) and chunk_size is None:
        return pusher.put_blob(repository, data)
    chunks = [data] if isinstance(data, bytes) else data
    return pusher.upload_stream(repository, chunks, size=size, chunk_size=chunk_size)


def push_manifest_raw(
    registry: str | RegistryLike | Pusher,
    repository: str,
    reference: str,
    body: bytes,
    media_type: str,
    *,
    session: requests.Session | None = None,
    scheme: str | None = None,
    credentials: Credentials | None = None,
    ca_file: Path | str | None = None,
) -> str:
    """PUT manifest bytes as they are under a tag or digest; returns their digest."""
    pusher = connect(
        registry, session=session, scheme=scheme, credentials=credentials, ca_file=ca_file
    )
    return pusher.put_manifest(repository, reference, body, media_type)


def push_single(
    pusher: Pusher,
    repository: str,
    reference: str | None,
    platform: Platform,
    *,
    kind: str = "oci",
    layers: int | Sequence[int] = 2,
    layer_size: int = 1024,
    seed: int = 1,
    chunk_size: int | None = None,
    base_layers: Sequence[int] = (),
    base_seed: int = 0,
) -> Pushed:
    """A single-platform image manifest; ``reference`` None pushes it by digest only.

    ``base_layers`` (sizes) come first and depend on ``base_seed`` and the platform only, not
    on ``seed``: images with one base seed share them, as images of one vendor share a
    distro base."""
    if kind not in ("oci", "docker"):
        raise ValueError(f"kind is 'oci' or 'docker', not {kind!r}")
    docker = kind == "docker"
    sizes = [layer_size] * layers if isinstance(layers, int) else list(layers)
    parts = platform_parts(platform)
    seeded = [(stable_seed("base", base_seed, parts, n, s), s) for n, s in enumerate(base_layers)]
    seeded += [(stable_seed(seed, parts, n, s), s) for n, s in enumerate(sizes)]
    layer_blobs: list[Blob] = []
    for layer_seed, size in seeded:
        if size <= CHUNK and chunk_size is None:
            data = b"".join(layer_chunks(layer_seed, size))
            layer_blobs.append(pusher.put_blob(repository, data))
        else:
            layer_blobs.append(
                pusher.upload_stream(
                    repository, layer_chunks(layer_seed, size), size=size, chunk_size=chunk_size
                )
            )
    config = {
        **platform_object(parts),
        "created": "2026-01-01T00:00:00Z",
        "config": {"Labels": {"org.imagesync.test.seed": str(seed)}},
        "rootfs": {"type": "layers", "diff_ids": [blob.digest for blob in layer_blobs]},
        "history": [{"created": "2026-01-01T00:00:00Z", "created_by": "imagesync test harness"}]
        * len(layer_blobs),
    }
    config_blob = pusher.put_blob(repository, canonical_json(config))
    media_type = DOCKER_MANIFEST if docker else OCI_MANIFEST
    manifest = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {
            "mediaType": DOCKER_CONFIG if docker else OCI_CONFIG,
            "digest": config_blob.digest,
            "size": config_blob.size,
        },
        "layers": [
            {
                "mediaType": DOCKER_LAYER if docker else OCI_LAYER,
                "digest": blob.digest,
                "size": blob.size,
            }
            for blob in layer_blobs
        ],
    }
    raw = manifest_json(manifest)
    digest = pusher.put_manifest(repository, reference or digest_of(raw), raw, media_type)
    return Pushed(
        repository=repository,
        tag=reference,
        digest=digest,
        media_type=media_type,
        raw=raw,
        platform="/".join(parts),
        blobs=(config_blob, *layer_blobs),
        host=pusher.host,
    )


def push_index(
    registry: str | RegistryLike | Pusher,
    repository: str,
    tag: str | None,
    children: Sequence[Pushed],
    *,
    kind: str = "oci",
    annotations: Mapping[str, str] | None = None,
    artifact_type: str | None = None,
    subject: str | Pushed | Mapping[str, object] | None = None,
    session: requests.Session | None = None,
    scheme: str | None = None,
    credentials: Credentials | None = None,
    ca_file: Path | str | None = None,
) -> Pushed:
    """An OCI index (``kind="oci"``) or Docker manifest list (``"docker"``) over manifests
    already pushed to ``repository``; ``tag`` None pushes it by digest only.

    ``artifact_type`` and ``subject`` make it an OCI 1.1 index artifact attached to
    ``subject`` (listed in its tag-schema index, as for :func:`push_referrer`); an index
    whose child is also its subject is a referrer graph with a cycle."""
    pusher = connect(
        registry, session=session, scheme=scheme, credentials=credentials, ca_file=ca_file
    )
    media_type = DOCKER_LIST if kind == "docker" else OCI_INDEX
    entries = []
    for child in children:
        entry = child.descriptor()
        if child.platform:
            entry["platform"] = platform_object(child.platform)
        entries.append(entry)
    index: dict[str, object] = {"schemaVersion": 2, "mediaType": media_type}
    if artifact_type:
        index["artifactType"] = artifact_type
    index["manifests"] = entries
    subject_descriptor = None
    if subject is not None:
        subject_descriptor = _subject_descriptor(pusher, repository, subject)
        index["subject"] = subject_descriptor
    if annotations:
        index["annotations"] = dict(annotations)
    raw = manifest_json(index)
    digest = pusher.put_manifest(repository, tag or digest_of(raw), raw, media_type)
    blobs = dict.fromkeys(blob for child in children for blob in child.blobs)
    pushed = Pushed(
        repository=repository,
        tag=tag,
        digest=digest,
        media_type=media_type,
        raw=raw,
        manifests=tuple(children),
        blobs=tuple(blobs),
        host=pusher.host,
        artifact_type=artifact_type,
    )
    if subject_descriptor is not None:
        _list_in_tag_schema(pusher, repository, str(subject_descriptor["digest"]), pushed)
    return pushed


def push_image(
    registry: str | RegistryLike | Pusher,
    repository: str,
    tag: str | None,
    platforms: Sequence[Platform] = (("linux", "amd64"), ("linux", "arm64")),
    *,
    kind: str = "oci",
    index: bool = True,
    layers: int | Sequence[int] = 2,
    layer_size: int = 1024,
    seed: int = 1,
    chunk_size: int | None = None,
    base_layers: Sequence[int] = (),
    base_seed: int = 0,
    session: requests.Session | None = None,
    scheme: str | None = None,
    credentials: Credentials | None = None,
    ca_file: Path | str | None = None,
) -> Pushed:
    """Push a generated image and return what was pushed.

    ``index=True`` (default): an OCI image index (``kind="oci"``) or Docker manifest list
    (``kind="docker"``) over ``platforms``, children pushed by digest. ``index=False``: a single
    OCI / Docker v2 image manifest for ``platforms[0]``. ``layers`` is a count of ``layer_size``
    byte layers or a list of sizes; layers above 1 MiB (or with ``chunk_size``) are streamed.
    Layer bytes depend on (seed, platform, position, size), so images with one seed share the
    layers they have in common; the config lists the layers, so it differs when they differ.
    ``base_layers`` (sizes) go below them and depend on ``base_seed`` instead of ``seed``:
    images of other seeds share them (a common distro base).
    """
    if not platforms:
        raise ValueError("at least one platform")
    pusher = connect(
        registry, session=session, scheme=scheme, credentials=credentials, ca_file=ca_file
    )
    options: dict[str, Any] = {
        "kind": kind,
        "layers": layers,
        "layer_size": layer_size,
        "seed": seed,
        "chunk_size": chunk_size,
        "base_layers": base_layers,
        "base_seed": base_seed,
    }
    if not index:
        return push_single(pusher, repository, tag, platforms[0], **options)
    children = [push_single(pusher, repository, None, p, **options) for p in platforms]
    return push_index(pusher, repository, tag, children, kind=kind)


def _subject_descriptor(pusher: Pusher, repository: str, subject: object) -> dict[str, object]:
    if isinstance(subject, Pushed):
        return {k: v for k, v in subject.descriptor().items() if k != "artifactType"}
    if isinstance(subject, Mapping):
        return dict(subject)
    if isinstance(subject, str):
        head = pusher._check(pusher.head_manifest(repository, subject), 200)
        return {
            "mediaType": head.headers["Content-Type"].split(";")[0].strip(),
            "digest": head.headers.get("Docker-Content-Digest", subject),
            "size": int(head.headers["Content-Length"]),
        }
    raise TypeError(f"subject is a Pushed, a descriptor or a digest, not {subject!r}")


def cosign_tag(digest: str, suffix: str = ".sig") -> str:
    """cosign's tag for a digest: ``sha256-<hex>.sig`` (``.att``, ``.sbom``)."""
    return digest.replace(":", "-") + suffix


def push_cosign_signature(
    registry: str | RegistryLike | Pusher,
    repository: str,
    subject: str | Pushed,
    *,
    suffix: str = ".sig",
    seed: int = 1,
    session: requests.Session | None = None,
    scheme: str | None = None,
    credentials: Credentials | None = None,
    ca_file: Path | str | None = None,
) -> Pushed:
    """A cosign-layout object for ``subject`` (a digest or a Pushed), tagged
    ``sha256-<hex><suffix>``.

    ``.sig``: a simple-signing payload layer with the ``dev.cosignproject.cosign/signature``
    annotation (what ``cosign sign`` pushes); ``.att``: a DSSE envelope layer with a
    ``predicateType`` annotation; ``.sbom``: an SPDX JSON layer. Signature bytes are fake:
    nothing here verifies them, the tool only has to copy them.
    """
    pusher = connect(
        registry, session=session, scheme=scheme, credentials=credentials, ca_file=ca_file
    )
    digest = subject.digest if isinstance(subject, Pushed) else subject
    if suffix == ".sig":
        payload = canonical_json(
            {
                "critical": {
                    "identity": {"docker-reference": f"{pusher.host}/{repository}"},
                    "image": {"docker-manifest-digest": digest},
                    "type": "cosign container image signature",
                },
                "optional": {"seed": seed},
            }
        )
        layer_type = COSIGN_SIGNATURE
        annotations = {COSIGN_SIGNATURE_ANNOTATION: f"MEUCIQDtest{seed:08d}signature=="}
    elif suffix == ".att":
        payload = canonical_json(
            {"payloadType": "application/vnd.in-toto+json", "payload": f"seed-{seed}"}
        )
        layer_type = DSSE_ENVELOPE
        annotations = {"predicateType": "https://slsa.dev/provenance/v0.2"}
    elif suffix == ".sbom":
        payload = canonical_json({"spdxVersion": "SPDX-2.3", "name": f"seed-{seed}"})
        layer_type, annotations = SPDX_JSON, {}
    else:
        raise ValueError(f"suffix is .sig, .att or .sbom, not {suffix!r}")
    payload_blob = pusher.put_blob(repository, payload)
    config = canonical_json(
        {
            "architecture": "",
            "os": "",
            "created": "0001-01-01T00:00:00Z",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [payload_blob.digest]},
        }
    )
    config_blob = pusher.put_blob(repository, config)
    layer: dict[str, object] = {
        "mediaType": layer_type,
        "digest": payload_blob.digest,
        "size": payload_blob.size,
    }
    if annotations:
        layer["annotations"] = annotations
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": OCI_CONFIG,
            "digest": config_blob.digest,
            "size": config_blob.size,
        },
        "layers": [layer],
    }
    raw = manifest_json(manifest)
    tag = cosign_tag(digest, suffix)
    pushed_digest = pusher.put_manifest(repository, tag, raw, OCI_MANIFEST)
    return Pushed(
        repository=repository,
        tag=tag,
        digest=pushed_digest,
        media_type=OCI_MANIFEST,
        raw=raw,
        blobs=(config_blob, payload_blob),
        host=pusher.host,
    )


def push_referrer(
    registry: str | RegistryLike | Pusher,
    repository: str,
    subject: str | Pushed | Mapping[str, object],
    *,
    artifact_type: str = SPDX_JSON,
    seed: int = 1,
    update_tag_schema: bool = True,
    session: requests.Session | None = None,
    scheme: str | None = None,
    credentials: Credentials | None = None,
    ca_file: Path | str | None = None,
) -> Pushed:
    """An OCI 1.1 artifact (an image manifest with ``artifactType``, an empty config and a
    ``subject``) pushed by digest. ``subject`` is a Pushed, a descriptor or a digest in
    ``repository`` (then its descriptor is read with a HEAD).

    Registry 2.8 has no referrers API, so with ``update_tag_schema`` the ``sha256-<hex>`` tag
    schema index is updated to list it, as oras and cosign do against such registries.
    """
    pusher = connect(
        registry, session=session, scheme=scheme, credentials=credentials, ca_file=ca_file
    )
    subject_descriptor = _subject_descriptor(pusher, repository, subject)
    content = canonical_json({"spdxVersion": "SPDX-2.3", "seed": seed, "type": artifact_type})
    empty = pusher.put_blob(repository, EMPTY_JSON)
    content_blob = pusher.put_blob(repository, content)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": OCI_EMPTY, "digest": empty.digest, "size": empty.size},
        "layers": [
            {"mediaType": artifact_type, "digest": content_blob.digest, "size": content_blob.size}
        ],
        "subject": subject_descriptor,
        "annotations": {"org.opencontainers.image.created": "2026-01-01T00:00:00Z"},
    }
    raw = manifest_json(manifest)
    digest = pusher.put_manifest(repository, digest_of(raw), raw, OCI_MANIFEST)
    pushed = Pushed(
        repository=repository,
        tag=None,
        digest=digest,
        media_type=OCI_MANIFEST,
        raw=raw,
        blobs=(empty, content_blob),
        host=pusher.host,
        artifact_type=artifact_type,
    )
    if update_tag_schema:
        _list_in_tag_schema(pusher, repository, str(subject_descriptor["digest"]), pushed)
    return pushed


def _list_in_tag_schema(pusher: Pusher, repository: str, subject: str, referrer: Pushed) -> None:
    """Add ``referrer`` to the ``sha256-<hex>`` index of ``subject``, as oras and cosign do
    where a registry has no referrers API (registry 2.8)."""
    tag = cosign_tag(subject, "")
    existing = pusher.get_manifest(repository, tag, [OCI_INDEX])
    entries = existing.json()["manifests"] if existing.status_code == 200 else []
    entries = [e for e in entries if e.get("digest") != referrer.digest] + [referrer.descriptor()]
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
    pusher.put_manifest(repository, tag, manifest_json(index), OCI_INDEX)


def _chart_archive(name: str, version: str, seed: int) -> bytes:
    """A chart package as ``helm package`` makes it: ``<name>/Chart.yaml`` and the rest in a
    gzipped tar (timestamps fixed, so the same seed gives the same bytes)."""
    files = {
        f"{name}/Chart.yaml": f"apiVersion: v2\nname: {name}\nversion: {version}\n"
        f"description: A Helm chart for Kubernetes\ntype: application\nappVersion: 1.16.0\n",
        f"{name}/values.yaml": f"replicaCount: 1\nseed: {seed}\n",
        f"{name}/templates/configmap.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
        "  name: {{ .Release.Name }}\ndata:\n  seed: {{ .Values.seed | quote }}\n",
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for path, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            archive.addfile(info, io.BytesIO(data))
    return gzip.compress(buffer.getvalue(), mtime=0)


def push_helm_chart(
    registry: str | RegistryLike | Pusher,
    repository: str,
    version: str = "0.1.0",
    *,
    tag: str | None = None,
    seed: int = 1,
    provenance: bool = False,
) -> Pushed:
    """A Helm chart as ``helm push chart.tgz oci://HOST/<dirname of repository>`` writes it
    (helm 3.8 and later): the chart's metadata as config (``application/vnd.cncf.helm.config
    .v1+json``), the package as the one layer (``…chart.content.v1.tar+gzip``), with
    ``provenance`` the ``.prov`` file as a second layer; a manifest without ``mediaType``
    (helm marshals ocispec.Manifest without setting it), compact, with the OCI annotations
    helm derives from Chart.yaml. The tag is the chart version (helm's strict mode)."""
    pusher = connect(registry)
    name = repository.rsplit("/", 1)[-1]
    chart = pusher.put_blob(repository, _chart_archive(name, version, seed))
    description = "A Helm chart for Kubernetes"
    metadata = {
        "name": name,
        "version": version,
        "description": description,
        "apiVersion": "v2",
        "appVersion": "1.16.0",
        "type": "application",
    }
    config = pusher.put_blob(repository, go_json(metadata))
    layers = [{"mediaType": HELM_CHART, "digest": chart.digest, "size": chart.size}]
    blobs = [config, chart]
    if provenance:
        prov = pusher.put_blob(repository, f"-----BEGIN PGP SIGNED MESSAGE-----\n{seed}\n".encode())
        layers.append({"mediaType": HELM_PROVENANCE, "digest": prov.digest, "size": prov.size})
        blobs.append(prov)
    manifest = {
        "schemaVersion": 2,
        "config": {"mediaType": HELM_CONFIG, "digest": config.digest, "size": config.size},
        "layers": layers,
        "annotations": {
            OCI_CREATED: CREATED,
            "org.opencontainers.image.description": description,
            OCI_TITLE: name,
            "org.opencontainers.image.version": version,
        },
    }
    raw = go_json(manifest)
    reference = tag or version
    digest = pusher.put_manifest(repository, reference, raw, OCI_MANIFEST)
    return Pushed(
        repository, reference, digest, OCI_MANIFEST, raw, blobs=tuple(blobs), host=pusher.host
    )


def push_wasm_module(
    registry: str | RegistryLike | Pusher,
    repository: str,
    tag: str | None,
    *,
    seed: int = 1,
    wasi: str = "wasip1",
) -> Pushed:
    """A WASM module in the CNCF Wasm OCI artifact layout (what wkg and wasm-pkg-tools push):
    config ``application/vnd.wasm.config.v0+json`` naming architecture ``wasm`` and the
    layers' digests, the module as one ``application/wasm`` layer; no ``artifactType``."""
    pusher = connect(registry)
    # The wasm magic and version, then a custom section that makes each seed's module its own.
    module = b"\0asm\x01\0\0\0" + bytes([0, 9, 4]) + b"seed" + seed.to_bytes(4, "big")
    layer = pusher.put_blob(repository, module)
    config_document = {
        "created": CREATED,
        "author": "imagesync test harness",
        "architecture": "wasm",
        "os": wasi,
        "layerDigests": [layer.digest],
    }
    config = pusher.put_blob(repository, go_json(config_document))
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": WASM_CONFIG, "digest": config.digest, "size": config.size},
        "layers": [
            {
                "mediaType": WASM_LAYER,
                "digest": layer.digest,
                "size": layer.size,
                "annotations": {OCI_TITLE: "module.wasm"},
            }
        ],
    }
    raw = go_json(manifest)
    digest = pusher.put_manifest(repository, tag or digest_of(raw), raw, OCI_MANIFEST)
    return Pushed(
        repository, tag, digest, OCI_MANIFEST, raw, blobs=(config, layer), host=pusher.host
    )


def push_artifact(
    registry: str | RegistryLike | Pusher,
    repository: str,
    tag: str | None,
    *,
    artifact_type: str = "application/vnd.example.policy.v1",
    layer_type: str = "application/vnd.cncf.openpolicyagent.policy.layer.v1+rego",
    seed: int = 1,
) -> Pushed:
    """An OCI 1.1 artifact as ``oras push --artifact-type T REF file`` writes it: an image
    manifest with ``artifactType``, the empty config (``application/vnd.oci.empty.v1+json``,
    with its ``data`` inline), one layer titled with the file's name, a created annotation."""
    pusher = connect(registry)
    empty = pusher.put_blob(repository, EMPTY_JSON)
    content = pusher.put_blob(repository, f"package example\n\nseed := {seed}\n".encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {
            "mediaType": OCI_EMPTY,
            "digest": empty.digest,
            "size": empty.size,
            "data": "e30=",
        },
        "layers": [
            {
                "mediaType": layer_type,
                "digest": content.digest,
                "size": content.size,
                "annotations": {OCI_TITLE: "policy.rego"},
            }
        ],
        "annotations": {OCI_CREATED: CREATED},
    }
    raw = go_json(manifest)
    digest = pusher.put_manifest(repository, tag or digest_of(raw), raw, OCI_MANIFEST)
    return Pushed(
        repository,
        tag,
        digest,
        OCI_MANIFEST,
        raw,
        blobs=(empty, content),
        host=pusher.host,
        artifact_type=artifact_type,
    )


def fetch_manifest(
    registry: str | RegistryLike | Pusher,
    repository: str,
    reference: str,
    *,
    session: requests.Session | None = None,
    scheme: str | None = None,
    credentials: Credentials | None = None,
    ca_file: Path | str | None = None,
) -> Fetched:
    """GET a manifest accepting every manifest type; the bytes exactly as served."""
    pusher = connect(
        registry, session=session, scheme=scheme, credentials=credentials, ca_file=ca_file
    )
    return pusher.fetch_manifest(repository, reference)


def assert_complete(
    registry: str | RegistryLike | Pusher,
    repository: str,
    expected: Pushed,
    *,
    reference: str | None = None,
    check_blob_bytes: bool = False,
) -> None:
    """``repository`` holds ``expected`` whole: the manifest under ``reference`` (default its
    tag, else digest) has exactly its bytes, every child manifest and blob exists (and with
    ``check_blob_bytes`` hashes to its digest). The check for "the copy is complete"."""
    pusher = connect(registry)
    top = pusher.fetch_manifest(repository, reference or expected.tag or expected.digest)
    assert top.digest == expected.digest, f"{repository}: {top.digest} != {expected.digest}"
    assert top.raw == expected.raw
    for child in expected.manifests:
        fetched = pusher.fetch_manifest(repository, child.digest)
        assert fetched.raw == child.raw, f"{repository}@{child.digest} differs"
    for blob in expected.blobs:
        assert pusher.blob_exists(repository, blob.digest), f"{repository}: {blob} missing"
        if check_blob_bytes:
            assert pusher.blob_digest(repository, blob.digest) == blob.digest
