"""Auto-number sequences against a real Azurite: counting, idempotency, resets, contention and faults."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

import shared.autonumber.sequences as autonumber
from devenv.azurite import free_port, start_azurite
from devenv.local_host import start_local_host, stop_local_host
from shared.autonumber.sequences import SequenceBusy, SequenceDefinition, SequenceStore
from shared.core.errors import Conflict, NotFound
from shared.registry.models import TenantIn
from shared.registry.store import sequence_prefix
from shared.storage.blobs import REGISTRY, Storage
from tests.factories import FUNCTION_KEY, HOST_MASTER_KEY, MASTER_KEY, all_blobs, settings_env
from tests.integration.storage_proxy import on_conditional_writes, settings_through

INVOICE = {"format": "INV-{DATETIMEUTC:yyyy}-{SEQNUM:6}", "reset": "yearly"}


@pytest.fixture
def store(services):
    return SequenceStore(services.storage, services.clock, MASTER_KEY)


def test_numbers_count_up_contiguously(store, tenant_id):
    store.put(tenant_id, "invoice", SequenceDefinition(**INVOICE))
    first = store.next(tenant_id, "invoice", 1, None)
    assert first.values == ["INV-2026-001000"] and first.seq == [1000]
    batch = store.next(tenant_id, "invoice", 3, None)
    assert batch.seq == [1001, 1002, 1003]
    assert batch.values == ["INV-2026-001001", "INV-2026-001002", "INV-2026-001003"]


def test_increment_and_start(store, tenant_id):
    store.put(tenant_id, "case", SequenceDefinition(format="C{SEQNUM:3}", start=5, increment=10))
    assert store.next(tenant_id, "case", 2, None).values == ["C005", "C015"]


def test_same_idempotency_key_answers_the_same_and_consumes_nothing(store, tenant_id):
    store.put(tenant_id, "invoice", SequenceDefinition(format="{RANDSTRING:4}-{SEQNUM:4}"))
    first = store.next(tenant_id, "invoice", 2, "order-42")
    assert store.next(tenant_id, "invoice", 2, "order-42") == first
    other = store.next(tenant_id, "invoice", 1, "order-43")
    assert other.seq == [first.seq[-1] + 1]
    stored = b"".join(all_blobs_for(store, tenant_id))
    assert b"order-42" not in stored  # keys are kept hashed


def all_blobs_for(store, tenant_id):
    container = store._storage.container(REGISTRY)
    return [
        container.download_blob(b.name).readall()
        for b in container.list_blobs(name_starts_with=f"sequences/{tenant_id}/")
    ]


def test_an_answer_stays_the_same_after_the_definition_changes(store, tenant_id):
    store.put(tenant_id, "s1", SequenceDefinition(format="A-{SEQNUM:4}"))
    first = store.next(tenant_id, "s1", 2, "k1")
    store.put(tenant_id, "s1", SequenceDefinition(format="B-{SEQNUM:6}", increment=5))
    assert store.next(tenant_id, "s1", 2, "k1") == first
    assert store.next(tenant_id, "s1", 1, "k2").values == [f"B-{first.seq[-1] + 1:06d}"]


def test_idempotency_lasts_24_hours(store, tenant_id, clock):
    store.put(tenant_id, "invoice", SequenceDefinition(format="{SEQNUM:4}"))
    first = store.next(tenant_id, "invoice", 1, "k")
    clock.advance(timedelta(hours=23))
    assert store.next(tenant_id, "invoice", 1, "k") == first
    clock.advance(timedelta(hours=2))
    assert store.next(tenant_id, "invoice", 1, "k").seq == [first.seq[0] + 1]


@pytest.mark.parametrize(
    ("reset", "fmt", "before", "after", "same_period"),
    [
        (
            "yearly",
            "{DATETIMEUTC:yyyy}-{SEQNUM:4}",
            datetime(2026, 12, 31, 23, 59, 59),
            datetime(2027, 1, 1),
            datetime(2026, 1, 1),
        ),
        (
            "monthly",
            "{DATETIMEUTC:yyyyMM}-{SEQNUM:4}",
            datetime(2026, 11, 30, 23, 59),
            datetime(2026, 12, 1),
            datetime(2026, 11, 1),
        ),
        (
            "daily",
            "{DATETIMEUTC:yyyyMMdd}-{SEQNUM:4}",
            datetime(2026, 11, 23, 23, 59),
            datetime(2026, 11, 24),
            datetime(2026, 11, 23),
        ),
    ],
)
def test_counters_restart_when_the_period_changes(store, tenant_id, clock, reset, fmt, before, after, same_period):
    clock.set(same_period.replace(tzinfo=UTC))
    store.put(tenant_id, "s1", SequenceDefinition(format=fmt, reset=reset, start=1))
    store.next(tenant_id, "s1", 2, None)
    clock.set(before.replace(tzinfo=UTC))
    assert store.next(tenant_id, "s1", 1, None).seq == [3]
    clock.set(after.replace(tzinfo=UTC))
    restarted = store.next(tenant_id, "s1", 1, None)
    assert restarted.seq == [1]
    assert restarted.values[0].startswith(after.strftime({"yearly": "%Y", "monthly": "%Y%m", "daily": "%Y%m%d"}[reset]))


def test_start_cannot_go_below_what_was_handed_out(store, tenant_id):
    store.put(tenant_id, "s1", SequenceDefinition(format="{SEQNUM:4}", start=100))
    store.next(tenant_id, "s1", 5, None)  # 100..104
    with pytest.raises(Conflict):
        store.put(tenant_id, "s1", SequenceDefinition(format="{SEQNUM:4}", start=104))
    store.put(tenant_id, "s1", SequenceDefinition(format="{SEQNUM:4}", start=500))
    assert store.next(tenant_id, "s1", 1, None).seq == [500]


def test_unknown_sequence(store, tenant_id):
    with pytest.raises(NotFound):
        store.next(tenant_id, "nope", 1, None)


@pytest.fixture
def racing(services, proxy, clock):
    """An instance whose storage requests pass the proxy, where the test lets another instance win its races."""
    return SequenceStore(Storage.from_settings(settings_through(services.settings, proxy)), clock, MASTER_KEY)


def sequence_blob(tenant: str, sequence: str) -> str:
    return f"{REGISTRY}/{sequence_prefix(tenant)}{sequence}.json"


def test_a_race_lost_to_another_instance_is_retried_without_a_gap_or_a_duplicate(store, racing, proxy, tenant_id):
    """The other instance takes numbers between this one's read and its write, three times: Azurite answers
    each write 412, and this instance reads again and numbers after the other's, as if it had come later."""
    store.put(tenant_id, "s1", SequenceDefinition(format="{SEQNUM:4}"))
    rival: list[list[int]] = []

    def rival_takes_a_number() -> None:
        if len(rival) < 3:
            rival.append(store.next(tenant_id, "s1", 1, f"rival-{len(rival)}").seq)

    with proxy.acting(on_conditional_writes(sequence_blob(tenant_id, "s1"), rival_takes_a_number)):
        mine = racing.next(tenant_id, "s1", 2, "mine")
    assert rival == [[1000], [1001], [1002]] and racing.retries == 3  # three real races, all lost
    assert mine.seq == [1003, 1004]  # after the winner's numbers: no duplicate, no gap
    assert store.next(tenant_id, "s1", 2, "mine") == mine  # the replay, on the other instance, is the same
    assert racing.next(tenant_id, "s1", 1, "rival-1").seq == [1001]
    assert racing.next(tenant_id, "s1", 1, None).seq == [1005]


