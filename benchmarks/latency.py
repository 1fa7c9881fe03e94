"""A TCP relay that puts a registry some milliseconds away: what a registry on the network costs.

On loopback a request comes back in a fraction of a millisecond, so a tool that waits for each
answer before sending the next (skopeo) loses little, and the benchmark measures CPU. Real
registries are a round trip away, and that wait is what concurrency saves. The relay delivers
every chunk, in each direction, half the round trip after it arrived, without limiting
throughput: bytes are relayed, not parsed, so any client and any protocol pass unchanged.

The loopback interface of the benchmark machine has no netem (``tc qdisc ... netem``), hence
this relay in the benchmark's own process, on an asyncio loop of its own thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any

CHUNK = 256 * 1024


class LatencyProxy:
    """Listens on 127.0.0.1 (a free port); ``host`` is where clients connect instead."""

    def __init__(self, upstream: str, round_trip: float) -> None:
        upstream_host, port = upstream.rsplit(":", 1)
        self._upstream = (upstream_host, int(port))
        self._one_way = round_trip / 2
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server = self._run(asyncio.start_server(self._connection, "127.0.0.1", 0))
        self.host = f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    def close(self) -> None:
        self._run(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> LatencyProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def _stop(self) -> None:
        """Stop listening and end the connections still open (idle keep-alive ones)."""
        self._server.close()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    def _run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=30)

    async def _connection(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            client_writer.close()
            return
        try:
            await asyncio.gather(
                self._relay(client_reader, upstream_writer),
                self._relay(upstream_reader, client_writer),
            )
        except asyncio.CancelledError:
            pass  # close(): a connection handler that re-raised would be reported as failed
        finally:
            client_writer.close()
            upstream_writer.close()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Deliver what ``reader`` receives to ``writer``, each chunk one way's time late.

        Receiving and delivering are separate tasks: a chunk waiting out its delay does not
        hold back the ones behind it, so the relay adds latency, not a bandwidth limit.
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def receive() -> None:
            while True:
                try:
                    data = await reader.read(CHUNK)
                except OSError:
                    data = b""
                queue.put_nowait((loop.time() + self._one_way, data))
                if not data:
                    return

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                await asyncio.sleep(max(0.0, due - loop.time()))
                try:
                    if not data:
                        # The sender is done: pass the half-close on, as TCP would.
                        if writer.can_write_eof():
                            writer.write_eof()
                        return
                    writer.write(data)
                    await writer.drain()
                except OSError:
                    return

        await asyncio.gather(receive(), deliver())
