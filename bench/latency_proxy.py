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

It also times upstream (Azurite) itself, per request: from the moment the relay forwards a request's first bytes to
the moment the first byte of its answer arrives, before the relay's hold. The storage SDKs send HTTP/1.1 requests one
at a time per kept-alive connection (no pipelining), so on a connection the first chunk from the host after an answer
began starts a new request, and the first chunk from upstream after that starts its answer; the relay reads no HTTP.
Per chunk that costs a comparison, and per request a monotonic read at each end and an append. The parent takes the
times since its last ask over the relay's stdin and stdout (`Relay.take_storage_times`); the relay ends when its stdin
closes, so it never outlives the benchmark. A time includes any wait of the relay itself to read the answer (it shares
a core with Azurite and the clients): it is everything between the host's request and Azurite's answer that Blob
Storage would not have.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import uvloop


@dataclass(frozen=True)
class StorageTimes:
    """Upstream's answer times (seconds, first byte of the request forwarded to first byte of the answer back) and the
    number of requests relayed, over one span of the relay's life."""

    requests: int
    seconds: tuple[float, ...]


@dataclass(frozen=True)
class Relay:
    port: int
    delay_ms: float
    pid: int
    process: subprocess.Popen[bytes] = field(repr=False, compare=False)

    def take_storage_times(self) -> StorageTimes:
        """The times since the last call (or the relay's start); the relay then starts anew. From one thread at a time:
        it is one question and one answer on the relay's pipes."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(b"take\n")
        self.process.stdin.flush()
        answer = json.loads(self.process.stdout.readline())
        return StorageTimes(int(answer["requests"]), tuple(float(value) for value in answer["seconds"]))


class _Timings:
    """What the relay has timed since the parent last took it."""

    def __init__(self) -> None:
        self.requests = 0
        self.seconds: list[float] = []

    def take(self) -> bytes:
        taken = {"requests": self.requests, "seconds": [round(value, 6) for value in self.seconds]}
        self.requests, self.seconds = 0, []
        return json.dumps(taken).encode() + b"\n"


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


class _Upstream(_Side):
    """Upstream's end: the first chunk of an answer ends the time of the host's request it answers."""

    def __init__(self, loop: asyncio.AbstractEventLoop, delay_s: float, client: _Client) -> None:
        super().__init__(loop, delay_s)
        self.client = client

    def data_received(self, data: bytes) -> None:
        asked_at = self.client.asked_at
        if asked_at is not None:
            self.client.timings.seconds.append(time.monotonic() - asked_at)
            self.client.asked_at = None
        super().data_received(data)


class _Client(_Side):
    """The host's end: on connection, the relay opens its own to upstream and pairs the two."""

    def __init__(self, loop: asyncio.AbstractEventLoop, upstream_port: int, delay_s: float, timings: _Timings) -> None:
        super().__init__(loop, 0.0)  # the host's requests go upstream at once; the answers are held
        self.upstream_port = upstream_port
        self.answer_delay_s = delay_s
        self.timings = timings
        self.asked_at: float | None = None  # when the request awaiting its answer's first byte went upstream

    def data_received(self, data: bytes) -> None:
        if self.asked_at is None:  # the first chunk since an answer began: a new request (later ones are its body)
            self.asked_at = time.monotonic()
            self.timings.requests += 1
        super().data_received(data)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.connecting = self.loop.create_task(self._connect())  # held: the loop keeps only a weak reference

    async def _connect(self) -> None:
        assert self.transport is not None
        try:
            upstream_transport, upstream = await self.loop.create_connection(
                lambda: _Upstream(self.loop, self.answer_delay_s, self), "127.0.0.1", self.upstream_port
            )
        except OSError:
            self.transport.close()
            return
        upstream.peer, self.peer = self, upstream
        if self.early and self.asked_at is not None:
            self.asked_at = time.monotonic()  # the first request goes upstream only now: its time starts here
        for chunk in self.early:
            upstream_transport.write(chunk)
        self.early.clear()
        if self.closing:
            upstream_transport.close()


class _Control(asyncio.Protocol):
    """The relay's stdin: each line asks for the times so far (answered on stdout); its end ends the relay."""

    def __init__(self, timings: _Timings, ended: asyncio.Future[None]) -> None:
        self.timings = timings
        self.ended = ended
        self.pending = b""

    def data_received(self, data: bytes) -> None:
        *asks, self.pending = (self.pending + data).split(b"\n")
        for _ in asks:
            sys.stdout.buffer.write(self.timings.take())
            sys.stdout.buffer.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ended.done():
            self.ended.set_result(None)


async def serve(upstream_port: int, delay_ms: float) -> None:
    loop = asyncio.get_running_loop()
    timings = _Timings()
    ended: asyncio.Future[None] = loop.create_future()
    await loop.connect_read_pipe(lambda: _Control(timings, ended), sys.stdin)
    server = await loop.create_server(
        lambda: _Client(loop, upstream_port, delay_ms / 1000, timings), "127.0.0.1", 0, backlog=512
    )
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:  # serving since create_server; until the parent closes the relay's stdin
        await ended


@contextmanager
def delayed_relay(upstream_port: int, delay_ms: float, cpus: set[int] | None = None) -> Iterator[Relay]:
    """A relay on a free port of 127.0.0.1 to `upstream_port`, in a process of its own (on `cpus`, if given), for
    the life of the block: in the benchmark's process its loop would wait for the client threads' GIL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.latency_proxy", str(upstream_port), str(delay_ms)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parent.parent,
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        if cpus:
            os.sched_setaffinity(process.pid, cpus)
        yield Relay(port, delay_ms, process.pid, process)
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.terminate()
        process.wait(timeout=10)


if __name__ == "__main__":
    uvloop.run(serve(int(sys.argv[1]), float(sys.argv[2])))