RIVAL_GIVES_UP = 100


def test_endless_contention_answers_busy_and_consumes_nothing(store, racing, proxy, tenant_id, monkeypatch):
    """Another instance rewrites the sequence before every write of this one: Azurite refuses each of them
    (412) until the retries' time is up, and only then is the answer sequence_busy."""
    store.put(tenant_id, "s1", SequenceDefinition(format="{SEQNUM:4}"))
    before = all_blobs_for(store, tenant_id)
    lost: list[int] = []

    def rival_rewrites_the_definition() -> None:  # the same definition again: a new ETag, the same counter
        if len(lost) < RIVAL_GIVES_UP:  # far beyond the budget: a store that ignored it would then succeed
            lost.append(1)
            store.put(tenant_id, "s1", SequenceDefinition(format="{SEQNUM:4}"))

    monkeypatch.setattr(autonumber, "CAS_BUDGET_S", 1.0)  # room for retries on a busy machine
    rival = on_conditional_writes(sequence_blob(tenant_id, "s1"), rival_rewrites_the_definition)
    with proxy.acting(rival), pytest.raises(SequenceBusy) as caught:
        racing.next(tenant_id, "s1", 1, None)
    assert caught.value.status == 503 and caught.value.code == "sequence_busy"
    assert caught.value.headers["Retry-After"] == "1"
    assert 1 < len(lost) < RIVAL_GIVES_UP and racing.retries == len(lost)  # retried each lost race, within the budget
    assert all_blobs_for(store, tenant_id) == before
    assert racing.next(tenant_id, "s1", 1, None).seq == [1000]  # the lost races consumed nothing


