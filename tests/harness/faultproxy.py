"""A fault-injecting HTTP proxy that sits in front of a real registry on loopback.

Tests use it for what a healthy local registry never does: 5xx bursts, 429 with Retry-After,
connections reset in the middle of a blob, truncated or corrupted bodies, slow answers. It also
records every request, so a test can assert that a command sent no write, and lets a test wait
until a request has arrived (before any delay fault holds it), to act while it is in flight.
"""

from __future__ import annotations

import http.client
import re
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
}


@dataclass
class Fault:
    """``kind``: status | reset | truncate | corrupt | delay. Applies to the first ``count``
    requests whose method matches and whose path matches ``path`` (a regex)."""

    kind: str
    path: str
    count: int
    method: str | None = None
    status: int = 503
    retry_after: str | None = None
    seconds: float = 0.0
    after_bytes: int = 0
    hits: int = field(default=0)

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method != method:
            return False
        return self.hits < self.count and re.search(self.path, path) is not None


# What a client hanging up or an injected reset raises in a handler: not worth a traceback.
EXPECTED_CONNECTION_ERRORS = (
    ConnectionResetError,
    BrokenPipeError,
    ConnectionAbortedError,
    socket.timeout,
)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> None:
        """Print a traceback only for what a test did not provoke."""
        if isinstance(sys.exc_info()[1], EXPECTED_CONNECTION_ERRORS):
            return
        super().handle_error(request, client_address)


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    status: int


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.faults: list[Fault] = []
        self.requests: list[Recorded] = []
        # (method, path) of every request as it arrives, before a fault or the upstream answers.
        self.received: list[tuple[str, str]] = []
        # TCP connections accepted: a client that reuses its connections opens few.
        self.connections = 0
        self._lock = threading.Lock()
        self._arrival = threading.Condition(self._lock)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def setup(self) -> None:  # once per connection, before its first request
                super().setup()
                with proxy._lock:
                    proxy.connections += 1

            def do_GET(self) -> None:
                proxy._handle(self)

            do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()

    def wait_for_request(self, path: str, method: str | None = None, timeout: float = 30) -> bool:
        """Wait until a request whose path matches ``path`` (a regex) and whose method is
        ``method`` (any, if None) has arrived; False if none did within ``timeout`` seconds."""

        def arrived() -> bool:
            return any(
                (method is None or m == method) and re.search(path, p) for m, p in self.received
            )

        with self._arrival:
            return self._arrival.wait_for(arrived, timeout)

    def writes(self) -> list[Recorded]:
        return [r for r in self.requests if r.method in ("PUT", "POST", "PATCH", "DELETE")]

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.matches(method, path):
                    fault.hits += 1
                    return fault
        return None

    def _record(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self.requests.append(Recorded(method, path, status))

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        method, path = request.command, request.path
        with self._arrival:
            self.received.append((method, path))
            self._arrival.notify_all()
        fault = self._take_fault(method, path)
        body = self._read_request_body(request)
        # Recorded as it came; passed on as route() says.
        passed_on = self.route(request, method, path, body)
        if passed_on is None:
            return
        if fault and fault.kind == "delay":
            time.sleep(fault.seconds)
        if fault and fault.kind == "status":
            self._record(method, path, fault.status)
            request.send_response(fault.status)
            if fault.retry_after is not None:
                request.send_header("Retry-After", fault.retry_after)
            payload = b'{"errors":[{"code":"UNAVAILABLE","message":"injected fault"}]}'
            request.send_header("Content-Type", "application/json")
            request.send_header("Content-Length", str(len(payload)))
            request.end_headers()
            if method != "HEAD":
                request.wfile.write(payload)
            return
        upstream = http.client.HTTPConnection(self.upstream, timeout=120)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        try:
            upstream.request(method, passed_on, body=body, headers=headers)
            response = upstream.getresponse()
        except OSError:
            request.send_error(502)
            return
        self._record(method, path, response.status)
        request.send_response(response.status, response.reason)
        length = response.getheader("Content-Length")
        for key, value in response.getheaders():
            if key.lower() not in HOP_BY_HOP:
                request.send_header(key, value)
        if length is None and method != "HEAD":
            data = response.read()
            request.send_header("Content-Length", str(len(data)))
            request.end_headers()
            request.wfile.write(data)
            upstream.close()
            return
        request.end_headers()
        if method == "HEAD":
            upstream.close()
            return
        self._stream_body(request, response, fault)
        upstream.close()

    def route(
        self, request: BaseHTTPRequestHandler, method: str, path: str, body: bytes | None
    ) -> str | None:
        """What a proxy that plays a registry (tests/harness/ecr.py) answers itself: None when
        it has answered (and recorded) the request, else the path to pass on upstream."""
        return path

    def _read_request_body(self, request: BaseHTTPRequestHandler) -> bytes | None:
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
        return request.rfile.read(length) if length else None

    def _stream_body(
        self,
        request: BaseHTTPRequestHandler,
        response: http.client.HTTPResponse,
        fault: Fault | None,
    ) -> None:
        sent = 0
        while True:
            chunk = response.read(64 * 1024)
            if not chunk:
                break
            if (
                fault
                and fault.kind in ("reset", "truncate")
                and sent + len(chunk) > fault.after_bytes
            ):
                request.wfile.write(chunk[: max(0, fault.after_bytes - sent)])
                request.wfile.flush()
                if fault.kind == "reset":
                    # SO_LINGER 0 makes close() send RST instead of FIN: a real reset.
                    request.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                    )
                request.close_connection = True
                request.connection.close()
                return
            if fault and fault.kind == "corrupt" and sent == 0:
                chunk = bytes([chunk[0] ^ 0xFF]) + chunk[1:]
            request.wfile.write(chunk)
            sent += len(chunk)
