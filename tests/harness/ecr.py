"""Amazon ECR played on loopback: a proxy in front of the real distribution registry that
answers as ECR does where ECR differs, and passes everything else through.

The AWS side is moto's server (:class:`MotoServer`, loopback only): the proxy asks it which
repositories exist, whether their tags are immutable, and which login token is valid. What
the proxy plays, each with its public source (``/work/shared/registries.md``):

- a login is HTTP Basic ``AWS:<token>``, the token from ``GetAuthorizationToken``; anything
  else gets ``401`` with ECR's Basic challenge (AWS docs, "Private registry authentication":
  ``docker login --username AWS --password $(aws ecr get-login-password)``; registries.md
  item 9: tokens expire after 12 h, dregsy's README);
- a repository that moto does not list does not exist: every request on it gets
  ``404 NAME_UNKNOWN`` "The repository with name 'X' does not exist in the registry with id
  'Y'" — ECR creates no repository on push (registries.md item 1: plexsystems/sinker#55,
  regclient/regclient#869, aws/containers-roadmap#853);
- in a repository whose ``imageTagMutability`` is ``IMMUTABLE``, a PUT to a tag that exists
  gets ``400 TAG_INVALID``, even with the digest the tag holds (registries.md item 2:
  osscontainertools/kaniko#204 for the words, moby/buildkit#3776 and
  aws/containers-roadmap#2380 for the identical re-push);
- a cross-repository mount is off (``BLOB_MOUNTING`` is opt-in): ``POST …?mount=&from=``
  opens a plain upload session, ``202`` (registries.md item 3: AWS docs, blob-mounting).
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import re
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from tests.harness.faultproxy import FaultProxy, Recorded

# moto's account: the registry id of every repository it holds.
ACCOUNT = "123456789012"
REGION = "us-east-1"
_REPOSITORY_PATH = re.compile(r"^/v2/(?P<name>.+?)/(?P<verb>manifests|blobs|tags|referrers)/")
_TAG_PUT = re.compile(r"^/v2/(?P<name>.+?)/manifests/(?P<tag>[A-Za-z0-9_][A-Za-z0-9._-]{0,127})$")


class MotoServer:
    """moto's AWS API server on 127.0.0.1 and a free port, in a thread."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per AWS call
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "ecr",
            region_name=REGION,
            endpoint_url=self.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def close(self) -> None:
        self._server.stop()


