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

from azure.storage.blob import BlobServiceClient, ContainerClient

from devenv.azurite import ROOT, Azurite, free_port, start_azurite
from devenv.local_host import start_local_host, stop_local_host
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
