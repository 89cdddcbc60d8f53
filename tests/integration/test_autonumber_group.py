"""Group commit of auto-number sequences against a real Azurite: callers that arrive while a swap is in flight
share the next one; numbers stay contiguous and unique, replays identical, and two instances never collide."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable

import pytest

from shared.autonumber.sequences import Allocation, SequenceDefinition, SequenceState, SequenceStore
from shared.core.errors import NotFound
from tests.factories import MASTER_KEY

FORMAT = SequenceDefinition(format="N{RANDSTRING:3}-{SEQNUM:6}", start=1)


@pytest.fixture
def store(services):
    return SequenceStore(services.storage, services.clock, MASTER_KEY)


def call_concurrently(calls: list[Callable[[], Allocation]]) -> list[Allocation | BaseException]:
    results: list[Allocation | BaseException] = [RuntimeError("not run")] * len(calls)
    barrier = threading.Barrier(len(calls))

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = calls[index]()
        except BaseException as error:
            results[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def assert_contiguous(allocations: list[Allocation], start: int) -> None:
    numbers = sorted(n for allocation in allocations for n in allocation.seq)
    assert numbers == list(range(start, start + len(numbers)))  # unique, and no gap
    values = [v for allocation in allocations for v in allocation.values]
    assert len(set(values)) == len(values)


def test_many_threads_on_one_sequence_get_contiguous_unique_numbers(store, tenant_id):
    store.put(tenant_id, "s", FORMAT)
    calls = [lambda i=i: store.next(tenant_id, "s", 1 + (i % 3) * 2, None) for i in range(48)]
    results = call_concurrently(calls)
    allocations = [r for r in results if isinstance(r, Allocation)]
    assert len(allocations) == 48, [r for r in results if not isinstance(r, Allocation)]
    assert_contiguous(allocations, 1)
    assert sum(len(a.seq) for a in allocations) == 16 * 1 + 16 * 3 + 16 * 5
    assert store.get(tenant_id, "s").next == 1 + 144
    assert store.swaps <= 48


class HeldWrites:
    """Holds the first write of `next` until released, so that the callers arriving meanwhile queue behind it."""

    def __init__(self, store: SequenceStore) -> None:
        self.release = threading.Event()
        self.writing = threading.Event()
        self.written: list[SequenceState] = []
        self._write = store._write
        store._write = self  # type: ignore[method-assign]

    def __call__(self, state: SequenceState, etag: str | None) -> str:
        if not self.written:
            self.writing.set()
            self.release.wait(30)
        self.written.append(state)
        return self._write(state, etag)


def wait_for_queue(store: SequenceStore, tenant: str, sequence: str, waiting: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        queue = store._queues.get((tenant, sequence))
        if queue is not None and len(queue.waiting) >= waiting:
            return
        time.sleep(0.01)
    raise AssertionError("the callers did not queue")


def test_callers_that_arrive_during_a_swap_share_the_next_one_with_their_keys(store, tenant_id):
    store.put(tenant_id, "s", FORMAT)
    before = store.next(tenant_id, "s", 2, "key-before")  # 1, 2
    held = HeldWrites(store)
    first: list[Allocation] = []
    leader = threading.Thread(target=lambda: first.append(store.next(tenant_id, "s", 1, "key-first")))
    leader.start()
    assert held.writing.wait(30)
    # While the first swap is in flight: new keys, a key used twice, a replay of an earlier call, no key.
    asks = [(3, "key-a"), (1, "key-b"), (3, "key-a"), (2, "key-before"), (1, None), (5, "key-c"), (1, None)]
    calls = [lambda count=count, key=key: store.next(tenant_id, "s", count, key) for count, key in asks]
    results: list[Allocation | BaseException] = []
    group = threading.Thread(target=lambda: results.extend(call_concurrently(calls)))
    group.start()
    wait_for_queue(store, tenant_id, "s", len(asks))
    held.release.set()
    leader.join(30)
    group.join(60)
    assert first and first[0].seq == [3]
    assert all(isinstance(r, Allocation) for r in results), results
    answers = dict(zip(range(len(asks)), results, strict=True))
    assert answers[0] == answers[2]  # the same key twice in one group: one allocation, the same answer
    assert answers[3] == before  # a replay of an earlier call: its earlier answer
    fresh = [answers[i] for i in (0, 1, 4, 5, 6)]
    assert_contiguous([*fresh, first[0]], 3)
    assert len(held.written) == 2  # one swap for the leader, one for the whole group behind it
    assert store.get(tenant_id, "s").next == 3 + 1 + 3 + 1 + 1 + 5 + 1
    # The group's keys were kept in its one write: replays, now from a fresh store (another instance), agree.
    other = SequenceStore(store._storage, store._clock, MASTER_KEY)
    for index, (count, key) in enumerate(asks):
        if key is not None:
            assert other.next(tenant_id, "s", count, key) == answers[index]
    assert store.get(tenant_id, "s").next == 15


def test_two_instances_racing_give_no_duplicates_and_no_gaps(store, services, tenant_id):
    store.put(tenant_id, "s", FORMAT)
    other = SequenceStore(services.storage, services.clock, MASTER_KEY)
    calls = [
        lambda i=i: (store if i % 2 else other).next(tenant_id, "s", 1 + i % 4, f"k{i}" if i % 3 else None)
        for i in range(40)
    ]
    results = call_concurrently(calls)
    allocations = [r for r in results if isinstance(r, Allocation)]
    assert len(allocations) == 40, [r for r in results if not isinstance(r, Allocation)]
    assert_contiguous(allocations, 1)
    assert store.get(tenant_id, "s").next == 1 + sum(1 + i % 4 for i in range(40))
    # Each instance keeps what it last wrote; the other's writes since make that copy stale: still right.
    assert store.next(tenant_id, "s", 1, None).seq == [store.get(tenant_id, "s").next - 1]
    assert other.next(tenant_id, "s", 1, None).seq == [store.get(tenant_id, "s").next - 1]


def test_a_replay_is_not_answered_from_memory_after_the_sequence_is_gone(store, services, tenant_id):
    store.put(tenant_id, "s", FORMAT)
    store.next(tenant_id, "s", 1, "k1")
    SequenceStore(services.storage, services.clock, MASTER_KEY).delete(tenant_id, "s")
    with pytest.raises(NotFound):
        store.next(tenant_id, "s", 1, "k1")
    with pytest.raises(NotFound):
        store.next(tenant_id, "s", 1, None)


def test_a_lost_race_is_answered_sequence_busy_and_logged_as_such(tenant_id, monkeypatch, caplog):
    """Through the registered function: 503 with its own code and Retry-After, nothing consumed, and a log line
    that names `sequence_busy`, not `storage_unavailable` (an outage)."""
    import azure.functions as func
    from azure.core.exceptions import ResourceModifiedError

    import function_app
    import shared.autonumber.sequences as autonumber
    from devhost.routes import _functions
    from shared.registry.models import TenantIn
    from shared.services import get_services

    services = get_services()
    _, api_key = services.registry.put_tenant(tenant_id, TenantIn())
    services.sequences.put(tenant_id, "busy", FORMAT)

    def always_stale(state: SequenceState, etag: str | None) -> str:
        raise ResourceModifiedError("another instance won")

    monkeypatch.setattr(autonumber, "CAS_BUDGET_S", 0.2)
    monkeypatch.setattr(services.sequences, "_write", always_stale)
    # The app's functions as the local host reads them: get_functions() refuses a second call on one app.
    function = next(f for f in _functions(function_app.app) if f.get_function_name() == "autonumber_next")
    request = func.HttpRequest(
        "POST",
        f"http://localhost/api/autonumber/{tenant_id}/busy/next",
        headers={"authorization": f"Bearer {api_key}", "content-type": "application/json"},
        route_params={"tenant": tenant_id, "sequence": "busy"},
        body=b'{"count": 2}',
    )
    with caplog.at_level(logging.DEBUG, logger="packcloud"):
        answer = function.get_user_function()(request)
    assert answer.status_code == 503, answer.get_body()
    assert json.loads(answer.get_body())["error"] == "sequence_busy"
    assert answer.headers["Retry-After"] == "1"
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "sequence_busy" in logged and "storage_unavailable" not in logged
    monkeypatch.undo()
    assert services.sequences.next(tenant_id, "busy", 1, None).seq == [1]  # the lost race consumed nothing
