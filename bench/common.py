"""What every benchmark needs: a fresh Azurite and local host, concurrent load, and the results file."""

from __future__ import annotations

import json
import os
import platform
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import requests
from azure.storage.blob import BlobServiceClient, ContainerClient

from devenv.azurite import ROOT, Azurite, free_port, start_azurite
from devenv.local_host import start_local_host, stop_local_host
from shared.attachments.graph import SIMPLE_UPLOAD_MAX
from shared.core.settings import Settings
from shared.services import Services
from shared.storage.blobs import CountingTransport

RESULTS = ROOT / "bench" / "results.json"
BROWSER_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Safari/537.36"


@dataclass
class Stack:
    azurite: Azurite
    api: str
    function_key: str
    env: dict[str, str]


@contextmanager
def local_stack(settings: dict[str, str] | None = None) -> Iterator[Stack]:
    """Azurite and the local host; `settings` adds or overrides PACKCLOUD_* settings of the host."""
    azurite = start_azurite()
    port = free_port()
    env = {
        **os.environ,
        "PACKCLOUD_REGION": "eu",
        "PACKCLOUD_STORAGE_CONNECTION_STRING": azurite.connection_string,
        "PACKCLOUD_MASTER_KEY": secrets.token_urlsafe(48),
        "DEVHOST_FUNCTION_KEY": secrets.token_urlsafe(24),
        "DEVHOST_MASTER_KEY": secrets.token_urlsafe(24),
        **(settings or {}),
    }
    try:
        host = start_local_host(port, env)
    except Exception:
        azurite.stop()
        raise
    try:
        yield Stack(azurite, f"http://127.0.0.1:{port}/api", env["DEVHOST_FUNCTION_KEY"], env)
    finally:
        stop_local_host(host)
        azurite.stop()


@dataclass
class Tenant:
    """The tenant a capture benchmark measures, on its own stack."""

    stack: Stack
    id: str
    api_key: str


@contextmanager
def stack_with_dataset(
    dataset: str, declaration: dict[str, object], settings: dict[str, str] | None = None
) -> Iterator[Tenant]:
    """`local_stack` with the tenant `bench`, made through the manage API as a publisher would, declaring `dataset`."""
    with local_stack(settings) as stack:
        with httpx.Client(base_url=stack.api, headers={"x-functions-key": stack.function_key}, timeout=30) as manage:
            key = manage.put("/manage/tenants/bench", json={}).raise_for_status().json()["api_key"]
            manage.put(f"/manage/tenants/bench/datasets/{dataset}", json=declaration).raise_for_status()
        yield Tenant(stack, "bench", key)


@dataclass
class Load:
    count: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rate(self) -> float:
        return self.count / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def run_concurrently(make_worker: Callable[[], Callable[[], None]], clients: int, per_client: int) -> Load:
    """`clients` threads, each calling its own worker `per_client` times; timing starts when all are ready."""
    latencies: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)
    errors: list[BaseException] = []

    def body() -> None:
        try:
            work = make_worker()
            mine = []
            barrier.wait()
            for _ in range(per_client):
                started = time.perf_counter()
                work()
                mine.append((time.perf_counter() - started) * 1000)
            with lock:
                latencies.extend(mine)
        except BaseException as error:  # reported after the run
            errors.append(error)
            barrier.abort()

    threads = [threading.Thread(target=body) for _ in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return Load(len(latencies), elapsed, latencies)


def against_raw(load: Callable[[], Load], raw_rate: Callable[[], float], rounds: int) -> dict[str, float]:
    """A warm-up load (connections, caches, imports), then `rounds` rounds of the raw baseline and the load,
    interleaved so that both see the same machine load: the best rate of each, their ratio, and the load's
    latency percentiles over all rounds."""
    load()
    raw_rates, rates, latencies = [], [], []
    for _ in range(rounds):
        raw_rates.append(raw_rate())
        measured = load()
        rates.append(measured.rate)
        latencies.extend(measured.latencies_ms)
    best, raw_best = max(rates), max(raw_rates)
    ordered = sorted(latencies)
    return {
        "rate": round(best, 1),
        "raw_rate": round(raw_best, 1),
        "ratio": round(best / raw_best, 3),
        "p50_ms": round(ordered[len(ordered) // 2], 2),
        "p99_ms": round(ordered[int(len(ordered) * 0.99)], 2),
    }


def raw_upload_rate(
    connection_string: str, upload: Callable[[ContainerClient], None], clients: int, per_client: int
) -> float:
    """The baseline: `upload` called with the raw SDK on a fresh container, by `clients` threads."""
    service = BlobServiceClient.from_connection_string(connection_string, transport=CountingTransport())
    container = service.get_container_client("raw-" + uuid.uuid4().hex[:8])
    container.create_container()
    return run_concurrently(lambda: lambda: upload(container), clients, per_client).rate


def upload_record(body: bytes, tags: dict[str, str]) -> Callable[[ContainerClient], None]:
    """One Put Blob of a record's bytes with its index tags, under a new name: what a capture sends."""

    def upload(container: ContainerClient) -> None:
        container.upload_blob(f"raw/{uuid.uuid4().hex}.json", body, tags=tags)

    return upload


def graph_upload(
    session: requests.Session, graph_url: str, drive: str, path: str, data: bytes, token: str, chunk: int
) -> requests.Response:
    """One file into a drive as Microsoft Graph takes it, with nothing checked or retried (the raw baselines of
    the uploads): a simple PUT up to SIMPLE_UPLOAD_MAX, else an upload session in `chunk`-byte pieces. The last
    answer, which describes the item."""
    auth = {"Authorization": f"Bearer {token}"}
    item_url = f"{graph_url}/drives/{drive}/root:/{path}:"
    if len(data) <= SIMPLE_UPLOAD_MAX:
        return session.put(f"{item_url}/content?@microsoft.graph.conflictBehavior=fail", data=data, headers=auth)
    body = {"item": {"@microsoft.graph.conflictBehavior": "fail"}}
    upload_url = session.post(f"{item_url}/createUploadSession", json=body, headers=auth).json()["uploadUrl"]
    for offset in range(0, len(data), chunk):
        piece = data[offset : offset + chunk]
        content_range = f"bytes {offset}-{offset + len(piece) - 1}/{len(data)}"
        answer = session.put(upload_url, data=piece, headers={"Content-Range": content_range})
    return answer


def status_mb(field: str) -> float:
    """A memory figure of this process from Linux's /proc/self/status (VmRSS, VmHWM: the peak), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def write_results(key: str, values: dict[str, object]) -> None:
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results[key] = {
        **values,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
    }
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")


def in_process_services(env: dict[str, str], **overrides: object) -> Services:
    """The same services the host runs, in this process, on the stack's Azurite (to count what it does)."""
    settings = Settings(
        region="eu",
        storage_connection_string=env["PACKCLOUD_STORAGE_CONNECTION_STRING"],
        master_key=env["PACKCLOUD_MASTER_KEY"],
        **overrides,
    )
    return Services.build(settings)
