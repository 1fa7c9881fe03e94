"""A TCP relay that puts a registry on a network: a round trip away, behind a capped link.

On loopback a request comes back in a fraction of a millisecond and bytes move at GB/s, so a
tool that waits for each answer before sending the next (skopeo) loses little, and the
benchmark measures CPU. Real registries are a round trip away, behind a link of limited
bandwidth (a CI runner's uplink), and what a tool does with that wait and that bandwidth is
what decides its time. The relay delivers every chunk, in each direction, half the round trip
after it was sent; with a ``rate``, each direction of the link is one budget of bytes per
second shared by every connection through it, as a runner's uplink is. Bytes are relayed, not
parsed, so any client and any protocol pass unchanged.

The loopback interface of the benchmark machine has no netem (``tc qdisc ... netem``), hence
this relay in the benchmark's own process, on an asyncio loop of its own thread. It shares the
CPUs with the tools it measures, so it works in large pieces and keeps no timers of its own:
a piece's place on the link is one sum (see :class:`Link`), the relaying is protocol callbacks
and timers on the loop, and ``cpu_seconds`` says what the relay itself cost.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

# The most the relay reads, and puts on the link, at once. Connections take turns on the link
# piece by piece, so a small request waits behind at most one piece of each busy connection
# (6 streams x 128 KiB at 40 MB/s: 20 ms), as on a link with fair queueing and short buffers.
PIECE = 128 * 1024
# An idle link lets this much through at once: headers and small bodies are not paced.
BURST = 64 * 1024


class Link:
    """One direction of a link: ``rate`` bytes per second, shared in turns by every connection.

    A token bucket kept as one number, the time the link is next free: a piece of ``n`` bytes
    starts when the link is free (an idle link has saved up to ``BURST`` bytes of credit) and
    is on the wire ``n / rate`` seconds later. Each connection puts its next piece on the link
    only when its previous one is through, so busy connections share the rate fairly and a
    sender that outruns the link waits, as TCP's flow control would make it wait.
    """

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self._free = 0.0
        self.sent = 0

    def put(self, size: int, now: float) -> float:
        """Put ``size`` bytes on the link at ``now``; when they are through."""
        self.sent += size
        if not self.rate:
            return now
        self._free = max(self._free, now - BURST / self.rate) + size / self.rate
        return max(self._free, now)


class LatencyProxy:
    """Listens on 127.0.0.1 (a free port); ``host`` is where clients connect instead.

    ``round_trip`` in seconds; ``rate`` in bytes per second for each direction (None: as fast
    as loopback). ``cut``: gives each new connection the bytes (both directions together) it
    may carry before the relay resets it, as a link that drops connections does (None: never).
    ``cuts`` counts the connections cut.
    """

    def __init__(
        self,
        upstream: str,
        round_trip: float,
        rate: float | None = None,
        cut: Callable[[], int] | None = None,
    ) -> None:
        self.cut = cut
        self.cuts = 0
        upstream_host, port = upstream.rsplit(":", 1)
        self._upstream = (upstream_host, int(port))
        self.one_way = round_trip / 2
        # To the registry (uploads, requests) and from it (downloads, answers).
        self.up, self.down = Link(rate), Link(rate)
        self.ends: set[_End] = set()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self._server = self._run(self._listen())
        self.host = f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    def cpu_seconds(self) -> float:
        """CPU time the relay's thread has used so far."""
        return float(self._run(_thread_time()))

    def close(self) -> None:
        self._run(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()

    def __enter__(self) -> LatencyProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def _listen(self) -> asyncio.Server:
        return await self.loop.create_server(lambda: _End(self, self.up), "127.0.0.1", 0)

    async def _stop(self) -> None:
        """Stop listening and end the connections still open (idle keep-alive ones)."""
        self._server.close()
        for end in list(self.ends):
            end.abort()
        await asyncio.sleep(0)

    def _run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)

    async def connect_upstream(self, client: _End) -> None:
        """The registry's end of a connection a client just opened."""
        try:
            await self.loop.create_connection(
                lambda: _End(self, self.down, peer=client), *self._upstream
            )
        except OSError:
            client.abort()


