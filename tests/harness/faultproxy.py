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
    """``kind``: status | reset | truncate | corrupt | delay | cut_request. Applies to the
    first ``count`` requests whose method matches and whose path matches ``path`` (a regex).

    ``throttle`` passes bodies at ``rate`` bytes a second (a slow link: a test acts midway).
    ``reset``/``truncate`` end the answer's body after ``after_bytes``. ``cut_request`` resets
    a connection once ``after_bytes`` of request bodies have crossed it (counted over the
    requests it carried, like a relay that drops every connection after N bytes). With
    ``buffered`` (the default) the proxy stores a request's body before it sends it on, as
    nginx does by default (``proxy_request_buffering``) and load balancers do: the registry
    sees nothing of a request that was cut. Without, the registry gets the body cut short.
    With a large ``count`` a transfer that resumes is cut every ``after_bytes``."""

    kind: str
    path: str
    count: int
    method: str | None = None
    status: int = 503
    retry_after: str | None = None
    seconds: float = 0.0
    after_bytes: int = 0
    # ``throttle``: bodies (the request's, the answer's) pass at this many bytes a second.
    rate: float = 0.0
    buffered: bool = True
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
    # Bytes of the request's body that passed the proxy (to the registry, or until a cut).
    received: int = 0
    # Bytes of the answer's body the proxy sent on to the client.
    sent: int = 0