def test_deleting_the_tenant_deletes_its_sequences(services, store, tenant_id, azurite):
    services.registry.put_tenant(tenant_id, TenantIn())
    store.put(tenant_id, "s1", SequenceDefinition(format="{SEQNUM:4}"))
    services.registry.delete_tenant(tenant_id)
    assert all_blobs(azurite, REGISTRY, f"sequences/{tenant_id}/") == {}


# -- over HTTP ---------------------------------------------------------------------------------------


@pytest.fixture
def http_tenant(manage, tenant_id):
    key = manage.put(f"/manage/tenants/{tenant_id}", json={}).json()["api_key"]
    assert manage.put(f"/manage/tenants/{tenant_id}/sequences/invoice", json=INVOICE).status_code == 201
    return tenant_id, key


def test_http_next_and_manage(host, manage, http_tenant):
    tenant_id, key = http_tenant
    headers = {"authorization": f"Bearer {key}"}
    answer = httpx.post(f"{host}/autonumber/{tenant_id}/invoice/next", json={"count": 2}, headers=headers)
    assert answer.status_code == 200
    assert answer.json()["seq"] == [1000, 1001]
    assert answer.json()["values"][0] == f"INV-{datetime.now(UTC):%Y}-001000"
    assert httpx.post(f"{host}/autonumber/{tenant_id}/invoice/next", headers=headers).json()["seq"] == [1002]
    shown = manage.get(f"/manage/tenants/{tenant_id}/sequences/invoice").json()
    assert shown["next"] == 1003 and shown["format"] == INVOICE["format"]
    assert (
        manage.put(f"/manage/tenants/{tenant_id}/sequences/invoice", json={**INVOICE, "start": 10}).status_code == 409
    )
    assert manage.delete(f"/manage/tenants/{tenant_id}/sequences/invoice").status_code == 204
    assert manage.get(f"/manage/tenants/{tenant_id}/sequences/invoice").status_code == 404


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"json": {"count": 0}}, 422, "invalid_request"),
        ({"json": {"count": 1001}}, 422, "invalid_request"),
        ({"json": {"count": "two"}}, 422, "invalid_request"),
        ({"json": {"count": 1, "extra": 1}}, 422, "invalid_request"),
        ({"content": b"{nope", "headers": {"content-type": "application/json"}}, 400, "invalid_json"),
        ({"json": {}, "headers": {"idempotency-key": "x" * 201}}, 400, "invalid_idempotency_key"),
        # The one Idempotency-Key rule of every route (shared/core/idempotency.py): 8 or more token characters.
        ({"json": {}, "headers": {"idempotency-key": "1234567"}}, 400, "invalid_idempotency_key"),
        ({"json": {}, "headers": {"idempotency-key": "order 42 retry"}}, 400, "invalid_idempotency_key"),
        ({"json": {}, "path": "missing"}, 404, "unknown_sequence"),
        ({"json": {}, "path": "Bad_Id"}, 400, "invalid_id"),
        ({"json": {}, "key": "pck_wrong"}, 403, "forbidden"),
        ({"json": {}, "key": None}, 401, "missing_key"),
    ],
)
def test_http_bad_input(host, http_tenant, azurite, kwargs, status, code):
    tenant_id, key = http_tenant
    before = all_blobs(azurite, REGISTRY, f"sequences/{tenant_id}/")
    path = kwargs.pop("path", "invoice")
    token = kwargs.pop("key", key)
    headers = {**({"authorization": f"Bearer {token}"} if token else {}), **kwargs.pop("headers", {})}
    answer = httpx.post(f"{host}/autonumber/{tenant_id}/{path}/next", headers=headers, **kwargs)
    assert answer.status_code == status and answer.json()["error"] == code
    assert all_blobs(azurite, REGISTRY, f"sequences/{tenant_id}/") == before


