"""Group commit of auto-number sequences against a real Azurite: callers that arrive while a swap is in flight
share the next one; numbers stay contiguous and unique, replays identical, and two instances never collide."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable

import pytest

from shared.autonumber.sequences import Allocation, SequenceDefinition, SequenceStore
from shared.core.errors import NotFound
from shared.registry.store import sequence_prefix
from shared.storage.blobs import REGISTRY, Storage
from tests.factories import MASTER_KEY
from tests.integration.storage_proxy import Seen, on_conditional_writes, settings_through

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


def sequence_blob(tenant: str, sequence: str) -> str:
    return f"{REGISTRY}/{sequence_prefix(tenant)}{sequence}.json"


class HeldWrites:
    """Holds the first write of the sequence at the proxy until released, so that the callers arriving
    meanwhile queue behind it; counts the writes that reach Azurite."""

    def __init__(self, blob: str) -> None:
        self.release = threading.Event()
        self.writing = threading.Event()
        self.written = 0
        self._blob = blob

    def __call__(self, request: Seen) -> None:
        if request.method != "PUT" or request.blob != self._blob:
            return
        self.written += 1
        if self.written == 1:
            self.writing.set()
            self.release.wait(30)


def wait_for_queue(store: SequenceStore, tenant: str, sequence: str, waiting: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        queue = store._queues.get((tenant, sequence))
        if queue is not None and len(queue.waiting) >= waiting:
            return
        time.sleep(0.01)
    raise AssertionError("the callers did not queue")


@pytest.fixture
def racing(services, proxy):
    """An instance whose storage requests pass the proxy, where the test holds its writes or lets others win."""
    return SequenceStore(Storage.from_settings(settings_through(services.settings, proxy)), services.clock, MASTER_KEY)


def a_group_behind_a_held_swap(
    store: SequenceStore, held: HeldWrites, tenant: str, asks: list[tuple[int, str | None]]
) -> tuple[Allocation, list[Allocation | BaseException]]:
    """The first caller's swap is held at the proxy while `asks` arrive and queue behind it; then both run."""
    first: list[Allocation] = []
    leader = threading.Thread(target=lambda: first.append(store.next(tenant, "s", 1, "key-first")))
    leader.start()
    assert held.writing.wait(30)
    calls = [lambda count=count, key=key: store.next(tenant, "s", count, key) for count, key in asks]
    results: list[Allocation | BaseException] = []
    group = threading.Thread(target=lambda: results.extend(call_concurrently(calls)))
    group.start()
    wait_for_queue(store, tenant, "s", len(asks))
    held.release.set()
    leader.join(30)
    group.join(60)
    assert first and all(isinstance(r, Allocation) for r in results), results
    return first[0], results


def test_callers_that_arrive_during_a_swap_share_the_next_one_with_their_keys(racing, proxy, tenant_id):
    store = racing
    store.put(tenant_id, "s", FORMAT)
    before = store.next(tenant_id, "s", 2, "key-before")  # 1, 2
    held = HeldWrites(sequence_blob(tenant_id, "s"))
    # While the first swap is in flight: new keys, a key used twice, a replay of an earlier call, no key.
    asks = [(3, "key-a"), (1, "key-b"), (3, "key-a"), (2, "key-before"), (1, None), (5, "key-c"), (1, None)]
    with proxy.acting(held):
        first, results = a_group_behind_a_held_swap(store, held, tenant_id, asks)
    assert first.seq == [3]
    answers = dict(zip(range(len(asks)), results, strict=True))
    assert answers[0] == answers[2]  # the same key twice in one group: one allocation, the same answer
    assert answers[3] == before  # a replay of an earlier call: its earlier answer
    fresh = [answers[i] for i in (0, 1, 4, 5, 6)]
    assert_contiguous([*fresh, first], 3)
    assert held.written == 2  # one swap for the leader, one for the whole group behind it
    assert store.get(tenant_id, "s").next == 3 + 1 + 3 + 1 + 1 + 5 + 1
    # The group's keys were kept in its one write: replays, now from a fresh store (another instance), agree.
    other = SequenceStore(store._storage, store._clock, MASTER_KEY)
    for index, (count, key) in enumerate(asks):
        if key is not None:
            assert other.next(tenant_id, "s", count, key) == answers[index]
    assert store.get(tenant_id, "s").next == 15


