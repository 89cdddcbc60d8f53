"""The capture store and the registry against a real Azurite."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from shared.core.errors import Misdirected, NotFound, Unprocessable
from shared.core.keys import api_key_matches, subject_hash
from shared.registry.models import Dataset, TenantIn
from shared.storage.blobs import RECORDS, tag_query
from tests.factories import EU_URL, EXAMPLE, all_blobs, blob_states, variant


@pytest.fixture
def pixel_target(services, tenant_id):
    services.registry.put_tenant(tenant_id, TenantIn(name="Contoso"))
    services.registry.put_dataset(tenant_id, "pricing", Dataset.model_validate(EXAMPLE))
    return services.capture.resolve(tenant_id, "pricing", "pixel")


def records(azurite, tenant_id):
    return {name: json.loads(body) for name, body in all_blobs(azurite, RECORDS, f"{tenant_id}/").items()}


def test_capture_keeps_only_declared_fields(azurite, services, pixel_target, tenant_id, clock):
    values = {
        "page_url": "https://www.contoso.example/pricing",
        "visitor": "v-123",
        "ip": "203.0.113.77",
        "email": "jane@example.com",
        "shoe_size": "44",
    }
    captured = services.capture.capture(pixel_target, values)
    assert captured.dropped_fields == ("email", "shoe_size")
    stored = records(azurite, tenant_id)
    assert list(stored) == [f"{tenant_id}/pricing/{captured.record.id}.json"]
    record = next(iter(stored.values()))
    assert record["fields"] == {
        "page_url": "https://www.contoso.example/pricing",
        "visitor": "v-123",
        "ip": "203.0.113.0",
    }
    assert record["dropped_fields"] == 2
    assert "jane@example.com" not in json.dumps(record) and "44" not in json.dumps(record["fields"])
    assert record["captured_at"].startswith("2026-11-23T10:00:00")
    assert record["expires_at"].startswith("2026-12-07T10:00:00")


def test_capture_is_one_storage_request_and_reads_nothing(services, pixel_target):
    before = services.storage.transport.sent
    for _ in range(5):
        target = services.capture.resolve(pixel_target.tenant.id, "pricing", "pixel")
        services.capture.capture(target, {"page_url": "https://www.contoso.example/"})
    assert services.storage.transport.sent - before == 5


def test_record_tags_find_expiry_and_subject_without_listing(services, pixel_target, tenant_id, settings, clock):
    services.capture.capture(pixel_target, {"page_url": "https://www.contoso.example/", "visitor": "Visitor-A"})
    clock.advance(timedelta(days=1))
    later = services.capture.capture(pixel_target, {"page_url": "https://www.contoso.example/", "visitor": "b"})
    wanted = subject_hash(settings.master_key.get_secret_value(), tenant_id, "visitor-a")
    by_subject = list(services.storage.find_by_tags(RECORDS, tag_query(tenant=tenant_id, subject=wanted)))
    assert len(by_subject) == 1 and later.record.id not in by_subject[0]
    expired = list(services.storage.find_by_tags(RECORDS, f"\"t\" = '{tenant_id}' AND \"exp\" <= '20261207T100000Z'"))
    assert len(expired) == 1


def test_subject_value_never_appears_in_names_or_tags(azurite, services, pixel_target, tenant_id):
    services.capture.capture(pixel_target, {"page_url": "https://www.contoso.example/", "visitor": "secret-visitor"})
    client = services.storage.container(RECORDS)
    for blob in client.list_blobs(name_starts_with=f"{tenant_id}/", include=["tags"]):
        assert "secret-visitor" not in blob.name
        assert all("secret-visitor" not in value for value in (blob.tags or {}).values())


def test_strict_capture_lists_every_failing_field_and_stores_nothing(azurite, services, pixel_target, tenant_id):
    with pytest.raises(Unprocessable) as caught:
        services.capture.capture(pixel_target, {"visitor": "x" * 65, "ip": "not-an-ip"})
    fields = {problem["field"] for problem in caught.value.body()["errors"]}
    assert fields == {"page_url", "visitor", "ip"}
    assert "x" * 65 not in json.dumps(caught.value.body())
    assert records(azurite, tenant_id) == {}


def test_lenient_capture_leaves_out_invalid_optional_fields(azurite, services, pixel_target, tenant_id):
    services.capture.capture(pixel_target, {"page_url": "https://www.contoso.example/", "ip": "bogus"}, lenient=True)
    (record,) = records(azurite, tenant_id).values()
    assert record["fields"] == {"page_url": "https://www.contoso.example/"}


def test_tenant_homed_elsewhere_is_misdirected(services, tenant_id, azurite):
    services.registry.put_tenant(tenant_id, TenantIn(region="us"))
    with pytest.raises(Misdirected) as caught:
        services.capture.resolve(tenant_id, "pricing", "pixel")
    assert caught.value.status == 421
    assert caught.value.body()["region"] == "us"
    assert records(azurite, tenant_id) == {}


def test_unknown_tenant_dataset_or_capability(services, pixel_target, tenant_id):
    with pytest.raises(NotFound):
        services.capture.resolve("nobody-here", "pricing", "pixel")
    with pytest.raises(NotFound):
        services.capture.resolve(tenant_id, "missing", "pixel")
    with pytest.raises(NotFound):
        services.capture.resolve(tenant_id, "pricing", "webform")


def test_registry_cache_serves_reads_without_storage(services, pixel_target, tenant_id):
    before = services.storage.transport.sent
    for _ in range(10):
        assert services.registry.get_tenant(tenant_id) is not None
        assert services.registry.get_dataset(tenant_id, "pricing") is not None
        assert services.registry.get_tenant("never-created") is None
    assert services.storage.transport.sent - before <= 1  # only the first look-up of the absent tenant


class SlowRegistry:
    """A registry whose storage reads take 50 ms and are counted (made in the test, from the real class)."""

    @staticmethod
    def build(services, fail: bool = False):
        import threading
        import time

        from shared.core.errors import StorageUnavailable
        from shared.registry.store import Registry

        class Slow(Registry):
            reads = 0
            counting = threading.Lock()

            def _read(self, name, model):  # type: ignore[no-untyped-def]  # the parent's signature
                with Slow.counting:
                    Slow.reads += 1
                time.sleep(0.05)  # every request below asks while the first read is under way
                if fail:
                    raise StorageUnavailable("storage is unavailable, retry later")
                return super()._read(name, model)

        return Slow(services.storage, services.clock, services.settings.region, 60)


def test_requests_that_miss_the_cache_at_once_read_the_document_once_and_share_it(services, pixel_target, tenant_id):
    """A cold start, or an entry's expiry, at the Bicep's concurrency of 16: one read, not sixteen."""
    import threading

    registry = SlowRegistry.build(services)
    barrier, found = threading.Barrier(16), []

    def request() -> None:
        barrier.wait()
        found.append(registry.get_dataset(tenant_id, "pricing"))

    threads = [threading.Thread(target=request) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert type(registry).reads == 1
    assert len(found) == 16 and all(doc == found[0] for doc in found) and found[0].id == "pricing"
    assert registry.get_dataset(tenant_id, "pricing") == found[0] and type(registry).reads == 1  # cached


def test_when_the_one_read_fails_every_request_waiting_for_it_gets_its_error_at_once(services, pixel_target, tenant_id):
    """Storage down: the fifteen that waited answer 503 with the first, none tries again in turn (each try waits for
    the storage timeouts and retries), and the next request after them reads again."""
    import threading

    from shared.core.errors import StorageUnavailable

    registry = SlowRegistry.build(services, fail=True)
    barrier, errors = threading.Barrier(16), []

    def request() -> None:
        barrier.wait()
        try:
            registry.get_tenant(tenant_id)
        except StorageUnavailable as error:
            errors.append(error.status)

    threads = [threading.Thread(target=request) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [503] * 16 and type(registry).reads == 1
    with pytest.raises(StorageUnavailable):
        registry.get_tenant(tenant_id)
    assert type(registry).reads == 2  # not cached: the next request reads


def test_cache_expires_so_other_instances_see_changes(settings, clock, tenant_id):
    from shared.services import Services

    writer = Services.build(settings.model_copy(update={"registry_cache_ttl_seconds": 0}), clock)
    reader = Services.build(settings.model_copy(update={"registry_cache_ttl_seconds": 0}), clock)
    writer.registry.put_tenant(tenant_id, TenantIn(name="first"))
    assert reader.registry.get_tenant(tenant_id).name == "first"
    writer.registry.put_tenant(tenant_id, TenantIn(name="second"))
    assert reader.registry.get_tenant(tenant_id).name == "second"


def test_new_tenant_key_is_kept_only_as_hash(azurite, services, tenant_id):
    tenant, key = services.registry.put_tenant(tenant_id, TenantIn())
    assert key and api_key_matches(key, tenant.api_key_sha256)
    stored = all_blobs(azurite, "registry", f"tenants/{tenant_id}")
    assert key not in b"".join(stored.values()).decode()
    again, second_key = services.registry.put_tenant(tenant_id, TenantIn(name="renamed"))
    assert second_key is None and again.api_key_sha256 == tenant.api_key_sha256


def test_region_of_a_tenant_cannot_change(services, tenant_id):
    services.registry.put_tenant(tenant_id, TenantIn(region="eu"))
    with pytest.raises(Exception, match="region"):
        services.registry.put_tenant(tenant_id, TenantIn(region="br"))


def test_deleting_a_dataset_deletes_its_records_only(azurite, services, pixel_target, tenant_id):
    services.registry.put_dataset(tenant_id, "other", Dataset.model_validate(variant()))
    other = services.capture.resolve(tenant_id, "other", "pixel")
    services.capture.capture(pixel_target, {"page_url": "https://www.contoso.example/"})
    services.capture.capture(other, {"page_url": "https://www.contoso.example/"})
    assert services.registry.delete_dataset(tenant_id, "pricing")
    assert [name.split("/")[1] for name in records(azurite, tenant_id)] == ["other"]
    assert services.registry.get_dataset(tenant_id, "pricing") is None
    assert not services.registry.delete_dataset(tenant_id, "pricing")


def test_deleting_a_tenant_deletes_everything_it_had(azurite, services, pixel_target, tenant_id):
    for _ in range(3):
        services.capture.capture(pixel_target, {"page_url": "https://www.contoso.example/"})
    assert services.registry.delete_tenant(tenant_id)
    assert records(azurite, tenant_id) == {}
    assert all_blobs(azurite, "registry", f"datasets/{tenant_id}/") == {}
    assert services.registry.get_tenant(tenant_id) is None


def test_misdirected_answer_names_the_home_region_url(services, tenant_id, settings):
    services.registry.put_tenant(tenant_id, TenantIn(region="eu"))
    other_region = settings.model_copy(update={"region": "us"})
    from shared.capture.store import CaptureStore

    store = CaptureStore(services.storage, services.registry, other_region, services.clock)
    with pytest.raises(Misdirected) as caught:
        store.resolve(tenant_id, "x1", "pixel")
    assert caught.value.body()["base_url"] == EU_URL


def test_deleting_removes_the_state_kept_for_tenant_and_dataset(azurite, services, pixel_target, tenant_id):
    from shared.registry.store import dataset_state_prefix, sequence_prefix, tenant_state_prefix
    from shared.storage.blobs import REGISTRY, STATE

    state = services.storage.container(STATE)
    state.upload_blob(dataset_state_prefix(tenant_id, "pricing") + "marker.json", b"{}")
    state.upload_blob(tenant_state_prefix(tenant_id) + "other/marker.json", b"{}")
    services.storage.container(REGISTRY).upload_blob(sequence_prefix(tenant_id) + "invoice.json", b"{}")
    services.registry.delete_dataset(tenant_id, "pricing")
    assert list(all_blobs(azurite, STATE, f"{tenant_id}/")) == [f"{tenant_id}/other/marker.json"]
    services.registry.delete_tenant(tenant_id)
    assert all_blobs(azurite, STATE, f"{tenant_id}/") == {}
    assert all_blobs(azurite, REGISTRY, sequence_prefix(tenant_id)) == {}


def test_blob_states_shows_every_change_the_nothing_changed_checks_rely_on(azurite, tenant_id):
    """The tests' `blob_states` lists, never downloads: a rewrite with the same bytes, new tags, new metadata,
    a new blob and a deletion must each still show."""
    from azure.storage.blob import BlobServiceClient

    container = BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client("probes")
    if not container.exists():
        container.create_container()
    name = f"{tenant_id}/probe.json"
    container.upload_blob(name, b"{}", overwrite=True, tags={"t": tenant_id})
    changes = [
        lambda: container.upload_blob(name, b"{}", overwrite=True, tags={"t": tenant_id}),
        lambda: container.get_blob_client(name).set_blob_tags({"t": tenant_id, "exp": "x"}),
        lambda: container.get_blob_client(name).set_blob_metadata({"k": "v"}),
        lambda: container.upload_blob(f"{tenant_id}/other.json", b"{}"),
        lambda: container.delete_blob(name),
    ]

    def states():
        return blob_states(azurite, ("probes",), within=(tenant_id,))

    for change in changes:
        before = states()
        assert states() == before  # listing alone changes nothing
        change()
        assert states() != before


def test_declaring_and_deleting_a_dataset_audit_ids_and_retention_only(services, tenant_id, settings):
    """The manage API's dataset rules live in shared/registry/datasets.py: the region, the audit entries."""
    from shared.registry.datasets import delete_dataset, put_dataset, require_dataset
    from shared.registry.residency import Residency

    services.registry.put_tenant(tenant_id, TenantIn(region="eu"))
    tenant = services.registry.get_tenant(tenant_id)
    declaration = Dataset.model_validate(EXAMPLE)
    elsewhere = Residency(services.registry, settings.model_copy(update={"region": "us"}))
    with pytest.raises(Misdirected):
        put_dataset(services.registry, elsewhere, services.audit, tenant, "pricing", declaration)
    assert services.registry.get_dataset(tenant_id, "pricing") is None
    doc, created = put_dataset(services.registry, services.residency, services.audit, tenant, "pricing", declaration)
    assert created and require_dataset(services.registry, tenant_id, "pricing") == doc
    _, created = put_dataset(services.registry, services.residency, services.audit, tenant, "pricing", declaration)
    assert not created
    delete_dataset(services.registry, services.audit, tenant_id, "pricing")
    with pytest.raises(NotFound):
        delete_dataset(services.registry, services.audit, tenant_id, "pricing")
    with pytest.raises(NotFound):
        require_dataset(services.registry, tenant_id, "pricing")
    entries = [e for e in services.audit.entries(tenant_id) if e["kind"] == "dataset"]
    assert [e["change"] for e in entries] == ["created", "replaced", "deleted"]
    assert entries[0]["retention_days"] == EXAMPLE["retention_days"] and entries[0]["capability"] == "pixel"
    assert EXAMPLE["controller"]["email"] not in json.dumps(entries)


def test_a_new_instance_finds_the_existing_containers_with_one_request(azurite, services):
    """A cold start's first request pays for the containers check: where they exist (as the Bicep makes them in
    Azure), one listing and no create answered 409. (Creating them on a fresh Azurite is what every session does.)"""
    from shared.storage.blobs import CONTAINERS, Storage
    from tests.factories import settings_for

    services.storage.ensure_containers()  # the session's store: they exist from here on
    fresh = Storage.from_settings(settings_for(azurite))
    fresh.ensure_containers()
    assert fresh.transport.sent == 1 and fresh.ready
    fresh.ensure_containers()
    assert fresh.transport.sent == 1  # known once per instance
    listed = {container.name for container in fresh.service.list_containers()}
    assert set(CONTAINERS) <= listed
