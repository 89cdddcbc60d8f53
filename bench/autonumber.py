"""Auto-number through the local host against raw compare-and-swap on one blob with the SDK, same Azurite.

Targets: (a) one client: single-number rate >= 0.8 x raw read-then-conditional-write rate; (b) 16 contending
clients: rate no worse than raw contended CAS, with retries per number reported; (c) count=100: numbers per
second >= 50 x the single-number rate.
"""

from __future__ import annotations

import random
import threading
import time

import httpx
from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError
from azure.storage.blob import BlobServiceClient

from bench.common import in_process_services, local_stack, run_concurrently, write_results
from shared.autonumber.sequences import SequenceStore
from shared.storage.blobs import CountingTransport

SINGLE_CALLS = 300
CONTENDED_CLIENTS, CONTENDED_CALLS = 16, 40
BATCH_CALLS = 60


def raw_cas(connection_string: str, clients: int, calls: int) -> tuple[float, float]:
    """Read with the ETag, write back with If-Match, retry on 412: the storage cost of one number."""
    service = BlobServiceClient.from_connection_string(connection_string, transport=CountingTransport())
    container = service.get_container_client(f"raw-{random.getrandbits(32):x}")
    container.create_container()
    blob = container.get_blob_client("counter.json")
    blob.upload_blob(b'{"next": 0, "padding": "' + b"x" * 200 + b'"}')
    retries = [0]
    lock = threading.Lock()

    def worker():
        def take():
            for attempt in range(1000):
                download = blob.download_blob()
                data = download.readall()
                try:
                    blob.upload_blob(
                        data,
                        overwrite=True,
                        etag=download.properties.etag,
                        match_condition=MatchConditions.IfNotModified,
                    )
                    return
                except ResourceModifiedError:
                    with lock:
                        retries[0] += 1
                    time.sleep(random.uniform(0, min(0.1, 0.002 * 2**attempt)))

        return take

    load = run_concurrently(worker, clients, calls)
    return load.rate, retries[0] / load.count


def http_rate(api: str, tenant: str, key: str, clients: int, calls: int, count: int) -> float:
    def worker():
        client = httpx.Client(base_url=api, headers={"authorization": f"Bearer {key}"}, timeout=60)

        def take():
            answer = client.post(f"/autonumber/{tenant}/bench/next", json={"count": count})
            if answer.status_code != 200:
                raise RuntimeError(f"next answered {answer.status_code}")

        return take

    return run_concurrently(worker, clients, calls).rate * count


def main() -> dict[str, float]:
    with local_stack() as stack:
        tenant = "bench"
        with httpx.Client(base_url=stack.api, headers={"x-functions-key": stack.function_key}, timeout=30) as manage:
            key = manage.put(f"/manage/tenants/{tenant}", json={}).json()["api_key"]
            manage.put(f"/manage/tenants/{tenant}/sequences/bench", json={"format": "B-{SEQNUM:8}"}).raise_for_status()
        http_rate(stack.api, tenant, key, 1, 20, 1)  # warm-up
        raw_single, _ = raw_cas(stack.azurite.connection_string, 1, SINGLE_CALLS)
        single = http_rate(stack.api, tenant, key, 1, SINGLE_CALLS, 1)
        raw_contended, raw_retries = raw_cas(stack.azurite.connection_string, CONTENDED_CLIENTS, CONTENDED_CALLS)
        contended = http_rate(stack.api, tenant, key, CONTENDED_CLIENTS, CONTENDED_CALLS, 1)
        batch = http_rate(stack.api, tenant, key, 1, BATCH_CALLS, 100)
        retries = store_retries(stack.env, tenant)
    result = {
        "single_ratio": round(single / raw_single, 3),
        "contended_ratio": round(contended / raw_contended, 3),
        "retries_per_number": round(retries, 3),
        "retries_per_number_raw": round(raw_retries, 3),
        "batch_speedup": round(batch / single, 1),
        "single_per_s": round(single, 1),
        "raw_single_per_s": round(raw_single, 1),
        "contended_per_s": round(contended, 1),
        "raw_contended_per_s": round(raw_contended, 1),
        "batch_numbers_per_s": round(batch, 1),
    }
    write_results("autonumber", result)
    print(
        f"autonumber: single {single:.0f}/s vs raw CAS {raw_single:.0f}/s -> {result['single_ratio']} (target >= 0.8); "
        f"16 contending clients {contended:.0f}/s vs raw {raw_contended:.0f}/s -> {result['contended_ratio']} "
        f"(target >= 1), retries per number {retries:.2f} (raw {raw_retries:.2f}); count=100: {batch:.0f} numbers/s = "
        f"{result['batch_speedup']}x single (target >= 50)"
    )
    return result


def store_retries(env: dict[str, str], tenant: str) -> float:
    """Retries per number of the same SequenceStore under 16 contending threads (the host's are not visible)."""
    services = in_process_services(env)
    store = SequenceStore(services.storage, services.clock, env["PACKCLOUD_MASTER_KEY"])
    load = run_concurrently(lambda: lambda: store.next(tenant, "bench", 1, None), CONTENDED_CLIENTS, CONTENDED_CALLS)
    return store.retries / load.count


if __name__ == "__main__":
    main()