@pytest.mark.parametrize(
    ("body", "points_at"),
    [
        ({"format": "INV-{COUNTER:4}"}, "{COUNTER:4}"),
        ({"format": "{RANDSTRING:7}{SEQNUM:4}"}, "RANDSTRING:7"),
        ({"format": "INV-{DATETIMEUTC:yyyy}"}, "SEQNUM"),
        ({"format": "{SEQNUM:4}", "reset": "weekly"}, "reset"),
        ({"format": "{SEQNUM:4}", "start": -1}, "start"),
    ],
)
def test_http_bad_definitions(manage, http_tenant, body, points_at):
    tenant_id, _ = http_tenant
    answer = manage.put(f"/manage/tenants/{tenant_id}/sequences/other", json=body)
    assert answer.status_code == 422 and points_at in answer.text
    assert manage.get(f"/manage/tenants/{tenant_id}/sequences/other").status_code == 404


# A client as documented: a 503 (busy, nothing consumed) is retried with the same Idempotency-Key.
CLIENT = """
import json, random, sys, time, uuid, httpx
base, tenant, key, numbers = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
got = []
with httpx.Client(headers={"authorization": "Bearer " + key}, timeout=60) as client:
    while len(got) < numbers:
        count = min(random.choice([1, 1, 2, 5]), numbers - len(got))
        request_key = uuid.uuid4().hex
        while True:
            answer = client.post(f"{base}/autonumber/{tenant}/invoice/next", json={"count": count},
                                 headers={"idempotency-key": request_key})
            if answer.status_code != 503:
                break
            time.sleep(float(answer.headers.get("retry-after", "1")))
        answer.raise_for_status()
        got.extend(zip(answer.json()["values"], answer.json()["seq"]))
print(json.dumps(got))
"""