class FaultProxy:
    def __init__(self, upstream: str, buffer_requests: int = 0) -> None:
        """``buffer_requests``: request bodies up to this size are stored whole before they
        are sent on (as nginx's ``proxy_request_buffering`` does in front of a registry), and
        dropped if the client is gone by then: the registry sees no body cut short."""
        self.upstream = upstream
        self.buffer_requests = buffer_requests
        # False: the Range header is taken out of every request (a registry, or a blob store
        # behind its redirect, that does not honour ranges answers 200 with the whole blob).
        self.ranges = True
        self.faults: list[Fault] = []
        self.requests: list[Recorded] = []
        # (method, path) of every request as it arrives, before a fault or the upstream answers.
        self.received: list[tuple[str, str]] = []
        # TCP connections accepted: a client that reuses its connections opens few.
        self.connections = 0
        # Body bytes that crossed the proxy: requests' (towards the registry), answers'.
        self.bytes_received = 0
        self.bytes_sent = 0
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

    def _record(
        self, method: str, path: str, status: int, received: int = 0, sent: int = 0
    ) -> None:
        with self._lock:
            self.requests.append(Recorded(method, path, status, received, sent))

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        method, path = request.command, request.path
        with self._arrival:
            self.received.append((method, path))
            self._arrival.notify_all()
        fault = self._take_fault(method, path)
        # Recorded as it came; passed on as route() says.
        passed_on = self.route(request, method, path)
        if passed_on is None:
            return
        if fault and fault.kind == "delay":
            time.sleep(fault.seconds)
        if fault and fault.kind == "status":
            body = self._read_request_body(request)
            with self._lock:
                self.bytes_received += len(body or b"")
            self._record(method, path, fault.status, len(body or b""))
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
        try:
            received = self._forward_request(request, upstream, fault, passed_on)
            if received is None:  # cut, or the client hung up midway
                upstream.close()
                return
            response = upstream.getresponse()
        except OSError:
            request.send_error(502)
            return
        self._record(method, path, response.status, received)
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

    def route(self, request: BaseHTTPRequestHandler, method: str, path: str) -> str | None:
        """What a proxy that plays a registry (tests/harness/ecr.py) answers itself: None when
        it has answered (and recorded) the request, its body read (:meth:`drain`), else the
        path to pass on upstream."""
        return path

    def drain(self, request: BaseHTTPRequestHandler) -> bytes | None:
        """The request's body, read so that the connection can carry the next request."""
        return self._read_request_body(request)

    def _forward_request(
        self,
        request: BaseHTTPRequestHandler,
        upstream: http.client.HTTPConnection,
        fault: Fault | None,
        path: str,
    ) -> int | None:
        """Send the request on, its body as it arrives; the body's length, or None when the
        connection was cut (a ``cut_request`` fault) or the client stopped sending."""
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        if not self.ranges:
            headers = {k: v for k, v in headers.items() if k.lower() != "range"}
        chunked = request.headers.get("Transfer-Encoding", "").lower() == "chunked"
        whole = self._read_request_body(request) if chunked else None
        if whole is not None:
            headers["Content-Length"] = str(len(whole))
        upstream.putrequest(request.command, path, skip_host=True, skip_accept_encoding=True)
        for key, value in headers.items():
            upstream.putheader(key, value)
        upstream.endheaders()
        if whole is not None:
            upstream.send(whole)
            with self._lock:
                self.bytes_received += len(whole)
            return len(whole)
        length = int(request.headers.get("Content-Length") or 0)
        cutting = fault is not None and fault.kind == "cut_request"
        buffering = (
            fault is not None and fault.kind in ("cut_request", "throttle") and fault.buffered
        ) or 0 < length <= self.buffer_requests
        # Bytes the connection may still carry before it is cut.
        allowance = fault.after_bytes - _carried(request) if fault and cutting else None
        held: list[bytes] = []
        received = 0
        while received < length:
            piece = request.rfile.read(min(64 * 1024, length - received))
            if not piece:
                self._record(request.command, request.path, 0, received)
                return None
            if allowance is not None and received + len(piece) > allowance:
                passed = max(0, allowance - received)
                if not buffering:
                    upstream.send(piece[:passed])
                with self._lock:
                    self.bytes_received += passed
                self._record(request.command, request.path, 0, received + passed)
                _reset(request)
                return None
            if buffering:
                held.append(piece)
            else:
                upstream.send(piece)
            received += len(piece)
            _carry(request, len(piece))
            with self._lock:
                self.bytes_received += len(piece)
            _throttle(fault, len(piece))
        if buffering and _hung_up(request):
            # Like nginx (proxy_ignore_client_abort off): a client gone is not answered for.
            self._record(request.command, request.path, 0, received)
            return None
        for piece in held:
            upstream.send(piece)
        return received

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
            _throttle(fault, len(chunk))
            if (
                fault
                and fault.kind in ("reset", "truncate")
                and sent + len(chunk) > fault.after_bytes
            ):
                request.wfile.write(chunk[: max(0, fault.after_bytes - sent)])
                request.wfile.flush()
                with self._lock:
                    self.bytes_sent += max(0, fault.after_bytes - sent)
                if fault.kind == "reset":
                    _reset(request)
                else:
                    request.close_connection = True
                    request.connection.close()
                return
            if fault and fault.kind == "corrupt" and sent == 0:
                chunk = bytes([chunk[0] ^ 0xFF]) + chunk[1:]
            request.wfile.write(chunk)
            sent += len(chunk)
            with self._lock:
                self.bytes_sent += len(chunk)


def _reset(request: BaseHTTPRequestHandler) -> None:
    """Close the client's connection with a reset: SO_LINGER 0 makes close() send RST."""
    request.connection.setsockopt(
        socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
    )
    request.close_connection = True
    request.connection.close()


def _throttle(fault: Fault | None, count: int) -> None:
    if fault is not None and fault.kind == "throttle" and fault.rate > 0:
        time.sleep(count / fault.rate)


def _carried(request: BaseHTTPRequestHandler) -> int:
    """Request body bytes the connection of ``request`` has carried."""
    return int(getattr(request, "carried", 0))


def _carry(request: BaseHTTPRequestHandler, count: int) -> None:
    request.carried = _carried(request) + count  # type: ignore[attr-defined]


def _hung_up(request: BaseHTTPRequestHandler) -> bool:
    """Whether the client of ``request`` closed its connection (EOF or reset waiting)."""
    connection = request.connection
    try:
        connection.setblocking(False)
        try:
            return connection.recv(1, socket.MSG_PEEK) == b""
        finally:
            connection.setblocking(True)
    except BlockingIOError:
        return False
    except OSError:
        return True
