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
from tests.factories import (
    EXAMPLE,
    UNREACHABLE_STORAGE,
    all_blobs,
    in_new_interpreter,
    run_on_own_loop,
    settings_env,
    settings_from,
    settings_values,
)

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


def test_a_new_instances_first_resolve_reads_tenant_and_dataset_side_by_side_and_checks_no_container(
    azurite, services, target, tenant_id
):
    """A cold start: the two registry reads go out together, and nothing else; the containers' check is not
    made (the capture's write finds them, test below)."""
    from shared.storage.blobs import Storage
    from tests.factories import settings_for

    fresh = Storage.from_settings(settings_for(azurite))
    registry = ThreadNotingRegistry(fresh, services.clock, services.settings.region, 60)
    registry.reads = []
    store = CaptureStore(fresh, registry, services.settings, services.clock)
    found = run_on_own_loop(store.resolve_async(tenant_id, "pricing", "pixel"))
    assert found.dataset.id == "pricing" and found.tenant.id == tenant_id
    assert fresh.transport.sent == 2 and not fresh.ready  # tenant, dataset; no listing of containers
    assert len(set(registry.reads)) == 2  # two worker threads: the reads side by side


def test_sixteen_first_requests_at_once_on_a_new_instance_read_the_tenant_and_dataset_once(
    azurite, services, target, tenant_id
):
    """A new instance takes up to 16 requests at once (the Bicep's concurrency): they share the two reads."""
    import asyncio

    from shared.storage.blobs import Storage
    from tests.factories import settings_for

    fresh = Storage.from_settings(settings_for(azurite))
    store = CaptureStore(fresh, Registry(fresh, services.clock, "eu", 60), services.settings, services.clock)

    async def sixteen() -> list[str]:
        found = await asyncio.gather(*(store.resolve_async(tenant_id, "pricing", "pixel") for _ in range(16)))
        return [target.dataset.id for target in found]

    assert run_on_own_loop(sixteen()) == ["pricing"] * 16
    assert fresh.transport.sent == 2  # the tenant and the dataset, once


def test_a_new_instances_first_capture_imports_the_aio_sdk_while_it_reads(azurite, services, target, tenant_id):
    """In a new interpreter (this one has the SDK loaded), as a new instance's first pixel hit: after the cold
    resolve, before any write, the aio SDK the write needs is imported (the import overlapped the registry reads),
    and the capture then needs its write alone."""
    probe = (
        "import sys\n"
        "from shared.services import get_services; from tests.factories import run_on_own_loop\n"
        "services = get_services()\n"
        "assert 'azure.storage.blob.aio' not in sys.modules\n"
        f"target = run_on_own_loop(services.capture.resolve_async({tenant_id!r}, 'pricing', 'pixel'))\n"
        "print('azure.storage.blob.aio' in sys.modules, services.storage.transport.sent)\n"
        "values = {'page_url': 'https://www.contoso.example/pricing', 'visitor': 'v-1'}\n"
        "run_on_own_loop(services.capture.capture_async(target, values, lenient=True))\n"
        "print(services.storage.transport.sent)\n"
    )
    assert in_new_interpreter(settings_env(azurite), probe) == ["True", "2", "3"]  # imported; the 2 reads; and 1 write


def test_the_aio_sdk_is_never_imported_on_the_event_loop_even_with_the_registry_already_cached(
    azurite, services, target, tenant_id
):
    """In a new interpreter: the registry warmed by a sync read (no cold resolve to start the import), then an async
    capture: the aio SDK (~20 ms) is imported in a worker thread, not on the loop that every request shares."""
    probe = (
        "import sys, threading, asyncio\n"
        "importers = []\n"
        "sys.addaudithook(lambda event, args: event == 'import' and args[0].startswith('azure.storage.blob.aio.')"
        " and importers.append(threading.get_ident()))\n"
        "from shared.services import get_services; from tests.factories import run_on_own_loop\n"
        "services = get_services()\n"
        f"target = services.capture.resolve({tenant_id!r}, 'pricing', 'pixel')\n"
        "values = {'page_url': 'https://www.contoso.example/pricing', 'visitor': 'v-1'}\n"
        "async def capture():\n"
        "    await services.capture.capture_async(target, values, lenient=True)\n"
        "    return threading.get_ident()\n"
        "loop_thread = run_on_own_loop(capture())\n"
        "print(len(importers) > 0, loop_thread in importers)\n"
    )
    assert in_new_interpreter(settings_env(azurite), probe) == [
        "True",
        "False",
    ]  # imported, and not on the loop's thread


@pytest.mark.own_azurite
def test_an_async_write_whose_container_is_missing_makes_the_containers_and_is_stored(
    services_azurite, services, target, tenant_id
):
    """No check before the first write: a container that is not there (a fresh Azurite) is made when the write
    finds it missing, and the write is sent once more; the record's and a form marker's alike."""
    from shared.storage.blobs import STATE, Storage, index_tags
    from tests.factories import settings_for

    raw = BlobServiceClient.from_connection_string(services_azurite.connection_string)
    raw.delete_container(RECORDS)
    raw.delete_container(STATE)
    fresh = Storage.from_settings(settings_for(services_azurite))
    store = CaptureStore(fresh, services.registry, services.settings, services.clock)
    record = run_on_own_loop(store.capture_async(target, VALUES, lenient=True)).record
    assert fresh.ready  # made once the write found its container missing
    stored = json.loads(blob(services_azurite, record_blob(tenant_id, "pricing", record.id)).download_blob().readall())
    assert stored["id"] == record.id
    raw.delete_container(STATE)
    fresher = Storage.from_settings(settings_for(services_azurite))
    store = CaptureStore(fresher, services.registry, services.settings, services.clock)
    tags = index_tags(tenant_id, "pricing", expires=record.expires_at)
    run_on_own_loop(store.upload_new_async(STATE, f"{tenant_id}/marker.json", b"{}", tags))
    assert raw.get_blob_client(STATE, f"{tenant_id}/marker.json").download_blob().readall() == b"{}"


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