def test_a_group_that_loses_a_race_is_retried_whole_after_the_winner(racing, services, proxy, tenant_id):
    """Another instance takes a number between the group's read and its write: Azurite answers the group's
    write 412, and the whole group is numbered again, after the winner, in one more write."""
    store = racing
    rival = SequenceStore(services.storage, services.clock, MASTER_KEY)  # straight to Azurite
    store.put(tenant_id, "s", FORMAT)
    held = HeldWrites(sequence_blob(tenant_id, "s"))
    won: list[Allocation] = []

    def before(request: Seen) -> None:
        held(request)
        if held.written == 2 and not won:  # the group's write: the rival's number lands first
            won.append(rival.next(tenant_id, "s", 1, "key-rival"))

    asks = [(3, "key-a"), (1, None), (3, "key-a"), (2, "key-b")]
    with proxy.acting(before):
        first, results = a_group_behind_a_held_swap(store, held, tenant_id, asks)
    assert first.seq == [1] and won[0].seq == [2]
    assert results[0] == results[2]  # one key twice in the group: still one allocation, also after the retry
    assert_contiguous([first, won[0], *(results[i] for i in (0, 1, 3))], 1)  # the group after the winner
    assert held.written == 3 and store.swaps == 2  # the group's write lost once (412), its retry won
    assert store.retries == 0  # it had swapped on the copy it last wrote: a stale copy is not counted as contention
    for index, (count, key) in enumerate(asks):  # the group's keys were kept by its retried write
        if key is not None:
            assert rival.next(tenant_id, "s", count, key) == results[index]
    assert rival.next(tenant_id, "s", 1, "key-rival") == won[0]
    assert rival.next(tenant_id, "s", 1, None).seq == [9]


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


def test_a_lost_race_is_answered_sequence_busy_and_logged_as_such(services, proxy, tenant_id, monkeypatch, caplog):
    """Through the registered function, on an instance whose every write loses to another instance's: 503 with
    its own code and Retry-After, nothing consumed, and a log line that names `sequence_busy`, not
    `storage_unavailable` (an outage)."""
    import azure.functions as func

    import function_app
    import shared.autonumber.sequences as autonumber
    import shared.services
    from devhost.routes import _functions
    from shared.registry.models import TenantIn
    from shared.services import Services

    # The app's services, as get_services() would build them, but with storage reached through the proxy.
    app_services = Services.build(settings_through(services.settings, proxy))
    monkeypatch.setattr(shared.services, "_services", app_services)
    _, api_key = app_services.registry.put_tenant(tenant_id, TenantIn())
    rival = SequenceStore(services.storage, services.clock, MASTER_KEY)  # another instance, straight to Azurite
    rival.put(tenant_id, "busy", FORMAT)
    lost: list[int] = []

    def rival_rewrites_the_definition() -> None:  # a new ETag, the same counter
        if len(lost) < 100:  # far beyond the budget: an instance that ignored it would then succeed
            lost.append(1)
            rival.put(tenant_id, "busy", FORMAT)

    monkeypatch.setattr(autonumber, "CAS_BUDGET_S", 1.0)  # room for retries on a busy machine
    # The app's functions as the local host reads them: get_functions() refuses a second call on one app.
    function = next(f for f in _functions(function_app.app) if f.get_function_name() == "autonumber_next")
    request = func.HttpRequest(
        "POST",
        f"http://localhost/api/autonumber/{tenant_id}/busy/next",
        headers={"authorization": f"Bearer {api_key}", "content-type": "application/json"},
        route_params={"tenant": tenant_id, "sequence": "busy"},
        body=b'{"count": 2}',
    )
    racing = on_conditional_writes(sequence_blob(tenant_id, "busy"), rival_rewrites_the_definition)
    with proxy.acting(racing), caplog.at_level(logging.DEBUG, logger="packcloud"):
        answer = function.get_user_function()(request)
    assert answer.status_code == 503, answer.get_body()
    assert json.loads(answer.get_body())["error"] == "sequence_busy"
    assert answer.headers["Retry-After"] == "1"
    assert 1 < len(lost) < 100 and app_services.sequences.retries == len(lost)  # real races, all lost
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "sequence_busy" in logged and "storage_unavailable" not in logged
    assert app_services.sequences.next(tenant_id, "busy", 1, None).seq == [1]  # the lost races consumed nothing
