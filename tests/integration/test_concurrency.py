"""One host at the per-instance concurrency the Bicep deploys: the shared objects of the hot path stay right.

The host runs with PYTHON_THREADPOOL_THREAD_COUNT at the Bicep's perInstanceConcurrency, and that many clients send
at once. What is checked is the result, never the timing: every capture stored exactly once, the capture counts in
the audit trail adding up to what was stored, the registry cache answering right for known, unknown and just-deleted
datasets, the form rate limiter admitting its limit and no more than its refill allows, and no request failing (the
storage connection pool is shared by all the threads).
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from bench.concurrency import bicep_concurrency
from devenv.azurite import Azurite, free_port
from devenv.demo import demo_dataset, demo_form_dataset
from devenv.local_host import start_local_host, stop_local_host
from tests.factories import BROWSER_UA, FUNCTION_KEY, HOST_MASTER_KEY, all_blobs, settings_env

LEVEL = bicep_concurrency()
ORIGIN = "https://www.contoso.example"
PAGE = ORIGIN + "/pricing"
SUBMISSION = {"email": "jane.roe@example.com", "name": "Jane Roe", "topic": "support", "rating": 9, "consent": "yes"}
PER_CLIENT = 6
RATE_PER_MINUTE = 40


def start(azurite: Azurite, form_rate_per_minute: int) -> tuple[Any, str]:
    port = free_port()
    env = {
        **os.environ,
        **settings_env(azurite),
        "DEVHOST_FUNCTION_KEY": FUNCTION_KEY,
        "DEVHOST_MASTER_KEY": HOST_MASTER_KEY,
        "PYTHON_THREADPOOL_THREAD_COUNT": str(LEVEL),
        "PACKCLOUD_FORM_RATE_PER_MINUTE": str(form_rate_per_minute),
    }
    return start_local_host(port, env), f"http://127.0.0.1:{port}/api"


@pytest.fixture(scope="module")
def busy_host(azurite: Azurite) -> Iterator[str]:
    """A host without a form limit: every client shares one address, and the limit has its own host below."""
    process, api = start(azurite, 0)
    yield api
    stop_local_host(process)


@pytest.fixture(scope="module")
def limited_host(azurite: Azurite) -> Iterator[str]:
    process, api = start(azurite, RATE_PER_MINUTE)
    yield api
    stop_local_host(process)


def new_tenant(api: str) -> str:
    tenant = "cc" + uuid.uuid4().hex[:10]
    with httpx.Client(base_url=api, headers={"x-functions-key": FUNCTION_KEY}, timeout=30) as manage:
        assert manage.put(f"/manage/tenants/{tenant}", json={}).status_code == 201
        assert manage.put(f"/manage/tenants/{tenant}/datasets/pricing", json=demo_dataset(ORIGIN)).status_code == 201
        assert (
            manage.put(f"/manage/tenants/{tenant}/datasets/contact", json=demo_form_dataset(ORIGIN)).status_code == 201
        )
    return tenant


def at_once(calls: list[Callable[[httpx.Client], httpx.Response]], api: str) -> list[httpx.Response]:
    """The calls, LEVEL at a time, each client thread with its own connection, all released together."""
    barrier = threading.Barrier(LEVEL)
    local = threading.local()

    def run(call: Callable[[httpx.Client], httpx.Response]) -> httpx.Response:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=api, headers={"user-agent": BROWSER_UA}, timeout=60)
            barrier.wait()
        response: httpx.Response = call(local.client)
        return response

    with ThreadPoolExecutor(LEVEL) as pool:
        return list(pool.map(run, calls))


def records(azurite: Azurite, tenant: str, dataset: str) -> list[dict[str, Any]]:
    return [json.loads(body) for body in all_blobs(azurite, "records", f"{tenant}/{dataset}/").values()]


def test_the_host_runs_at_the_bicep_concurrency():
    assert LEVEL >= 4  # the chosen level; a test at 1 would check nothing concurrent


def test_every_capture_is_stored_exactly_once_and_counted(busy_host, azurite):
    tenant = new_tenant(busy_host)
    visitors = [uuid.uuid4().hex for _ in range(LEVEL * PER_CLIENT)]
    keys = [uuid.uuid4().hex for _ in range(LEVEL * PER_CLIENT // 2)]

    def hit(visitor: str) -> Callable[[httpx.Client], httpx.Response]:
        params = {"page_url": PAGE, "visitor": visitor}
        return lambda client: client.get(f"/px/{tenant}/pricing", params=params, headers={"referer": ORIGIN + "/"})

    def post(key: str) -> Callable[[httpx.Client], httpx.Response]:
        headers = {"origin": ORIGIN, "idempotency-key": key}
        return lambda client: client.post(f"/forms/{tenant}/contact", json=SUBMISSION, headers=headers)

    # Each form key is sent twice, the two copies at the same time: one is stored, the other is answered the same
    # id or, while the first is being stored, a 409 to retry; the retry then gets the same id.
    calls = [hit(v) for v in visitors] + [post(k) for k in keys for _ in range(2)]
    answers = at_once(calls, busy_host)

    assert Counter(answer.status_code for answer in answers[: len(visitors)]) == {200: len(visitors)}
    forms = answers[len(visitors) :]
    assert {answer.status_code for answer in forms} <= {201, 409}
    pairs = [(forms[i], forms[i + 1]) for i in range(0, len(forms), 2)]
    assert all(201 in (first.status_code, second.status_code) for first, second in pairs)
    first_ids = [next(a.json()["id"] for a in pair if a.status_code == 201) for pair in pairs]
    assert all(
        a.json()["id"] == i for pair, i in zip(pairs, first_ids, strict=True) for a in pair if a.status_code == 201
    )
    assert all(a.json()["error"] == "submission_in_progress" for pair in pairs for a in pair if a.status_code == 409)
    retried = at_once([post(k) for k in keys], busy_host)
    assert [(answer.status_code, answer.json()["id"]) for answer in retried] == [(201, i) for i in first_ids]
    assert len(set(first_ids)) == len(keys)

    hits = records(azurite, tenant, "pricing")
    assert sorted(record["fields"]["visitor"] for record in hits) == sorted(visitors)
    submissions = records(azurite, tenant, "contact")
    assert sorted(record["id"] for record in submissions) == sorted(first_ids)

    # The purge run appends the counts kept in memory to the audit trail: they add up to what was stored.
    run = httpx.post(
        busy_host.removesuffix("/api") + "/admin/functions/retention_purge?wait=true",
        headers={"x-functions-key": HOST_MASTER_KEY},
        timeout=300,
    )
    assert run.status_code == 200
    audit = all_blobs(azurite, "audit", f"{tenant}/")
    entries = [json.loads(line) for body in audit.values() for line in body.decode().splitlines()]
    counted = Counter()
    for entry in entries:
        if entry["kind"] == "captures":
            counted[entry["dataset"]] += entry["count"]
    assert counted == {"pricing": len(visitors), "contact": len(keys)}


def test_the_registry_cache_answers_right_under_concurrency(busy_host, azurite):
    tenant = new_tenant(busy_host)
    headers = {"origin": ORIGIN}
    # A cold cache, read by every thread at once, for a known dataset and for unknown ones.
    datasets = ["contact", "nosuchform"] * (LEVEL * PER_CLIENT // 2)

    def post(dataset: str) -> Callable[[httpx.Client], httpx.Response]:
        return lambda client: client.post(f"/forms/{tenant}/{dataset}", json=SUBMISSION, headers=headers)

    answers = at_once([post(d) for d in datasets], busy_host)
    expected = [201 if d == "contact" else 404 for d in datasets]
    assert [answer.status_code for answer in answers] == expected
    assert len(records(azurite, tenant, "contact")) == datasets.count("contact")

    # Deleted through this instance: every request after the deletion is refused at once, whatever the cache
    # was doing while it happened.
    with httpx.Client(base_url=busy_host, headers={"x-functions-key": FUNCTION_KEY}, timeout=60) as manage:
        assert manage.delete(f"/manage/tenants/{tenant}/datasets/contact").status_code in (200, 204)
    answers = at_once([post("contact") for _ in range(LEVEL * 2)], busy_host)
    assert {answer.status_code for answer in answers} == {404}
    assert records(azurite, tenant, "contact") == []


def test_the_form_limit_admits_its_limit_under_concurrency(limited_host):
    tenant = new_tenant(limited_host)
    # An unparsable body: the limit is taken before parsing, and nothing is stored whatever the answer.
    send = [
        lambda client: client.post(
            f"/forms/{tenant}/contact", content=b"{", headers={"origin": ORIGIN, "content-type": "application/json"}
        )
    ] * (RATE_PER_MINUTE * 2)
    started = time.monotonic()
    answers = at_once(send, limited_host)
    elapsed = time.monotonic() - started
    statuses = Counter(answer.status_code for answer in answers)
    assert set(statuses) == {400, 429}
    # The bucket holds a minute's worth and refills at RATE_PER_MINUTE / 60 a second: at least the limit gets
    # through, and no more than what refilled while the requests were under way.
    refilled = int(elapsed * RATE_PER_MINUTE / 60) + 1
    assert RATE_PER_MINUTE <= statuses[400] <= RATE_PER_MINUTE + refilled


def test_a_read_that_started_before_a_change_does_not_cache_the_old_document(services, clock, proxy):
    """A request reads a dataset while another, on the same instance, changes it: the change stays in the cache."""
    from shared.registry.models import Dataset, TenantIn
    from shared.registry.store import Registry, dataset_blob
    from shared.storage.blobs import REGISTRY, Storage
    from tests.integration.storage_proxy import Seen, settings_through

    paused, resume = threading.Event(), threading.Event()

    def slow_answer(request: Seen) -> None:
        """Holds storage's answer to the first read of the dataset back until the change is written."""
        read = request.method == "GET" and request.blob == f"{REGISTRY}/{dataset_blob(tenant, 'contact')}"
        if read and not paused.is_set():
            paused.set()
            resume.wait(30)

    registry = Registry(Storage.from_settings(settings_through(services.settings, proxy)), clock, "eu", 30)
    tenant = "cr" + uuid.uuid4().hex[:10]
    registry.put_tenant(tenant, TenantIn())
    first = demo_form_dataset(ORIGIN)
    registry.put_dataset(tenant, "contact", Dataset.model_validate(first))
    registry.forget()
    seen: list[Any] = []
    reader = threading.Thread(target=lambda: seen.append(registry.get_dataset(tenant, "contact")), daemon=True)
    with proxy.acting(after=slow_answer):
        reader.start()
        assert paused.wait(30)
        changed = {**first, "purpose": "Answer enquiries sent from the contact page, and the support page"}
        registry.put_dataset(tenant, "contact", Dataset.model_validate(changed))
        resume.set()
        reader.join(30)
    assert seen[0].purpose == first["purpose"]  # its read began before the change
    cached = registry.get_dataset(tenant, "contact")
    assert cached is not None and cached.purpose == changed["purpose"]
