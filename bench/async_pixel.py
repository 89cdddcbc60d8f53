"""Do async functions with azure.storage.blob.aio serve the pixel better than sync functions in the Python worker's
thread pool? (They did, and the production pixel is now async; this keeps measuring both.)

Two comparisons, each at concurrency 1 and at the Bicep's level, interleaved on one Azurite:
- the SDK alone: the record's Put Blob (same bytes, same index tags) from one process, by the sync SDK from a pool
  of as many threads, and by the aio SDK from as many tasks on one event loop;
- the whole pixel through the local host: bench/sync_app (the pixel as a sync function in the thread pool, as it
  was) against the production app (the pixel an async function: the same checks and record, the Put Blob awaited
  with the aio SDK, cold registry reads and the counts' flush in a thread), as bench/concurrency.py measures it
  (captures/s, the host's CPU ms per capture, p50, p99).
The result is in bench/README.md, with the decision it led to.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from azure.storage.blob import BlobServiceClient
from azure.storage.blob.aio import BlobServiceClient as AsyncBlobServiceClient

from bench.common import local_stack, write_results
from bench.concurrency import ORIGIN, bicep_concurrency, measure, pixel_worker
from bench.pixel import sample_record_bytes, sample_tags
from devenv.azurite import ROOT, free_port, start_azurite, wait_for_port
from devenv.demo import demo_dataset
from devenv.local_host import start_local_host, stop_local_host

UPLOADS = 600
ROUNDS = 3


def summary(latencies: list[float], seconds: float, cpu_s: float) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "uploads_per_s": round(len(ordered) / seconds, 1),
        "cpu_ms_per_upload": round(cpu_s * 1000 / len(ordered), 3),
        "p50_ms": round(statistics.median(ordered), 2),
        "p99_ms": round(ordered[int(len(ordered) * 0.99)], 2),
    }


def sync_side(connection_string: str, container: str, level: int) -> dict[str, float]:
    client = BlobServiceClient.from_connection_string(connection_string).get_container_client(container)
    body, tags = sample_record_bytes(), sample_tags()

    def upload(_: int) -> float:
        started = time.perf_counter()
        client.upload_blob(f"sync/{uuid.uuid4().hex}.json", body, tags=tags)
        return (time.perf_counter() - started) * 1000

    with ThreadPoolExecutor(level) as pool:
        list(pool.map(upload, range(level * 4)))  # warm-up: connections
        cpu, wall = time.process_time(), time.perf_counter()
        latencies = list(pool.map(upload, range(UPLOADS)))
        return summary(latencies, time.perf_counter() - wall, time.process_time() - cpu)


async def async_side(connection_string: str, container: str, level: int) -> dict[str, float]:
    body, tags = sample_record_bytes(), sample_tags()
    async with AsyncBlobServiceClient.from_connection_string(connection_string) as service:
        client = service.get_container_client(container)
        gate = asyncio.Semaphore(level)

        async def upload() -> float:
            async with gate:
                started = time.perf_counter()
                await client.upload_blob(f"aio/{uuid.uuid4().hex}.json", body, tags=tags)
                return (time.perf_counter() - started) * 1000

        await asyncio.gather(*(upload() for _ in range(level * 4)))  # warm-up: connections
        cpu, wall = time.process_time(), time.perf_counter()
        latencies = await asyncio.gather(*(upload() for _ in range(UPLOADS)))
        return summary(list(latencies), time.perf_counter() - wall, time.process_time() - cpu)


def start_sync_host(port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "devhost", "--app", "bench.sync_app.function_app:app", "--root", str(ROOT)]
    process = subprocess.Popen(
        [*command, "--port", str(port)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_for_port(port, 60, process)
    return process


def through_the_host() -> dict[str, Any]:
    result: dict[str, Any] = {}
    with local_stack() as stack:
        with httpx.Client(base_url=stack.api, headers={"x-functions-key": stack.function_key}, timeout=30) as manage:
            manage.put("/manage/tenants/bench", json={}).raise_for_status()
            manage.put("/manage/tenants/bench/datasets/pricing", json=demo_dataset(ORIGIN)).raise_for_status()
        for level in sorted({1, bicep_concurrency()}):
            env = {**stack.env, "PYTHON_THREADPOOL_THREAD_COUNT": str(level)}
            sync_port, async_port = free_port(), free_port()
            sync_host, async_host = start_sync_host(sync_port, env), start_local_host(async_port, env)
            try:
                sides: dict[str, list[dict[str, float]]] = {"sync": [], "aio": []}
                for _ in range(ROUNDS):
                    for side, host, port in (("sync", sync_host, sync_port), ("aio", async_host, async_port)):
                        sides[side].append(measure(host.pid, pixel_worker(f"http://127.0.0.1:{port}/api"), level))
            finally:
                stop_local_host(sync_host)
                stop_local_host(async_host)
            best = {side: max(runs, key=lambda run: run["captures_per_s"]) for side, runs in sides.items()}
            result[str(level)] = best
            print(f"through the host, concurrency {level}: sync {best['sync']}; aio {best['aio']}", flush=True)
    return result


def sdk_alone() -> dict[str, Any]:
    azurite = start_azurite()
    try:
        container = "aio-" + uuid.uuid4().hex[:8]
        BlobServiceClient.from_connection_string(azurite.connection_string).create_container(container)
        result: dict[str, Any] = {}
        for level in sorted({1, bicep_concurrency()}):
            sides: dict[str, list[dict[str, float]]] = {"sync": [], "aio": []}
            for _ in range(ROUNDS):  # interleaved, so both see the same machine load
                sides["sync"].append(sync_side(azurite.connection_string, container, level))
                sides["aio"].append(asyncio.run(async_side(azurite.connection_string, container, level)))
            best = {side: max(runs, key=lambda run: run["uploads_per_s"]) for side, runs in sides.items()}
            result[str(level)] = best
            print(f"SDK alone, concurrency {level}: sync {best['sync']}; aio {best['aio']}", flush=True)
    finally:
        azurite.stop()
    return result


def main() -> dict[str, Any]:
    result = {"sdk": sdk_alone(), "host": through_the_host()}
    write_results("async_pixel", result)
    return result


if __name__ == "__main__":
    main()