class EcrProxy(FaultProxy):
    """The ECR-playing proxy in front of ``upstream`` (a distribution registry), asking
    ``moto`` (a boto3 ECR client on moto's server) what ECR knows."""

    def __init__(self, upstream: str, moto: Any) -> None:
        self.moto = moto
        self._moto_lock = threading.Lock()
        self._login: str | None = None
        super().__init__(upstream)

    # -- what ECR knows ---------------------------------------------------------------------

    def valid_login(self) -> str:
        """The Authorization header ECR takes now: Basic of GetAuthorizationToken's token
        (moto's is the same for an account every time: asked once)."""
        with self._moto_lock:
            if self._login is None:
                data = self.moto.get_authorization_token()["authorizationData"][0]
                self._login = f"Basic {data['authorizationToken']}"
            return self._login

    def repository(self, name: str) -> dict[str, Any] | None:
        with self._moto_lock:
            try:
                found = self.moto.describe_repositories(repositoryNames=[name])
            except self.moto.exceptions.RepositoryNotFoundException:
                return None
        repositories: list[dict[str, Any]] = found["repositories"]
        return repositories[0]

    def repositories(self) -> list[str]:
        with self._moto_lock:
            found = self.moto.describe_repositories()["repositories"]
        return sorted(r["repositoryName"] for r in found)

    # -- the requests -----------------------------------------------------------------------

    def manifest_gets(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "GET" and "/manifests/" in r.path]

    def route(self, request: BaseHTTPRequestHandler, method: str, path: str) -> str | None:
        if request.headers.get("Authorization") != self.valid_login():
            # AWS docs, "Private registry authentication": Basic AWS:<token>, nothing else.
            challenge = f'Basic realm="https://{self.host}/",service="ecr.amazonaws.com"'
            return self._answer(request, method, path, 401, "DENIED", "Not Authorized", challenge)
        match = _REPOSITORY_PATH.match(urlsplit(path).path)
        if match is None:
            return path
        name = match["name"]
        repository = self.repository(name)
        if repository is None:
            # registries.md item 1 (plexsystems/sinker#55): no repository is made on push.
            message = (
                f"The repository with name '{name}' does not exist in the registry with id "
                f"'{ACCOUNT}'"
            )
            return self._answer(request, method, path, 404, "NAME_UNKNOWN", message)
        tag = _TAG_PUT.match(urlsplit(path).path) if method == "PUT" else None
        immutable = repository.get("imageTagMutability") == "IMMUTABLE"
        if tag and not tag["tag"].startswith("sha256:") and immutable and self._tag_exists(path):
            # registries.md item 2 (osscontainertools/kaniko#204; moby/buildkit#3776: even
            # with the same digest).
            message = (
                f"The image tag '{tag['tag']}' already exists in the '{name}' repository and "
                "cannot be overwritten because the tag is immutable."
            )
            return self._answer(request, method, path, 400, "TAG_INVALID", message)
        if method == "GET" and match["verb"] == "tags" and not self._upstream_has(name):
            # A repository ECR lists exists, pushed to or not (registries.md item 1: it is made
            # by CreateRepository, never by a push); the registry behind learns of it on the
            # first push, so until then ECR's answer is played: no tags.
            return self._tags(request, method, path, name)
        if method == "POST" and match["verb"] == "blobs":
            # registries.md item 3 (AWS docs, blob-mounting): mounts are opt-in; without
            # BLOB_MOUNTING a mount request opens an upload session, 202.
            return _without_mount(path)
        return path

    def _upstream_has(self, name: str) -> bool:
        upstream = http.client.HTTPConnection(self.upstream, timeout=30)
        try:
            upstream.request("GET", f"/v2/{name}/tags/list?n=1")
            return upstream.getresponse().status != 404
        finally:
            upstream.close()

    def _tags(self, request: BaseHTTPRequestHandler, method: str, path: str, name: str) -> None:
        self._record(method, path, 200)
        payload = json.dumps({"name": name, "tags": []}).encode()
        request.send_response(200)
        request.send_header("Content-Type", "application/json; charset=utf-8")
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        request.wfile.write(payload)

    def _tag_exists(self, path: str) -> bool:
        upstream = http.client.HTTPConnection(self.upstream, timeout=30)
        accept = ", ".join(
            [
                "application/vnd.oci.image.index.v1+json",
                "application/vnd.oci.image.manifest.v1+json",
                "application/vnd.docker.distribution.manifest.list.v2+json",
                "application/vnd.docker.distribution.manifest.v2+json",
            ]
        )
        try:
            upstream.request("HEAD", urlsplit(path).path, headers={"Accept": accept})
            return upstream.getresponse().status == 200
        finally:
            upstream.close()

    def _answer(
        self,
        request: BaseHTTPRequestHandler,
        method: str,
        path: str,
        status: int,
        code: str,
        message: str,
        challenge: str | None = None,
    ) -> None:
        body = self.drain(request)
        self._record(method, path, status, len(body or b""))
        payload = json.dumps({"errors": [{"code": code, "message": message}]}).encode()
        request.send_response(status)
        if challenge:
            request.send_header("WWW-Authenticate", challenge)
        request.send_header("Content-Type", "application/json; charset=utf-8")
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        if method != "HEAD":
            request.wfile.write(payload)
        return None


def _without_mount(path: str) -> str:
    parts = urlsplit(path)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("mount", "from")]
    return parts.path + (f"?{urlencode(query)}" if query else "")


def decoded_login(header: str) -> str:
    """``user:password`` of a Basic Authorization header."""
    return base64.b64decode(header.removeprefix("Basic ")).decode()
