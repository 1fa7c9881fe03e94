"""Deadlines for registry answers: every answer ends in time, whatever the server does.

The one adapter module: what requests and urllib3 cannot do through their public API.
Their timeouts bound each socket read, not an answer: a server that sends a byte every few
seconds never trips them and holds a run forever, and neither library offers a total
deadline on a response, nor a hook on the reads of one. The only place every read of a
response passes (status line, headers, body, through http.client) is the reader that
``socket.makefile`` gives; so the connections of :class:`DeadlineAdapter` (urllib3's, set as
its documented ``ConnectionCls``) hand http.client a socket whose reader waits at most for
what is left of that response's time. Two kinds of time, both of ``seconds`` (``--timeout``):

- a deadline, for answers read whole (manifests, tag lists, tokens, errors): the whole
  response within ``seconds`` of the request (of the response, for a streamed upload, whose
  body takes as long as its download);
- a throughput floor, for blobs, whose size no fixed deadline could follow: every window of
  ``seconds`` must bring at least ``floor * seconds`` bytes.

The clock for the requests of one call is set with :func:`answers_within`; every response
read through the adapter's connections gets the clock that was set when the response began.
A response that runs out of time raises :class:`DeadlinePassed` (a TimeoutError, so urllib3
and requests report it as the read timeout it is, and the transport retries it like one).
"""

from __future__ import annotations

import contextlib
import io
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import requests.adapters
import urllib3.poolmanager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

# Blobs must come at least this fast (bytes per second, over every window of --timeout s).
BLOB_FLOOR = 32 * 1024


class DeadlinePassed(TimeoutError):
    """An answer did not arrive within its time; the message says whose and how long."""


@dataclass(frozen=True)
class _Spec:
    registry: str
    seconds: float
    floor: float | None
    # For a deadline: when it started (None: when each response begins).
    started: float | None


_current = threading.local()


@contextlib.contextmanager
def answers_within(
    registry: str, seconds: float, *, floor: float | None = None, from_response: bool = False
) -> Iterator[None]:
    """Responses begun in this block (in this thread) must end within ``seconds`` — or, with
    ``floor``, bring ``floor`` bytes per second over every window of ``seconds``.

    The deadline counts from now (redirects share it), or with ``from_response`` from when
    each response begins (after a streamed request body has gone out).
    """
    started = None if from_response or floor is not None else time.monotonic()
    previous = getattr(_current, "spec", None)
    _current.spec = _Spec(registry, seconds, floor, started)
    try:
        yield
    finally:
        _current.spec = previous


def deadline_message(error: BaseException) -> str | None:
    """The words of a DeadlinePassed anywhere in ``error``'s chain (urllib3 and requests wrap
    it twice), or None when the deadline is not what ended the answer."""
    seen: set[int] = set()
    pending: list[BaseException] = [error]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, DeadlinePassed):
            return str(current)
        pending += [a for a in current.args if isinstance(a, BaseException)]
        pending += [e for e in (current.__cause__, current.__context__) if e is not None]
    return None


class _Clock:
    """The time one response has left."""

    def __init__(self, spec: _Spec) -> None:
        self._spec = spec
        now = time.monotonic()
        self._window_start = spec.started if spec.started is not None else now
        self._window_bytes = 0
        self._quota = spec.floor * spec.seconds if spec.floor is not None else None

    def remaining(self) -> float:
        return self._window_start + self._spec.seconds - time.monotonic()

    def received(self, count: int) -> None:
        if self._quota is None:
            return
        self._window_bytes += count
        if self._window_bytes >= self._quota:
            self._window_start, self._window_bytes = time.monotonic(), 0

    def passed(self) -> DeadlinePassed:
        spec = self._spec
        if self._quota is None:
            return DeadlinePassed(f"no answer from {spec.registry} within {spec.seconds:g} s")
        return DeadlinePassed(
            f"{spec.registry} sent {self._window_bytes} bytes in {spec.seconds:g} s, slower "
            f"than the {_rate(spec.floor or 0)} a transfer must keep up"
        )


class _TimedReader(io.RawIOBase):
    """A socket reader that never waits beyond its clock."""

    def __init__(self, raw: io.RawIOBase, sock: socket.socket, clock: _Clock) -> None:
        super().__init__()
        self._raw = raw
        self._sock = sock
        self._clock = clock

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._raw.fileno()

    def readinto(self, buffer: Any) -> int | None:
        remaining = self._clock.remaining()
        if remaining <= 0:
            raise self._clock.passed()
        previous = self._sock.gettimeout()
        self._sock.settimeout(remaining if previous is None else min(previous, remaining))
        try:
            count = self._raw.readinto(buffer)
        except TimeoutError:
            if self._clock.remaining() <= 0:
                raise self._clock.passed() from None
            raise
        finally:
            with contextlib.suppress(OSError):  # closed meanwhile: nothing to restore
                self._sock.settimeout(previous)
        self._clock.received(count or 0)
        return count

    def close(self) -> None:
        self._raw.close()
        super().close()


class _TimedSocket:
    """A connection's socket whose readers (``makefile``: http.client reads a response's
    status line, headers and body through one) keep to the clock set when the response
    began, if one was. Everything else is the socket's own."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def makefile(self, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        makefile: Callable[..., Any] = self._sock.makefile
        reader = makefile(mode, *args, **kwargs)
        spec: _Spec | None = getattr(_current, "spec", None)
        if spec is None or mode != "rb" or not isinstance(reader, io.BufferedReader):
            return reader
        raw = reader.detach()  # the socket's reader, handed over without closing it
        assert isinstance(raw, io.RawIOBase)
        return io.BufferedReader(_TimedReader(raw, self._sock, _Clock(spec)))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class _HTTPConnection(HTTPConnection):
    def connect(self) -> None:
        super().connect()
        self.sock = cast(socket.socket, _TimedSocket(self.sock))


class _HTTPSConnection(HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        self.sock = cast(socket.socket, _TimedSocket(self.sock))


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOLS: dict[str, type[HTTPConnectionPool]] = {"http": _HTTPPool, "https": _HTTPSPool}


class DeadlineAdapter(requests.adapters.HTTPAdapter):
    """requests' adapter, with connections whose responses keep to :func:`answers_within`
    (also through an HTTP(S) proxy; SOCKS proxies keep requests' per-read timeouts only)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if manager.pool_classes_by_scheme is urllib3.poolmanager.pool_classes_by_scheme:
            manager.pool_classes_by_scheme = _POOLS
        return manager


def _rate(bytes_per_second: float) -> str:
    return f"{bytes_per_second / 1024:g} KiB/s"
