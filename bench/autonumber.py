"""Auto-number through the local host, under contention and alone, on one Azurite.

(a) Contention: 32 clients on one sequence through the host (count 1 or 5, every fourth call a replay of the
    client's previous Idempotency-Key), against the algorithm before group commit (`Baseline` below, a copy:
    every request its own compare-and-swap, jittered back-off on 412, busy after 10 s) driven by 32 threads in
    process on the same Azurite: the baseline's best case, without HTTP. Targets: >= 10x the calls/s, 0 busy
    503s, 0 duplicates, 0 gaps, every replay identical. The same 32 threads on the new SequenceStore in process
    are reported too (in_process_speedup), with retries per number and callers per swap.
(b) One client through the host against a raw compare-and-swap loop (read with the ETag, write back with
    If-Match) on a blob of the same bytes as the sequence's: without Idempotency-Keys, with a new key per call,
    and with a long idempotency list (the sequence holding MAX_RECENT keys). Target: each ratio >= 0.8.
(c) count=100: numbers per second >= 50 x the single-number rate.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError
from azure.storage.blob import BlobServiceClient

from bench.common import in_process_services, local_stack, run_concurrently, write_results
from shared.autonumber.sequences import (
    CAS_BUDGET_S,
    IDEMPOTENCY_WINDOW,
    MAX_RECENT,
    Allocation,
    Issued,
    SequenceDefinition,
    SequenceStore,
    period_of,
)
from shared.storage.blobs import CountingTransport

TENANT = "bench"
SINGLE_CALLS, SLICE = 300, 50
CLIENTS, CONTENDED_CALLS, BASELINE_CALLS = 32, 25, 8
BATCH_CALLS = 60
DEFINITION = SequenceDefinition(format="B-{SEQNUM:8}", start=1)


class Baseline:
    """The algorithm before group commit, kept here as the baseline: each request reads the sequence with its
    ETag, writes it back with If-Match, and on a 412 reads again after a jittered back-off; after CAS_BUDGET_S
    it gives up (a busy 503). The same blob, models and rendering as SequenceStore's."""

    def __init__(self, store: SequenceStore) -> None:
        self.store = store
        self.busy = 0
        self._lock = threading.Lock()

    def next(self, tenant: str, sequence: str, count: int) -> Allocation | None:
        store = self.store
        deadline = time.monotonic() + CAS_BUDGET_S
        attempt = 0
        while True:
            now = store._clock.now()
            found = store._read(tenant, sequence)
            assert found is not None
            state, etag = found
            recent = [entry for entry in state.recent if entry.at > now - IDEMPOTENCY_WINDOW]
            definition = state.definition
            period = period_of(definition.reset, now)
            first = state.next if period == state.period else definition.start
            issued = Issued(key="", at=now, first=first, count=count)
            update = {"period": period, "next": first + count * definition.increment, "issued_in_period": True}
            try:
                store._write(state.model_copy(update={**update, "recent": recent}), etag)
                return store._render(tenant, sequence, issued.pinned(definition))
            except (ResourceModifiedError, ResourceExistsError):
                attempt += 1
            if time.monotonic() > deadline:
                with self._lock:
                    self.busy += 1
                return None
            store._sleep(random.uniform(0, min(0.1, 0.002 * 2**attempt)))


def raw_cas(connection_string: str, payload: bytes, calls: int) -> float:
    """Read with the ETag, write back with If-Match, retry on 412: the storage cost of one number."""
    service = BlobServiceClient.from_connection_string(connection_string, transport=CountingTransport())
    container = service.get_container_client("raw-cas")
    with contextlib.suppress(ResourceExistsError):
        container.create_container()
    blob = container.get_blob_client(f"counter-{len(payload)}.json")
    blob.upload_blob(payload, overwrite=True)

    def take() -> None:
        while True:
            download = blob.download_blob()
            data = download.readall()
            try:
                etag = download.properties.etag
                blob.upload_blob(data, overwrite=True, etag=etag, match_condition=MatchConditions.IfNotModified)
                return
            except ResourceModifiedError:
                continue

    return run_concurrently(lambda: take, 1, calls).rate


def host_client(api: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=api, headers={"authorization": f"Bearer {key}"}, timeout=60)


def single_rate(api: str, key: str, sequence: str, calls: int, count: int = 1, keyed: bool = False) -> float:
    client = host_client(api, key)

    def take() -> None:
        headers = {"idempotency-key": uuid.uuid4().hex} if keyed else {}
        answer = client.post(f"/autonumber/{TENANT}/{sequence}/next", json={"count": count}, headers=headers)
        if answer.status_code != 200:
            raise RuntimeError(f"next answered {answer.status_code}")

    return run_concurrently(lambda: take, 1, calls).rate * count


