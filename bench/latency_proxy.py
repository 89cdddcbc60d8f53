"""A TCP relay in front of Azurite that answers each request `delay_ms` later: storage as far away as Azure's is.

Azurite on loopback answers a Put Blob in about a millisecond; Blob Storage in the instance's region answers over
the network, and an instance spends most of a capture waiting for it. The relay holds every chunk Azurite sends
back for `delay_ms` from the moment it arrived and then sends it on, in order, so each response arrives that much
later however many chunks it comes in, and the connection's byte stream is unchanged. Requests go upstream at once.

It runs in a process of its own, not in the host it measures, on the same core as the load generator and Azurite
(bench/concurrency.py): every microsecond it spends per chunk is taken from them. So it does the least per chunk:
asyncio protocols on uvloop (the local host's loop, a dev dependency), no streams and no task per connection; a
chunk from upstream is queued with its time and one timer per connection sends whatever is due. Connections never
wait for each other: each has its own queue and timer on the one loop.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import uvloop


@dataclass(frozen=True)
class Relay:
    port: int
    delay_ms: float
    pid: int


class _Side(asyncio.Protocol):
    """One end of a relayed connection; `peer` is the other end's protocol, whose transport its data goes to."""

    def __init__(self, loop: asyncio.AbstractEventLoop, delay_s: float) -> None:
        self.loop = loop
        self.delay_s = delay_s
        self.transport: asyncio.Transport | None = None
        self.peer: _Side | None = None
        self.held: deque[tuple[float, bytes]] = deque()  # chunks for the peer, with the time each may leave
        self.closing = False  # this end closed: the peer closes once everything held for it has left
        self.early: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # a TCP transport (uvloop's is not a subclass)

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        if peer is None or peer.transport is None:
            self.early.append(data)  # the host's first request, sent before upstream accepted the relay's connection
            return
        if not self.delay_s:
            peer.transport.write(data)
            return
        # time.monotonic, not loop.time: uvloop's clock has millisecond steps and is read once per turn of the loop.
        if not self.held:
            self.loop.call_later(self.delay_s, self._release)
        self.held.append((time.monotonic() + self.delay_s, data))

    def _release(self) -> None:
        """Sends every held chunk that is due, in order, and sets the timer for the next one."""
        if self.peer is None or self.peer.transport is None or self.peer.transport.is_closing():
            self.held.clear()
            return
        now = time.monotonic()
        while self.held and self.held[0][0] <= now:
            self.peer.transport.write(self.held.popleft()[1])
        if self.held:  # later chunks, or a timer that fired a little early by the monotonic clock
            self.loop.call_later(self.held[0][0] - now, self._release)
        elif self.closing:
            self.peer.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        if self.peer is not None and self.peer.transport is not None and not self.held:
            self.peer.transport.close()

    # The peer's send buffer is full: stop reading here until it drains (a large body must not pile up in memory).
    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()


class _Client(_Side):
    """The host's end: on connection, the relay opens its own to upstream and pairs the two."""

    def __init__(self, loop: asyncio.AbstractEventLoop, upstream_port: int, delay_s: float) -> None:
        super().__init__(loop, 0.0)  # the host's requests go upstream at once; the answers are held
        self.upstream_port = upstream_port
        self.answer_delay_s = delay_s

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.connecting = self.loop.create_task(self._connect())  # held: the loop keeps only a weak reference

    async def _connect(self) -> None:
        assert self.transport is not None
        try:
            upstream_transport, upstream = await self.loop.create_connection(
                lambda: _Side(self.loop, self.answer_delay_s), "127.0.0.1", self.upstream_port
            )
        except OSError:
            self.transport.close()
            return
        upstream.peer, self.peer = self, upstream
        for chunk in self.early:
            upstream_transport.write(chunk)
        self.early.clear()
        if self.closing:
            upstream_transport.close()


async def serve(upstream_port: int, delay_ms: float) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _Client(loop, upstream_port, delay_ms / 1000), "127.0.0.1", 0, backlog=512
    )
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


@contextmanager
def delayed_relay(upstream_port: int, delay_ms: float, cpus: set[int] | None = None) -> Iterator[Relay]:
    """A relay on a free port of 127.0.0.1 to `upstream_port`, in a process of its own (on `cpus`, if given), for
    the life of the block: in the benchmark's process its loop would wait for the client threads' GIL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.latency_proxy", str(upstream_port), str(delay_ms)],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parent.parent,
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        if cpus:
            os.sched_setaffinity(process.pid, cpus)
        yield Relay(port, delay_ms, process.pid)
    finally:
        process.terminate()
        process.wait(timeout=10)


if __name__ == "__main__":
    uvloop.run(serve(int(sys.argv[1]), float(sys.argv[2])))
