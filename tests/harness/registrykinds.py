"""A proxy in front of a real registry that answers as one kind of registry does.

``KindProxy(upstream, kind)`` listens on loopback and passes every request through to
``upstream`` (a distribution registry), except where the kind answers otherwise; each such
behaviour names its public source (``/work/shared/registries.md``). Every request is logged
(:attr:`KindProxy.log`: method, path, status, Content-Range, body size) for tests to count.

Kinds and what they play:

- ``distribution``: nothing; a pass-through that logs.
- ``dockerhub``: manifest ``GET``\\ s count against a pull quota (``quota``), ``HEAD``\\ s do not;
  ``ratelimit-limit``/``ratelimit-remaining`` on manifest answers, ``429 TOOMANYREQUESTS``
  past the quota. No referrers API.
- ``harbor``: a mount from a top-level repository is ``400``, from any other ``401`` (played
  as a project that does not exist, for every mount: the proxy does not model projects).
- ``ghcr``: a ``PATCH`` over 4 MiB is ``416``; no referrers API (``404``).
- ``gar``: a bearer challenge without ``service``, from the proxy's own token endpoint
  (``/token``); the token is stripped before the request goes on to the anonymous registry.
- ``quay``: OCI artifacts refused (``415``) unless ``quay_oci=True``; repository names of more
  than two components refused (``400 NAME_INVALID``) unless ``quay_nested=True``.
- ``acr``: a tag list is ``401`` (a token without ``metadata_read``); a manifest ``PUT`` with a
  subject answers ``OCI-Subject`` while the referrers API is ``404``.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from tests.harness.loopback import LoopbackServer

KINDS = ("distribution", "dockerhub", "harbor", "ghcr", "gar", "quay", "acr")
GHCR_MAX_CHUNK = 4 * 1024 * 1024
HOP_BY_HOP = {"connection", "transfer-encoding", "content-length", "keep-alive", "host"}
IMAGE_CONFIGS = {
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
    "application/vnd.dev.cosign.simplesigning.v1+json",
}
_REPOSITORY = re.compile(r"^/v2/(.+?)/(manifests|blobs|tags|referrers)/")


@dataclass(frozen=True)
class Logged:
    method: str
    path: str
    status: int
    content_range: str | None = None
    size: int = 0

    @property
    def manifest_get(self) -> bool:
        return self.method == "GET" and "/manifests/" in self.path


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes = b""


def _error(status: int, code: str, message: str, **headers: str) -> Reply:
    body = json.dumps({"errors": [{"code": code, "message": message}]}).encode()
    return Reply(status, {"Content-Type": "application/json", **headers}, body)


class KindProxy:
    """A registry of ``kind`` in front of ``upstream``; a context manager."""

    def __init__(
        self,
        upstream: str,
        kind: str,
        *,
        quota: int = 100,
        quay_oci: bool = False,
        quay_nested: bool = False,
    ) -> None:
        assert kind in KINDS, kind
        self.upstream, self.kind = upstream, kind
        self.quota, self.quay_oci, self.quay_nested = quota, quay_oci, quay_nested
        self.pulls = 0
        self.log: list[Logged] = []
        self._lock = threading.Lock()
        self._server = LoopbackServer(self._handle)
        self.host = self._server.host

    def __enter__(self) -> KindProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.close()

    def clear(self) -> None:
        with self._lock:
            self.log.clear()

    # -- the kinds -------------------------------------------------------------------------

    def _played(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply | None:
        """What the kind answers itself; None: the registry's answer (maybe amended)."""
        play = getattr(self, f"_{self.kind}", None)
        return play(method, path, headers, body) if play else None

    def _dockerhub(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> Reply | None:
        # docker/docs content/manuals/docker-hub/usage/pulls.md: a manifest GET counts, a HEAD
        # does not; past the limit, 429 TOOMANYREQUESTS with ratelimit-remaining: 0.
        if "/referrers/" in path:
            return _error(404, "NOT_FOUND", "no referrers API")  # docker/roadmap#724
        if method == "GET" and "/manifests/" in path:
            with self._lock:
                if self.pulls >= self.quota:
                    return _error(
                        429,
                        "TOOMANYREQUESTS",
                        "You have reached your unauthenticated pull rate limit.",
                        **self._limits(0),
                    )
        return None

    def _limits(self, remaining: int) -> dict[str, str]:
        return {
            "ratelimit-limit": f"{self.quota};w=21600",
            "ratelimit-remaining": f"{remaining};w=21600",
            "docker-ratelimit-source": "127.0.0.1",
        }

    def _harbor(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply | None:
        source = parse_qs(urlsplit(path).query).get("from")
        if method != "POST" or not source:
            return None
        if "/" not in source[0]:  # goharbor/harbor#22078: a top-level `from` is a 400
            return _error(400, "BAD_REQUEST", "invalid repository name")
        # goharbor/harbor#17097: a `from` project that does not exist is a 401, not a 202.
        return _error(401, "UNAUTHORIZED", "unauthorized to access repository")

    def _ghcr(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply | None:
        if "/referrers/" in path:  # rtvkiz/minimal#7, tektoncd/chains#1691: no referrers API
            return _error(404, "NOT_FOUND", "404 page not found")
        if method == "PATCH" and len(body) > GHCR_MAX_CHUNK:
            # oras-project/rust-oci-client#35, ocx-sh/ocx#237
            return _error(
                416,
                "SIZE_INVALID",
                "chunk size exceeds the maximum permissible limit of 4.00MiB",
            )
        return None

    def _gar(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply | None:
        if path.startswith("/token"):
            token = json.dumps({"token": "gar-token", "expires_in": 3600}).encode()
            return Reply(200, {"Content-Type": "application/json"}, token)
        if headers.get("authorization") != "Bearer gar-token":
            # seqeralabs/wave#157: GAR's challenge names a realm and a scope, no service.
            scope = _scope(path, method)
            challenge = f'Bearer realm="http://{self.host}/token",scope="{scope}"'
            return _error(401, "UNAUTHORIZED", "authentication required",
                          **{"WWW-Authenticate": challenge})  # fmt: skip
        return None

    def _quay(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply | None:
        match = _REPOSITORY.match(path) or re.match(r"^/v2/(.+?)/blobs/uploads/", path)
        writes = method in ("POST", "PUT", "PATCH")
        if match and writes and not self.quay_nested and match.group(1).count("/") > 1:
            # quay/quay#814, containers/skopeo#1180: nested names need
            # FEATURE_EXTENDED_REPOSITORY_NAMES.
            return _error(400, "NAME_INVALID", "repository name is not valid")
        if method == "PUT" and "/manifests/" in path and not self.quay_oci and _artifact(body):
            # oras-project/oras#738, deckhouse/deckhouse#10672: artifacts need
            # FEATURE_GENERAL_OCI_SUPPORT / ALLOWED_OCI_ARTIFACT_TYPES.
            return _error(415, "MANIFEST_INVALID", "manifest invalid: unsupported media type")
        if "/referrers/" in path:  # quay/quay#2597: only since 2024; played as absent
            return _error(404, "NOT_FOUND", "not found")
        return None

    def _acr(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply | None:
        if "/tags/list" in path:
            # argoproj-labs/argocd-image-updater#473: a token without metadata_read gets 401 on
            # a tag list while it reads manifests (played without a challenge: anonymous).
            return _error(
                401,
                "UNAUTHORIZED",
                "authentication required, visit https://aka.ms/acr/authorization",
            )
        if "/referrers/" in path:  # sigstore/sigstore-js PR#1183: OCI-Subject, no referrers API
            return _error(404, "NOT_FOUND", "not found")
        return None

    def _amended(self, method: str, path: str, body: bytes, reply: Reply) -> Reply:
        """The registry's answer with what the kind adds to it."""
        if self.kind == "dockerhub" and "/manifests/" in path and reply.status == 200:
            with self._lock:
                if method == "GET":
                    self.pulls += 1
                reply.headers.update(self._limits(max(0, self.quota - self.pulls)))
        if self.kind == "acr" and method == "PUT" and reply.status == 201:
            subject = _subject(body)
            if subject:  # sigstore/sigstore-js PR#1183: the header, without the API
                reply.headers["OCI-Subject"] = subject
        return reply

    # -- the proxy -------------------------------------------------------------------------

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        method, path = request.command, request.path
        headers = {k.lower(): v for k, v in request.headers.items()}
        body = _read_body(request)
        reply = self._played(method, path, headers, body)
        if reply is None:
            reply = self._amended(method, path, body, self._upstream(request, body))
        with self._lock:
            self.log.append(
                Logged(method, path, reply.status, headers.get("content-range"), len(body))
            )
        request.send_response(reply.status)
        for key, value in reply.headers.items():
            request.send_header(key, value)
        request.send_header("Content-Length", str(len(reply.body)))
        request.end_headers()
        if method != "HEAD" and reply.body:
            request.wfile.write(reply.body)

    def _upstream(self, request: BaseHTTPRequestHandler, body: bytes) -> Reply:
        connection = http.client.HTTPConnection(self.upstream, timeout=60)
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() not in HOP_BY_HOP
            and not (self.kind == "gar" and k.lower() == "authorization")
        }
        headers["Host"] = request.headers.get("Host", self.host)  # Locations name the proxy
        connection.request(request.command, request.path, body=body or None, headers=headers)
        response = connection.getresponse()
        data = response.read()
        passed = {k: v for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP}
        connection.close()
        return Reply(response.status, passed, data)

    # -- what tests count ------------------------------------------------------------------

    def manifest_gets(self) -> list[Logged]:
        return [r for r in self.log if r.manifest_get]

    def statuses(self, status: int) -> list[Logged]:
        return [r for r in self.log if r.status == status]


def _read_body(request: BaseHTTPRequestHandler) -> bytes:
    if request.headers.get("Transfer-Encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int(request.rfile.readline().strip() or b"0", 16)
            if size == 0:
                request.rfile.readline()
                break
            chunks.append(request.rfile.read(size))
            request.rfile.readline()
        return b"".join(chunks)
    length = int(request.headers.get("Content-Length") or 0)
    return request.rfile.read(length) if length else b""


def _scope(path: str, method: str) -> str:
    match = _REPOSITORY.match(path) or re.match(r"^/v2/(.+?)/blobs/uploads/", path)
    name = match.group(1) if match else ""
    return f"repository:{name}:pull" + (",push" if method in ("POST", "PUT", "PATCH") else "")


def _document(body: bytes) -> dict[str, object]:
    try:
        document = json.loads(body)
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}


def _artifact(body: bytes) -> bool:
    """An OCI artifact: an artifactType, or a config that is no image's (nor cosign's)."""
    document = _document(body)
    config = document.get("config")
    config_type = config.get("mediaType") if isinstance(config, dict) else None
    return bool(document.get("artifactType")) or (
        config_type is not None and config_type not in IMAGE_CONFIGS
    )


def _subject(body: bytes) -> str | None:
    subject = _document(body).get("subject")
    digest = subject.get("digest") if isinstance(subject, dict) else None
    return digest if isinstance(digest, str) else None