def interleaved(ours: Callable[[int], float], raw: Callable[[int], float]) -> tuple[float, float]:
    """Both rates over SINGLE_CALLS calls each, measured in alternating slices, so that a change in the shared
    machine's load falls on both sides alike."""
    ours_s = raw_s = 0.0
    for _ in range(SINGLE_CALLS // SLICE):
        ours_s += SLICE / ours(SLICE)
        raw_s += SLICE / raw(SLICE)
    return SINGLE_CALLS / ours_s, SINGLE_CALLS / raw_s


def contended_host(api: str, key: str, sequence: str) -> dict[str, Any]:
    """32 clients on one sequence; every fourth call repeats the client's previous call (same key, same count)."""
    statuses: Counter[str] = Counter()
    issued: list[int] = []
    mismatches = [0]
    lock = threading.Lock()

    def worker() -> Any:
        client = host_client(api, key)
        previous: list[Any] = []
        calls = [0]

        def take() -> None:
            calls[0] += 1
            replay = calls[0] % 4 == 0 and previous
            count, request_key, earlier = previous if replay else (random.choice([1, 5]), uuid.uuid4().hex, None)
            answer = client.post(
                f"/autonumber/{TENANT}/{sequence}/next", json={"count": count}, headers={"idempotency-key": request_key}
            )
            body = answer.json()
            with lock:
                statuses[f"{answer.status_code} {body.get('error', '')}".strip()] += 1
                if answer.status_code != 200:
                    return
                if replay:
                    mismatches[0] += body != earlier
                else:
                    issued.extend(body["seq"])
            previous[:] = [count, request_key, body]

        return take

    load = run_concurrently(worker, CLIENTS, CONTENDED_CALLS)
    ordered = sorted(issued)
    expected = set(range(DEFINITION.start, DEFINITION.start + len(ordered)))
    return {
        "calls_per_s": load.rate,
        "p50_ms": load.percentile(0.5),
        "p99_ms": load.percentile(0.99),
        "busy": sum(n for status, n in statuses.items() if status.startswith("503")),
        "other_errors": sum(n for status, n in statuses.items() if not status.startswith(("200", "503"))),
        "duplicates": len(ordered) - len(set(ordered)),
        "gaps": len(expected - set(ordered)),
        "replay_mismatches": mismatches[0],
    }


def contended_in_process(env: dict[str, str]) -> dict[str, float]:
    """The baseline (before group commit) and the new SequenceStore, each with 32 threads in this process."""
    services = in_process_services(env)
    old_store = SequenceStore(services.storage, services.clock, env["PACKCLOUD_MASTER_KEY"])
    old_store.put(TENANT, "baseline", DEFINITION)
    baseline = Baseline(old_store)
    old = run_concurrently(
        lambda: lambda: baseline.next(TENANT, "baseline", random.choice([1, 5])), CLIENTS, BASELINE_CALLS
    )
    store = SequenceStore(services.storage, services.clock, env["PACKCLOUD_MASTER_KEY"])
    store.put(TENANT, "inproc", DEFINITION)
    new = run_concurrently(lambda: lambda: store.next(TENANT, "inproc", 1, None), CLIENTS, CONTENDED_CALLS)
    return {
        "baseline_calls_per_s": (old.count - baseline.busy) / old.seconds,
        "baseline_busy": baseline.busy,
        "baseline_calls": old.count,
        "baseline_p99_ms": old.percentile(0.99),
        "in_process_calls_per_s": new.rate,
        "retries_per_number": store.retries / new.count,
        "callers_per_swap": new.count / max(1, store.swaps),
    }


def fill_idempotency_list(env: dict[str, str], sequence: str) -> bytes:
    """The sequence holding MAX_RECENT keys (as a busy plug-in's would), and its blob's bytes."""
    services = in_process_services(env)
    store = SequenceStore(services.storage, services.clock, env["PACKCLOUD_MASTER_KEY"])
    store.put(TENANT, sequence, DEFINITION)
    for _ in range(MAX_RECENT):
        store.next(TENANT, sequence, 1, uuid.uuid4().hex)
    return sequence_bytes(store, sequence)


def sequence_bytes(store: SequenceStore, sequence: str) -> bytes:
    return store._blob(TENANT, sequence).download_blob().readall()


def main() -> dict[str, Any]:
    with local_stack() as stack:
        with httpx.Client(base_url=stack.api, headers={"x-functions-key": stack.function_key}, timeout=30) as manage:
            key = manage.put(f"/manage/tenants/{TENANT}", json={}).json()["api_key"]
            for sequence in ("single", "keyed", "contended"):
                body = DEFINITION.model_dump()
                manage.put(f"/manage/tenants/{TENANT}/sequences/{sequence}", json=body).raise_for_status()
        env = stack.env
        long_bytes = fill_idempotency_list(env, "long")
        single_rate(stack.api, key, "single", 20)  # warm-up
        single_rate(stack.api, key, "long", 5, keyed=True)  # the host's first call reads what it did not write
        services = in_process_services(env)
        probe = SequenceStore(services.storage, services.clock, env["PACKCLOUD_MASTER_KEY"])
        short_bytes = sequence_bytes(probe, "single")  # also the keyed sequence's before its run: the strict side
        connection = stack.azurite.connection_string
        single, raw_short = interleaved(
            lambda n: single_rate(stack.api, key, "single", n), lambda n: raw_cas(connection, short_bytes, n)
        )
        keyed, raw_keyed = interleaved(
            lambda n: single_rate(stack.api, key, "keyed", n, keyed=True), lambda n: raw_cas(connection, short_bytes, n)
        )
        long, raw_long = interleaved(
            lambda n: single_rate(stack.api, key, "long", n, keyed=True), lambda n: raw_cas(connection, long_bytes, n)
        )
        contended = contended_host(stack.api, key, "contended")
        in_process = contended_in_process(env)
        batch = single_rate(stack.api, key, "single", BATCH_CALLS, count=100)
    result = {
        "contended_speedup": round(contended["calls_per_s"] / in_process["baseline_calls_per_s"], 1),
        "in_process_speedup": round(in_process["in_process_calls_per_s"] / in_process["baseline_calls_per_s"], 1),
        "contended_busy": contended["busy"],
        "contended_other_errors": contended["other_errors"],
        "contended_duplicates": contended["duplicates"],
        "contended_gaps": contended["gaps"],
        "replay_mismatches": contended["replay_mismatches"],
        "contended_per_s": round(contended["calls_per_s"], 1),
        "contended_p50_ms": round(contended["p50_ms"]),
        "contended_p99_ms": round(contended["p99_ms"]),
        "baseline_per_s": round(in_process["baseline_calls_per_s"], 1),
        "baseline_busy_share": round(in_process["baseline_busy"] / in_process["baseline_calls"], 3),
        "baseline_p99_ms": round(in_process["baseline_p99_ms"]),
        "in_process_per_s": round(in_process["in_process_calls_per_s"], 1),
        "retries_per_number": round(in_process["retries_per_number"], 3),
        "callers_per_swap": round(in_process["callers_per_swap"], 1),
        "single_ratio": round(single / raw_short, 3),
        "single_ratio_keyed": round(keyed / raw_keyed, 3),
        "single_ratio_long_list": round(long / raw_long, 3),
        "single_per_s": round(single, 1),
        "raw_single_per_s": round(raw_short, 1),
        "keyed_per_s": round(keyed, 1),
        "raw_keyed_per_s": round(raw_keyed, 1),
        "long_list_per_s": round(long, 1),
        "raw_long_list_per_s": round(raw_long, 1),
        "long_list_bytes": len(long_bytes),
        "batch_speedup": round(batch / single, 1),
        "batch_numbers_per_s": round(batch, 1),
        "clients": CLIENTS,
    }
    write_results("autonumber", result)
    print(
        f"autonumber: {CLIENTS} clients on one sequence {result['contended_per_s']} calls/s through the host vs "
        f"{result['baseline_per_s']} calls/s for the algorithm before group commit in process "
        f"({result['baseline_busy_share']:.0%} busy) -> {result['contended_speedup']}x (target >= 10); busy 503s "
        f"{result['contended_busy']}, duplicates {result['contended_duplicates']}, gaps {result['contended_gaps']}, "
        f"replay mismatches {result['replay_mismatches']} (targets 0); in process {result['in_process_speedup']}x, "
        f"{result['callers_per_swap']} callers per swap. One client vs raw CAS: {result['single_ratio']} without "
        f"keys, {result['single_ratio_keyed']} with keys, {result['single_ratio_long_list']} with {MAX_RECENT} keys "
        f"held (targets >= 0.8); count=100: {result['batch_speedup']}x single (target >= 50)"
    )
    return result


if __name__ == "__main__":
    main()
