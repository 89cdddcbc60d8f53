"""The async write path of the pixel (`CaptureStore.capture_async`, `resolve_async`) against a real Azurite: the
same record, blob name, tags, conditions, deadline and error mapping as the sync path, and no storage read on the
event loop."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta

import pytest
from azure.storage.blob import BlobServiceClient

from shared.capture.store import COMMIT_DEADLINE, CaptureStore, record_blob
from shared.core.errors import StorageUnavailable
from shared.registry.models import Dataset, TenantIn
from shared.registry.store import Registry
from shared.storage.aio_blobs import AsyncBlobs
from shared.storage.blobs import RECORDS, RETRY_TOTAL
from tests.factories import EXAMPLE, UNREACHABLE_STORAGE, all_blobs, run_on_own_loop, settings_from, settings_values

VALUES = {"page_url": "https://www.contoso.example/pricing", "visitor": "v-1", "ip": "203.0.113.77", "x": "dropped"}


class LateClock:
    """Now is `start` until the record is prepared, then past the commit deadline: the write took too long."""

    def __init__(self, start: datetime) -> None:
        self._times = iter([start])
        self._late = start + COMMIT_DEADLINE + timedelta(seconds=1)

    def now(self) -> datetime:
        return next(self._times, self._late)


class ThreadNotingRegistry(Registry):
    """Notes the thread of every storage read the registry makes."""

    reads: list[int]

    def _read(self, name, model):  # type: ignore[no-untyped-def]  # the parent's signature, as in Registry
        self.reads.append(threading.get_ident())
        return super()._read(name, model)


@pytest.fixture
def target(services, tenant_id):
    services.registry.put_tenant(tenant_id, TenantIn(name="Contoso"))
    services.registry.put_dataset(tenant_id, "pricing", Dataset.model_validate(EXAMPLE))
    return services.capture.resolve(tenant_id, "pricing", "pixel")


def blob(azurite, name):
    return BlobServiceClient.from_connection_string(azurite.connection_string).get_blob_client(RECORDS, name)


def test_the_async_capture_stores_what_the_sync_one_does(azurite, services, target, tenant_id):
    by_sync = services.capture.capture(target, VALUES, lenient=True).record
    before = services.storage.transport.sent
    by_aio = run_on_own_loop(services.capture.capture_async(target, VALUES, lenient=True)).record
    assert services.storage.transport.sent - before == 1  # one request, counted with the sync ones
    stored = all_blobs(azurite, RECORDS, f"{tenant_id}/")
    assert set(stored) == {record_blob(tenant_id, "pricing", by_sync.id), record_blob(tenant_id, "pricing", by_aio.id)}
    sync_doc, aio_doc = (json.loads(stored[record_blob(tenant_id, "pricing", r.id)]) for r in (by_sync, by_aio))
    assert {**sync_doc, "id": ""} == {**aio_doc, "id": ""}
    assert aio_doc["fields"] == {"page_url": VALUES["page_url"], "visitor": "v-1", "ip": "203.0.113.0"}
    sync_blob, aio_blob = (blob(azurite, record_blob(tenant_id, "pricing", r.id)) for r in (by_sync, by_aio))
    assert aio_blob.get_blob_tags() == sync_blob.get_blob_tags()
    assert aio_blob.get_blob_properties().content_settings.content_type == "application/json"


def test_an_existing_record_blob_is_kept_and_the_capture_counts_as_stored(azurite, services, target, tenant_id):
    # As when the SDK retried a Put Blob whose answer was lost: the blob is already there.
    record = services.capture.prepare(target, VALUES, lenient=True).record
    name = record_blob(tenant_id, "pricing", record.id)
    blob(azurite, name).upload_blob(b'{"first": "attempt"}')
    run_on_own_loop(services.capture.commit_async(target, record))
    assert all_blobs(azurite, RECORDS, f"{tenant_id}/") == {name: b'{"first": "attempt"}'}  # overwrite=False


@pytest.mark.parametrize("path", ["sync", "async"])
def test_a_write_past_the_commit_deadline_is_withdrawn_and_answered_503(azurite, services, target, tenant_id, path):
    late = CaptureStore(services.storage, services.registry, services.settings, LateClock(services.clock.now()))

    def capture() -> object:
        if path == "sync":
            return late.capture(target, VALUES, lenient=True)
        return run_on_own_loop(late.capture_async(target, VALUES, lenient=True))

    with pytest.raises(StorageUnavailable) as refused:
        capture()
    assert refused.value.status == 503 and refused.value.headers == {"Retry-After": "5"}
    assert all_blobs(azurite, RECORDS, f"{tenant_id}/") == {}


def test_unreachable_storage_on_the_aio_client_is_a_503_after_the_same_retries(services, target, tenant_id):
    unreachable = settings_from(settings_values(UNREACHABLE_STORAGE))
    aio = AsyncBlobs(unreachable, services.storage.transport)
    store = CaptureStore(services.storage, services.registry, services.settings, services.clock, aio=aio)
    before = services.storage.transport.sent
    with pytest.raises(StorageUnavailable) as refused:
        run_on_own_loop(store.capture_async(target, VALUES, lenient=True))
    assert refused.value.status == 503 and refused.value.headers == {"Retry-After": "5"}
    assert services.storage.transport.sent - before == 1 + RETRY_TOTAL
    assert not aio.open  # closed with its event loop


def test_a_cold_registry_is_read_in_a_worker_thread_and_a_warm_one_not_read(services, target, tenant_id):
    registry = ThreadNotingRegistry(services.storage, services.clock, services.settings.region, 60)
    registry.reads = []
    store = CaptureStore(services.storage, registry, services.settings, services.clock)

    async def resolve() -> tuple[int, str]:
        found = await store.resolve_async(tenant_id, "pricing", "pixel")
        return threading.get_ident(), found.dataset.id

    loop_thread, dataset = run_on_own_loop(resolve())
    assert dataset == "pricing"
    assert len(registry.reads) == 2 and loop_thread not in registry.reads  # tenant and dataset, off the loop
    run_on_own_loop(resolve())
    assert len(registry.reads) == 2  # from the cache


def test_a_new_instances_first_resolve_reads_tenant_dataset_and_containers_side_by_side(
    azurite, services, target, tenant_id
):
    """A cold start: the containers' check (one listing) and the two registry reads go out together, the reads
    not waiting for the check, and the capture that follows needs no further request before its write."""
    from shared.storage.blobs import Storage
    from tests.factories import settings_for

    fresh = Storage.from_settings(settings_for(azurite))
    registry = ThreadNotingRegistry(fresh, services.clock, services.settings.region, 60)
    registry.reads = []
    store = CaptureStore(fresh, registry, services.settings, services.clock)
    found = run_on_own_loop(store.resolve_async(tenant_id, "pricing", "pixel"))
    assert found.dataset.id == "pricing" and found.tenant.id == tenant_id
    assert fresh.transport.sent == 3 and fresh.ready  # list containers, tenant, dataset
    assert len(set(registry.reads)) == 2  # two worker threads: the reads side by side


def test_a_read_from_a_container_that_does_not_exist_is_not_found_not_an_error(azurite):
    from shared.storage.blobs import Storage
    from tests.factories import settings_for

    fresh = Storage.from_settings(settings_for(azurite))
    assert fresh.read_json("no-such-container", "x.json") == (None, None)
    assert not fresh.ready  # a read makes no container


def test_the_counts_of_an_hour_reach_the_audit_trail_from_async_captures(services, target, tenant_id, clock):
    run_on_own_loop(services.capture.capture_async(target, VALUES, lenient=True))
    clock.advance(timedelta(hours=1))
    run_on_own_loop(services.capture.capture_async(target, VALUES, lenient=True))
    counted = [entry for entry in services.audit.entries(tenant_id) if entry.get("kind") == "captures"]
    assert [(entry["hour"], entry["count"]) for entry in counted] == [("2026-11-23T10:00Z", 1)]