def test_16_threads_and_4_processes_never_get_the_same_number(host, http_tenant):
    tenant_id, key = http_tenant
    per_client = 150  # 20 clients: 3,000 numbers
    results: list[tuple[str, int]] = []
    lock = threading.Lock()
    processes = [
        subprocess.Popen([sys.executable, "-c", CLIENT, host, tenant_id, key, str(per_client)], stdout=subprocess.PIPE)
        for _ in range(4)
    ]

    def thread_client():
        got = []
        with httpx.Client(headers={"authorization": f"Bearer {key}"}, timeout=60) as client:
            while len(got) < per_client:
                count = min(random.choice([1, 1, 2, 5]), per_client - len(got))
                request_key = uuid.uuid4().hex
                while True:
                    answer = client.post(
                        f"{host}/autonumber/{tenant_id}/invoice/next",
                        json={"count": count},
                        headers={"idempotency-key": request_key},
                    )
                    if answer.status_code != 503:
                        break
                    time.sleep(float(answer.headers.get("retry-after", "1")))
                assert answer.status_code == 200, answer.text
                got.extend(zip(answer.json()["values"], answer.json()["seq"], strict=True))
        with lock:
            results.extend(got)

    threads = [threading.Thread(target=thread_client) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for process in processes:
        out, _ = process.communicate(timeout=300)
        assert process.returncode == 0
        results.extend(tuple(pair) for pair in json.loads(out))
    values = [value for value, _ in results]
    seqs = sorted(seq for _, seq in results)
    assert len(results) == 3000
    assert len(set(values)) == 3000
    assert seqs == list(range(1000, 4000))


def test_azurite_stopped_midway_then_back(tmp_path):
    """Its own Azurite (on disk, fixed port) and local host; clients retry with the same Idempotency-Key."""
    port = free_port()
    azurite = start_azurite(port=port, location=tmp_path / "azurite")
    host_port = free_port()
    env = {
        **os.environ,
        **settings_env(azurite),
        "DEVHOST_FUNCTION_KEY": FUNCTION_KEY,
        "DEVHOST_MASTER_KEY": HOST_MASTER_KEY,
    }
    host = start_local_host(host_port, env)
    base = f"http://127.0.0.1:{host_port}/api"
    try:
        manage = httpx.Client(base_url=base, headers={"x-functions-key": FUNCTION_KEY}, timeout=30)
        key = manage.put("/manage/tenants/faults", json={}).json()["api_key"]
        assert manage.put("/manage/tenants/faults/sequences/invoice", json={"format": "{SEQNUM:6}"}).status_code == 201
        results: list[int] = []
        errors: list[int] = []
        lock = threading.Lock()
        stop = time.monotonic() + 8

        def client():
            with httpx.Client(headers={"authorization": f"Bearer {key}"}, timeout=30) as http:
                while time.monotonic() < stop:
                    request_key = uuid.uuid4().hex
                    while True:  # a failed request is retried with its key until it gets an answer
                        try:
                            answer = http.post(
                                f"{base}/autonumber/faults/invoice/next",
                                json={"count": 2},
                                headers={"idempotency-key": request_key},
                            )
                        except httpx.HTTPError:
                            time.sleep(0.2)
                            continue
                        if answer.status_code == 200:
                            with lock:
                                results.extend(answer.json()["seq"])
                            break
                        with lock:
                            errors.append(answer.status_code)
                        time.sleep(0.2)

        threads = [threading.Thread(target=client) for _ in range(6)]
        for thread in threads:
            thread.start()
        time.sleep(2)
        azurite.stop()
        # Down until requests have met the outage (the SDK's own retries can outlast a short one), then back.
        down_until = time.monotonic() + 30
        while not errors and time.monotonic() < down_until:
            time.sleep(0.2)
        azurite = start_azurite(port=port, location=tmp_path / "azurite")
        for thread in threads:
            thread.join(timeout=120)
        assert errors and set(errors) == {503}  # storage down: a clear 503, never a 500
        assert len(results) == len(set(results))
        assert sorted(results) == list(range(1000, 1000 + len(results)))  # and nothing skipped
        after = httpx.post(f"{base}/autonumber/faults/invoice/next", headers={"authorization": f"Bearer {key}"}).json()
        assert after["seq"] == [1000 + len(results)]
    finally:
        stop_local_host(host)
        azurite.stop()


def test_a_client_killed_midway_leaves_no_duplicate(host, http_tenant):
    tenant_id, key = http_tenant
    process = subprocess.Popen([sys.executable, "-c", CLIENT, host, tenant_id, key, "100000"], stdout=subprocess.PIPE)
    time.sleep(1.5)
    process.kill()
    process.wait()
    with httpx.Client(headers={"authorization": f"Bearer {key}"}) as client:
        later = [client.post(f"{host}/autonumber/{tenant_id}/invoice/next", json={"count": 3}).json() for _ in range(3)]
    seqs = [seq for answer in later for seq in answer["seq"]]
    assert len(set(seqs)) == 9 and seqs == sorted(seqs) and seqs[0] > 1000
