"""A TCP relay in front of Azurite that answers each request `delay_ms` later: storage as far away as Azure's is.

Azurite on loopback answers a Put Blob in about a millisecond; Blob Storage in the instance's region answers over
the network, and an instance spends most of a capture waiting for it. The relay holds every chunk Azurite sends
back for `delay_ms` from the moment it arrived, in order, so each response (one chunk or a few) arrives that much
later and the connection's byte stream is unchanged. It runs in a process of its own, not in the host it measures.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

CHUNK = 64 * 1024


@dataclass(frozen=True)
class Relay:
    port: int
    delay_ms: float
    pid: int


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay_s: float) -> None:
    try:
        while chunk := await reader.read(CHUNK):
            if delay_s:
                # Held from its arrival: chunks that arrive together leave together, in order.
                arrived = time.monotonic()
                await asyncio.sleep(max(0.0, arrived + delay_s - time.monotonic()))
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


def _relay_handler(upstream_port: int, delay_s: float):  # type: ignore[no-untyped-def]  # asyncio callback
    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(_pump(client_reader, upstream_writer, 0.0), _pump(upstream_reader, client_writer, delay_s))

    return handle


async def serve(upstream_port: int, delay_ms: float) -> None:
    server = await asyncio.start_server(_relay_handler(upstream_port, delay_ms / 1000), "127.0.0.1", 0, backlog=512)
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
    asyncio.run(serve(int(sys.argv[1]), float(sys.argv[2])))