class _End(asyncio.BufferedProtocol):
    """One end of a relayed connection. What it receives goes onto ``link`` and reaches the
    other end's socket one way's time after it is through.

    Protocol callbacks rather than streams: no task, queue or copy per piece beyond the one out
    of the receive buffer, which keeps the relay's CPU small. Reading pauses while the piece
    just received is still on the link (so connections take turns) and while the other end
    cannot take more (a slow reader).
    """

    def __init__(self, proxy: LatencyProxy, link: Link, peer: _End | None = None) -> None:
        self.proxy = proxy
        self.link = link
        self.peer = peer
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray(PIECE)
        # (when, bytes) on their way to the other end; b"" is a half-close, None a close.
        self._on_the_way: deque[tuple[float, bytes | None]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._on_link = False
        self._peer_full = False
        self._closed = False
        # Bytes the connection may still carry (shared by its two ends), when it is cut.
        self.budget: list[int] | None = (
            [proxy.cut()] if proxy.cut is not None and peer is None else None
        )

    # -- asyncio.BufferedProtocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.proxy.ends.add(self)
        if self.peer is None:
            # A client: hold what it sends until the registry's end is connected.
            transport.pause_reading()
            self.proxy.loop.create_task(self.proxy.connect_upstream(self))
        else:
            self.peer.peer = self
            self.budget = self.peer.budget
            self.peer.transport_resume()

    def get_buffer(self, sizehint: int) -> bytearray:
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        self._send(bytes(self._buffer[:nbytes]))

    def eof_received(self) -> bool:
        self._send(b"")
        return True  # keep the other direction open: a half-close, as TCP has

    def connection_lost(self, exc: Exception | None) -> None:
        self.proxy.ends.discard(self)
        if not self._closed:
            self._closed = True
            self._send(None)

    def pause_writing(self) -> None:
        if self.peer is not None:
            self.peer._peer_full = True
            self.peer._update_reading()

    def resume_writing(self) -> None:
        if self.peer is not None:
            self.peer._peer_full = False
            self.peer._update_reading()

    # -- relaying ----------------------------------------------------------------------------

    def transport_resume(self) -> None:
        self._update_reading()

    def abort(self) -> None:
        self._closed = True
        if self.transport is not None:
            self.transport.abort()

    def _send(self, data: bytes | None) -> None:
        if data and self.budget is not None:
            self.budget[0] -= len(data)
            if self.budget[0] < 0:  # the link drops the connection: both ends reset
                data = data[: len(data) + self.budget[0]]
                self.link.sent += len(data)
                self.proxy.cuts += 1
                self.abort()
                if self.peer is not None:
                    self.peer.abort()
                return
        loop = self.proxy.loop
        now = loop.time()
        through = self.link.put(len(data or b""), now)
        self._on_the_way.append((through + self.proxy.one_way, data))
        if self._timer is None:
            self._timer = loop.call_at(self._on_the_way[0][0], self._deliver)
        if data and through > now:
            self._on_link = True
            self._update_reading()
            loop.call_at(through, self._link_free)

    def _link_free(self) -> None:
        self._on_link = False
        self._update_reading()

    def _update_reading(self) -> None:
        if self.transport is None or self.transport.is_closing() or self.peer is None:
            return
        if self._on_link or self._peer_full:
            self.transport.pause_reading()
        else:
            self.transport.resume_reading()

    def _deliver(self) -> None:
        self._timer = None
        now = self.proxy.loop.time()
        out = self.peer.transport if self.peer is not None else None
        while self._on_the_way and self._on_the_way[0][0] <= now:
            _, data = self._on_the_way.popleft()
            if out is None or out.is_closing():
                continue
            if data:
                out.write(data)
            elif data is None:
                out.close()
            elif out.can_write_eof():
                try:
                    out.write_eof()
                except OSError:  # the other end is gone already (a TLS client hung up)
                    out.close()
        if self._on_the_way:
            self._timer = self.proxy.loop.call_at(self._on_the_way[0][0], self._deliver)


async def _thread_time() -> float:
    return time.thread_time()
