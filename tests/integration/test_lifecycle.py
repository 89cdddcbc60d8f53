"""Retention purge, delivery, data-subject requests and the audit trail, with a settable clock and Azurite."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest

from shared.core.clock import tag_time
from shared.lifecycle.delivery import SETTLE, Delivery
from shared.lifecycle.generations import Generations
from shared.lifecycle.subject_requests import SubjectRequests
from shared.registry.models import Dataset, TenantIn
from shared.storage.audit import SYSTEM
from shared.storage.blobs import AUDIT, RECORDS, STATE
from tests.factories import MASTER_KEY, all_blobs, variant

FORM_FIELDS = [
    {"name": "email", "type": "email", "required": True},
    {"name": "topic", "type": "choice", "options": ["sales", "support"], "personal": False},
]
SIGNIN_FIELDS = [
    {"name": "user_id", "type": "string", "required": True},
    {"name": "country", "type": "string", "personal": False},
]


# This module's own Azurite. A purge goes over every tenant in its store and asks the blob index once per dataset,
# which Azurite answers by scanning every blob it holds: on the session's, each purge here would also work through
# every tenant and blob the other tests left.
pytestmark = pytest.mark.own_azurite


@pytest.fixture
def tenant(services, tenant_id):
    services.registry.put_tenant(tenant_id, TenantIn())
    services.registry.put_dataset(tenant_id, "visits", Dataset.model_validate(variant(retention_days=14)))
    services.registry.put_dataset(
        tenant_id,
        "contact",
        Dataset.model_validate(
            variant(
                capability="webform",
                legal_basis="contract",
                retention_days=7,
                subject_field="email",
                fields=FORM_FIELDS,
            )
        ),
    )
    services.registry.put_dataset(
        tenant_id,
        "signins",
        Dataset.model_validate(
            variant(
                capability="geologin",
                legal_basis="legitimate_interest",
                retention_days=30,
                subject_field="user_id",
                fields=SIGNIN_FIELDS,
            )
        ),
    )
    return tenant_id


def capture(services, tenant, dataset, capability, values):
    return services.capture.capture(services.capture.resolve(tenant, dataset, capability), values).record


def visit(services, tenant, visitor="v1"):
    return capture(
        services, tenant, "visits", "pixel", {"page_url": "https://www.contoso.example/", "visitor": visitor}
    )


def form(services, tenant, email="jane@example.com"):
    return capture(services, tenant, "contact", "webform", {"email": email, "topic": "sales"})


def signin(services, tenant, user="u1"):
    return capture(services, tenant, "signins", "geologin", {"user_id": user, "country": "NO"})


def current(services, tenant):
    return Generations.read(services.registry, tenant)


def held(services_azurite, tenant):
    return {
        json.loads(body)["id"]: json.loads(body) for body in all_blobs(services_azurite, RECORDS, f"{tenant}/").values()
    }


def test_purge_deletes_exactly_what_expired_for_every_capability(services_azurite, services, clock, tenant):
    old = [visit(services, tenant), form(services, tenant), signin(services, tenant)]
    clock.advance(timedelta(days=6))
    fresh = [visit(services, tenant), form(services, tenant), signin(services, tenant)]
    clock.advance(timedelta(days=2))  # 8 days: the first form (7 days) expired, nothing else yet
    services.purger().run()
    assert set(held(services_azurite, tenant)) == {r.id for r in old + fresh} - {old[1].id}
    clock.advance(timedelta(days=7))  # 15 days: first visit (14) and second form expired
    services.purger().run()
    assert set(held(services_azurite, tenant)) == {old[2].id, fresh[0].id, fresh[2].id}
    clock.advance(timedelta(days=30))
    report = services.purger().run()
    assert held(services_azurite, tenant) == {}
    assert report.complete


def test_invariant_no_record_outlives_its_retention_plus_one_interval(services_azurite, services, clock, tenant):
    start = clock.now()
    for hour in range(0, 26, 5):  # captures every 5 hours for a day, then a purge every hour around expiry
        clock.set(start + timedelta(hours=hour, minutes=hour * 7 % 60))
        visit(services, tenant)
    for hour in range(24 * 14, 24 * 15 + 3):
        clock.set(start + timedelta(hours=hour, minutes=5))
        services.purger().run()
        for record in held(services_azurite, tenant).values():
            age = clock.now() - _parse(record["captured_at"])
            assert age <= timedelta(days=14, hours=1)
    assert held(services_azurite, tenant) == {}


def _parse(text):
    from datetime import datetime

    return datetime.fromisoformat(text)


def test_lowering_retention_applies_to_records_already_stored(services_azurite, services, clock, tenant):
    kept = visit(services, tenant)
    clock.advance(timedelta(days=5))
    newer = visit(services, tenant)
    services.registry.put_dataset(tenant, "visits", Dataset.model_validate(variant(retention_days=3)))
    clock.advance(timedelta(minutes=5))
    report = services.purger().run()
    assert set(held(services_azurite, tenant)) - {newer.id} == set()
    assert report.counts(tenant, "visits").deleted_over_retention == 1
    assert kept.id not in held(services_azurite, tenant)


def test_deleting_a_dataset_or_tenant_deletes_records(services_azurite, services, tenant):
    visit(services, tenant)
    form(services, tenant)
    services.registry.delete_dataset(tenant, "contact")
    assert {r["dataset"] for r in held(services_azurite, tenant).values()} == {"visits"}
    services.registry.delete_tenant(tenant)
    assert held(services_azurite, tenant) == {}


def test_a_purge_stopped_halfway_is_finished_by_the_next_run(services_azurite, services, clock, tenant):
    target = services.capture.resolve(tenant, "contact", "webform")
    for n in range(600):
        services.capture.capture(target, {"email": f"p{n}@example.com"})
    clock.advance(timedelta(days=8))
    first = services.purger(budget_s=0).run()  # out of time after the first batch
    assert not first.complete
    assert 0 < len(held(services_azurite, tenant)) < 600
    second = services.purger().run()
    assert second.complete
    assert held(services_azurite, tenant) == {}
    assert first.counts(tenant, "contact").deleted_expired + second.counts(tenant, "contact").deleted_expired == 600


def test_dry_run_deletes_nothing(services_azurite, services, clock, tenant):
    record = visit(services, tenant)
    clock.advance(timedelta(days=15))
    report = services.purger().run(dry_run=True)
    assert any(record.id in name for name in report.would_delete)
    assert record.id in held(services_azurite, tenant)


def test_purge_removes_expired_personal_state(services_azurite, services, clock, tenant):
    state = services.storage.container(STATE)
    expires = tag_time(clock.now() + timedelta(days=1))
    state.upload_blob(
        f"{tenant}/datasets/signins/last/x.json", b"{}", tags={"t": tenant, "d": "signins", "exp": expires}
    )
    state.upload_blob(f"{tenant}/sequences/invoice.json", b"{}")  # no personal data, no expiry: kept
    clock.advance(timedelta(days=2))
    services.purger().run()
    assert list(all_blobs(services_azurite, STATE, f"{tenant}/")) == [f"{tenant}/sequences/invoice.json"]


def test_each_run_is_audited_without_personal_data(services_azurite, services, clock, tenant):
    visit(services, tenant, visitor="visitor-jane")
    clock.advance(timedelta(days=15))
    services.purger().run()
    runs = [e for e in services.audit.entries(SYSTEM) if e["kind"] == "purge"]
    run = [e for e in runs if any(d["tenant"] == tenant for d in e["datasets"])][-1]
    (mine,) = [d for d in run["datasets"] if d["tenant"] == tenant and d["dataset"] == "visits"]
    assert mine["deleted_expired"] == 1 and "duration_s" in run
    assert b"visitor-jane" not in b"".join(all_blobs(services_azurite, AUDIT).values())


def test_oldest_remaining_age_is_reported(services, clock, tenant):
    visit(services, tenant)
    clock.advance(timedelta(hours=3))
    report = services.purger().run()
    assert report.counts(tenant, "visits").oldest_remaining_age_s == pytest.approx(3 * 3600, abs=1)


def test_sync_pages_in_capture_order_without_gaps_or_repeats_under_concurrent_captures(services, clock, tenant):
    delivery = Delivery(services.storage, services.audit, services.clock)
    target = services.capture.resolve(tenant, "visits", "pixel")
    written: list[str] = []
    lock = threading.Lock()

    def capture_many(count):
        for _ in range(count):
            record = services.capture.capture(target, {"page_url": "https://www.contoso.example/"}).record
            with lock:
                written.append(record.id)

    delivered: list[str] = []
    cursor = None
    for _round in range(4):
        writers = [threading.Thread(target=capture_many, args=(15,)) for _ in range(4)]
        for writer in writers:
            writer.start()
        page = delivery.page(tenant, "visits", cursor, 7, current(services, tenant))  # pages while captures land
        delivered += [r["id"] for r in page.records]
        cursor = page.next_cursor
        for writer in writers:
            writer.join()
        clock.advance(SETTLE + timedelta(seconds=1))
        while True:
            page = delivery.page(tenant, "visits", cursor, 7, current(services, tenant))
            delivered += [r["id"] for r in page.records]
            cursor = page.next_cursor
            if not page.more:
                break
    assert delivered == sorted(delivered)
    assert sorted(delivered) == sorted(written)


def test_unsettled_records_wait_for_the_next_page(services, clock, tenant):
    delivery = Delivery(services.storage, services.audit, services.clock)
    record = visit(services, tenant)
    assert delivery.page(tenant, "visits", None, 100, current(services, tenant)).records == []
    clock.advance(SETTLE + timedelta(seconds=1))
    assert [r["id"] for r in delivery.page(tenant, "visits", None, 100, current(services, tenant)).records] == [
        record.id
    ]


def test_ack_deletes_at_once_is_idempotent_and_is_counted_by_the_next_purge(services_azurite, services, clock, tenant):
    delivery = Delivery(services.storage, services.audit, services.clock)
    records = [visit(services, tenant) for _ in range(3)]
    clock.advance(timedelta(minutes=1))
    ids = [r.id for r in records[:2]]
    assert delivery.acknowledge(tenant, "visits", ids) == (2, 0)
    assert delivery.acknowledge(tenant, "visits", ids) == (0, 2)
    assert set(held(services_azurite, tenant)) == {records[2].id}
    clock.advance(timedelta(minutes=5))
    report = services.purger().run()
    assert report.counts(tenant, "visits").deleted_for_delivery == 2


def test_export_and_erase_one_subject_across_datasets(services_azurite, services, settings, tenant):
    requests = SubjectRequests(services.storage, services.registry, services.audit, MASTER_KEY)
    mine = [form(services, tenant, "Jane@Example.com"), form(services, tenant, "jane@example.com")]
    services.registry.put_dataset(
        tenant,
        "newsletter",
        Dataset.model_validate(
            variant(capability="webform", legal_basis="contract", subject_field="email", fields=FORM_FIELDS[:1])
        ),
    )
    mine.append(capture(services, tenant, "newsletter", "webform", {"email": "jane@example.com"}))
    other = form(services, tenant, "john@example.com")
    exported = requests.export(tenant, "JANE@example.com")
    assert exported["record_count"] == 3
    assert set(exported["datasets"]) == {"contact", "newsletter"}
    assert exported["datasets"]["contact"]["purpose"]
    erased = requests.erase(tenant, "jane@example.com")
    assert erased.records == 3
    assert requests.export(tenant, "jane@example.com")["record_count"] == 0
    assert set(held(services_azurite, tenant)) == {other.id}
    # The audit names each request by its random id (answered to the caller), never the person.
    entries = [e for e in services.audit.entries(tenant) if e["kind"] in ("export", "erasure")]
    assert [(e["kind"], e["request"]) for e in entries][:2] == [
        ("export", exported["request_id"]),
        ("erasure", erased.request_id),
    ]
    assert "jane@example.com" not in json.dumps(entries).lower()


def test_audit_chain_verifies_and_detects_tampering(services, tenant, clock):
    for _ in range(3):
        services.audit.append(tenant, "test", n=1)
    clock.advance(timedelta(days=1))
    services.audit.append(tenant, "test", n=2)
    assert services.audit.verify(tenant).ok
    blob = services.storage.container(AUDIT).get_blob_client(
        f"{tenant}/{clock.now() - timedelta(days=1):%Y-%m-%d}.jsonl"
    )
    lines = blob.download_blob().readall().decode().splitlines()
    edited = json.loads(lines[1])
    edited["n"] = 99
    lines[1] = json.dumps(edited, sort_keys=True, separators=(",", ":"))
    blob.delete_blob()
    blob.create_append_blob()
    blob.append_block(("\n".join(lines) + "\n").encode())
    result = services.audit.verify(tenant)
    assert not result.ok and "altered" in result.detail
    lines.pop(1)
    blob.delete_blob()
    blob.create_append_blob()
    blob.append_block(("\n".join(lines) + "\n").encode())
    assert "missing" in services.audit.verify(tenant).detail


def test_captures_are_counted_per_dataset_and_hour(services, clock, tenant):
    visit(services, tenant)
    visit(services, tenant)
    form(services, tenant)
    clock.advance(timedelta(hours=1))
    visit(services, tenant)  # a capture in a new hour writes the counts of the hour before
    counts = {(e["dataset"], e["count"]) for e in services.audit.entries(tenant) if e["kind"] == "captures"}
    assert counts == {("visits", 2), ("contact", 1)}


def test_a_purge_process_killed_midway_is_finished_by_the_next_run(services_azurite, services, tenant_id):
    """The real command, killed with SIGKILL while deleting; the next run leaves nothing expired."""
    import os
    import secrets
    import signal
    import subprocess
    import sys
    import time
    from concurrent.futures import ThreadPoolExecutor
    from datetime import UTC, datetime

    from tests.factories import ROOT, settings_env

    now = datetime.now(UTC)
    container = services.storage.container(RECORDS)
    stamp = (now - timedelta(days=20)).strftime("%Y%m%dT%H%M%S%fZ")
    tags = {
        "t": tenant_id,
        "d": "bulk",
        "cap": tag_time(now - timedelta(days=20)),
        "exp": tag_time(now - timedelta(days=6)),
    }
    names = [f"{tenant_id}/bulk/{stamp}-{secrets.token_hex(8)}.json" for _ in range(2000)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda name: container.upload_blob(name, b"{}", tags=tags), names))

    def remaining():
        return sum(1 for _ in container.list_blobs(name_starts_with=f"{tenant_id}/bulk/"))

    env = {**os.environ, **settings_env(services_azurite)}
    command = [sys.executable, "-m", "shared.purge"]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while remaining() == len(names) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    left = remaining()
    assert left < len(names)  # it had started deleting
    rerun = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert remaining() == 0
