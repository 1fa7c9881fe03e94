"""A hostile fake registry on loopback: answers a real registry never gives.

The distribution registry validates what it stores and serves it faithfully, so it cannot send
an oversized or malformed manifest, a body that does not hash to its digest, a mislabelled
Content-Type, an upload Location on another host, an endless redirect, a tag list, error body
or token answer of gigabytes, or an answer that arrives a byte a second. :class:`HostileRegistry`
does: a small HTTP server whose routes answer as a test says, and pass everything else through
to a real registry (or answer 404). Big bodies are generated as they are sent
(:func:`lazy_body`), never held; an :class:`Answer` with ``drip`` sends every byte of the
response, status line included, one at a time.

Tests that use it say so: it stands in only for what the real registry cannot do.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from tests.harness.loopback import LoopbackServer

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
MIB = 1024 * 1024
GIB = 1024 * MIB


def lazy_body(prefix: bytes, filler: bytes, size: int, suffix: bytes = b"") -> Iterator[bytes]:
    """``prefix``, then ``filler`` repeated up to ``size`` bytes in all, then ``suffix``: made
    as it is sent (a 2 GiB body costs the server one chunk of memory), stopped when the reader
    hangs up."""
    yield prefix
    chunk = filler * max(1, MIB // max(1, len(filler)))
    left = size - len(prefix) - len(suffix)
    while left > 0:
        piece = chunk[:left]
        left -= len(piece)
        yield piece
    yield suffix


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# -- the fake ------------------------------------------------------------------------------


@dataclass
class Answer:
    """What the fake sends: ``body`` is bytes, or an iterable of chunks sent with chunked
    encoding (no Content-Length), or None for no body at all."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | Iterable[bytes] | None = b""
    # Seconds between bytes: the whole response (status line, headers, body) byte by byte.
    drip: float = 0.0


Route = Callable[[str, str], Answer | None]


class HostileRegistry:
    """A fake registry on loopback. ``routes`` are tried in order with (method, path); the
    first answer wins. Without one: a pass-through to ``upstream`` (a real registry), or 404."""

    def __init__(self, upstream: str | None = None) -> None:
        self.upstream = upstream
        self.routes: list[Route] = []
        self.requests: list[tuple[str, str]] = []
        self._server = LoopbackServer(self._handle)
        self.host = self._server.host

    def __enter__(self) -> HostileRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.close()

    def route(self, method: str, pattern: str, answer: Answer | Callable[[str], Answer]) -> None:
        def matched(m: str, path: str) -> Answer | None:
            if m != method or not re.search(pattern, path):
                return None
            return answer(path) if callable(answer) else answer

        self.routes.insert(0, matched)

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        method, path = request.command, request.path
        self.requests.append((method, path))
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else None
        for route in self.routes:
            answer = route(method, path)
            if answer is not None:
                return self._send(request, answer)
        if self.upstream is None:
            return self._send(request, Answer(404, {"Content-Type": "text/plain"}, b"not here"))
        upstream = http.client.HTTPConnection(self.upstream, timeout=60)
        # Host passes unchanged: the registry builds upload Locations from it.
        headers = {k: v for k, v in request.headers.items() if k.lower() != "connection"}
        upstream.request(method, path, body=body, headers=headers)
        response = upstream.getresponse()
        data = response.read()
        passed = {
            k: v
            for k, v in response.getheaders()
            if k.lower() not in ("connection", "transfer-encoding", "content-length")
        }
        upstream.close()
        self._send(request, Answer(response.status, passed, data))

    @staticmethod
    def _send(request: BaseHTTPRequestHandler, answer: Answer) -> None:
        if answer.drip:
            return HostileRegistry._drip(request, answer)
        request.send_response(answer.status)
        for key, value in answer.headers.items():
            request.send_header(key, value)
        body = answer.body
        if body is None or isinstance(body, bytes):
            if "Content-Length" not in answer.headers:
                request.send_header("Content-Length", str(len(body or b"")))
            request.end_headers()
            if body and request.command != "HEAD":
                request.wfile.write(body)
            return
        request.send_header("Transfer-Encoding", "chunked")
        request.end_headers()
        if request.command == "HEAD":
            return
        try:
            for chunk in body:
                request.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            request.wfile.write(b"0\r\n\r\n")
        except (ConnectionError, TimeoutError):
            request.close_connection = True

    @staticmethod
    def _drip(request: BaseHTTPRequestHandler, answer: Answer) -> None:
        body = answer.body if isinstance(answer.body, bytes) else b"".join(answer.body or [])
        head = [f"HTTP/1.1 {answer.status} Slow", f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in answer.headers.items()]
        data = ("\r\n".join(head) + "\r\n\r\n").encode() + body
        request.close_connection = True
        try:
            for byte in data:
                request.wfile.write(bytes([byte]))
                request.wfile.flush()
                time.sleep(answer.drip)
        except (ConnectionError, TimeoutError):
            return


@dataclass
class FakeImage:
    """One generated single-platform OCI image (linux/amd64) the fake source serves."""

    repository: str = "team/app"
    tag: str = "1.0"
    config: bytes = b""
    layer: bytes = b""
    manifest: bytes = b""

    @classmethod
    def make(cls, config: bytes | None = None, repository: str = "team/app") -> FakeImage:
        """The image; ``config`` replaces its config blob's bytes (a broken one, say)."""
        if config is None:
            config = json.dumps(
                {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}}
            ).encode()
        layer = bytes(range(256)) * 64
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
                "layers": [{"mediaType": OCI_LAYER, "digest": sha256(layer), "size": len(layer)}],
            },
            indent=2,
        ).encode()
        return cls(repository=repository, config=config, layer=layer, manifest=manifest)

    @property
    def digest(self) -> str:
        return sha256(self.manifest)

    def serve(
        self,
        fake: HostileRegistry,
        manifest: bytes | None = None,
        content_type: str = OCI_MANIFEST,
    ) -> str:
        """Serve the image (or ``manifest`` bytes in its place) by tag and digest; returns the
        digest the tag resolves to."""
        raw = self.manifest if manifest is None else manifest
        digest = sha256(raw)
        headers = {
            "Content-Type": content_type,
            "Docker-Content-Digest": digest,
            "Content-Length": str(len(raw)),
        }
        fake.route("GET", r"^/v2/$", Answer(200, {"Content-Type": "application/json"}, b"{}"))
        for method in ("HEAD", "GET"):
            for reference in (self.tag, digest):
                pattern = rf"^/v2/{self.repository}/manifests/{re.escape(reference)}$"
                fake.route(method, pattern, Answer(200, headers, raw))
        for blob in (self.config, self.layer):
            pattern = rf"^/v2/{self.repository}/blobs/{sha256(blob)}$"
            blob_headers = {"Content-Type": "application/octet-stream"}
            fake.route("GET", pattern, Answer(200, blob_headers, blob))
            fake.route("HEAD", pattern, Answer(200, blob_headers, None))
        return digest
