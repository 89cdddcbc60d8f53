"""Generations and declaration revisions against a real Azurite and over real HTTP: records a stale instance
captures for a deleted tenant or dataset never reach the one created in its place, and each record names
the declaration it was validated against."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from shared.capture.store import Target, record_blob
from shared.core.clock import ManualClock
from shared.core.errors import Forbidden
from shared.core.keys import hash_api_key, new_api_key
from shared.pixel.hits import Hit, sign_query, signature_valid
from shared.registry.access import tenant_access
from shared.registry.models import Dataset, TenantIn
from shared.registry.store import dataset_blob, tenant_blob
from shared.services import Services
from shared.storage.blobs import REGISTRY
from tests.factories import CONTRACT_FORM, MASTER_KEY, SIGNINS, all_blobs, geo_services, sign_in

LONG_TTL = 300


def instance(settings, ttl: float = 0) -> Services:
    """Another instance, capturing "a minute ago" so that the feed's settle time has passed."""
    clock = ManualClock(datetime.now(UTC) - timedelta(minutes=1))
    return Services.build(settings.model_copy(update={"registry_cache_ttl_seconds": ttl}), clock)


def capture(services: Services, tenant_id: str, email: str) -> dict:
    target = services.capture.resolve(tenant_id, "contact", "webform")
    services.clock.advance(timedelta(milliseconds=1))  # distinct capture times
    return services.capture.capture(target, {"email": email}).record.model_dump(mode="json")


def create(manage, tenant_id, form=CONTRACT_FORM) -> str:
    created = manage.put(f"/manage/tenants/{tenant_id}", json={})
    assert created.status_code == 201
    assert manage.put(f"/manage/tenants/{tenant_id}/datasets/contact", json=form).status_code == 201
    return created.json()["api_key"]


def client(host, key) -> httpx.Client:
    return httpx.Client(base_url=host, headers={"authorization": f"Bearer {key}"}, timeout=30)


def synced(host, tenant_id, key) -> list[dict]:
    with client(host, key) as http:
        answer = http.get(f"/sync/{tenant_id}/contact")
    assert answer.status_code == 200
    return answer.json()["records"]


def exported(host, tenant_id, key, subject) -> dict:
    with client(host, key) as http:
        answer = http.post(f"/privacy/{tenant_id}/subjects/export", json={"subject": subject})
    assert answer.status_code == 200
    return answer.json()


def held(azurite, tenant_id) -> set[str]:
    return {name.rsplit("/", 1)[-1].removesuffix(".json") for name in all_blobs(azurite, "records", f"{tenant_id}/")}


@pytest.mark.parametrize("what", ["dataset", "tenant"])
def test_a_stale_instance_captures_never_reach_the_re_created_one(host, manage, azurite, settings, tenant_id, what):
    key = create(manage, tenant_id)
    stale = instance(settings, LONG_TTL)
    capture(stale, tenant_id, "warm@example.com")  # its cache now holds this generation
    if what == "dataset":
        assert manage.delete(f"/manage/tenants/{tenant_id}/datasets/contact").status_code == 204
        assert manage.put(f"/manage/tenants/{tenant_id}/datasets/contact", json=CONTRACT_FORM).status_code == 201
    else:
        assert manage.delete(f"/manage/tenants/{tenant_id}").status_code == 204
        key = create(manage, tenant_id)
    # The stale instance still captures for the deleted generation, as another instance would until its TTL.
    left_over = [capture(stale, tenant_id, "old@example.com"), capture(stale, tenant_id, "both@example.com")]
    current = capture(instance(settings), tenant_id, "both@example.com")
    assert {record["dataset_generation"] for record in left_over} != {current["dataset_generation"]}

    answer = exported(host, tenant_id, key, "old@example.com")
    assert answer["record_count"] == 0 and answer["datasets"] == {}
    answer = exported(host, tenant_id, key, "both@example.com")
    assert [r["id"] for r in answer["datasets"]["contact"]["records"]] == [current["id"]]
    assert [record["id"] for record in synced(host, tenant_id, key)] == [current["id"]]
    # Never deliverable, so deleted when met; the current record stays until acknowledged.
    assert held(azurite, tenant_id) == {current["id"]}
    audit_blobs = all_blobs(azurite, "audit", f"{tenant_id}/").values()
    audit = [json.loads(line) for body in audit_blobs for line in body.decode().splitlines()]
    assert sum(entry["deleted"] for entry in audit if entry["kind"] == "stale_generation") == 2


def test_the_feed_names_the_declaration_each_record_was_validated_against(host, manage, settings, tenant_id):
    key = create(manage, tenant_id)
    stale = instance(settings, LONG_TTL)
    before = capture(stale, tenant_id, "a@example.com")
    path = f"/manage/tenants/{tenant_id}/datasets/contact"
    assert manage.put(path, json=CONTRACT_FORM).json()["declaration_revision"] == 1  # the same declaration again
    changed = manage.put(path, json={**CONTRACT_FORM, "purpose": "Answer enquiries and send the newsletter"})
    assert changed.status_code == 200 and changed.json()["declaration_revision"] == 2
    late = capture(stale, tenant_id, "b@example.com")  # validated against the old declaration, from the cache
    after = capture(instance(settings), tenant_id, "c@example.com")
    revisions = {record["id"]: record["declaration_revision"] for record in synced(host, tenant_id, key)}
    assert revisions == {before["id"]: 1, late["id"]: 1, after["id"]: 2}
    assert manage.put(path, json={**CONTRACT_FORM, "retention_days": 7}).json()["declaration_revision"] == 3


def test_a_deleted_tenants_key_is_refused_where_data_is_handed_out_even_by_a_stale_cache(manage, settings, tenant_id):
    old_key = create(manage, tenant_id)
    stale = instance(settings, LONG_TTL)
    assert tenant_access(stale, tenant_id, f"Bearer {old_key}", "contact").tenant.id == tenant_id
    assert manage.delete(f"/manage/tenants/{tenant_id}").status_code == 204
    create(manage, tenant_id)
    with pytest.raises(Forbidden):
        tenant_access(stale, tenant_id, f"Bearer {old_key}", "contact", fresh=True)


def test_documents_and_records_stored_before_generations_still_load_and_deliver(host, azurite, settings, tenant_id):
    """A deployment's existing data: no generation, no revision. It still loads, keeps its signing key, and its
    records are delivered."""
    services = instance(settings)
    now = services.clock.now()
    api_key = new_api_key()
    legacy_tenant = {
        "id": tenant_id,
        "region": "eu",
        "name": None,
        "api_key_sha256": hash_api_key(api_key),
        "signing_key_version": 1,
        "created_at": now.isoformat(),
        "updated_at": now.isoformat(),
    }
    legacy_dataset = {**CONTRACT_FORM, "tenant": tenant_id, "id": "contact", "created_at": now.isoformat()}
    legacy_dataset["updated_at"] = now.isoformat()
    record_id = now.strftime("%Y%m%dT%H%M%S%fZ") + "-0123456789abcdef"
    legacy_record = {
        "id": record_id,
        "tenant": tenant_id,
        "dataset": "contact",
        "captured_at": now.isoformat(),
        "expires_at": (now + timedelta(days=14)).isoformat(),
        "fields": {"email": "legacy@example.com"},
        "dropped_fields": 0,
        "meta": {},
    }
    registry = services.storage.container(REGISTRY)
    registry.upload_blob(tenant_blob(tenant_id), json.dumps(legacy_tenant))
    registry.upload_blob(dataset_blob(tenant_id, "contact"), json.dumps(legacy_dataset))
    tags = {"t": tenant_id, "d": "contact", "cap": now.strftime("%Y%m%dT%H%M%SZ"), "exp": "20991231T000000Z"}
    services.storage.container("records").upload_blob(
        record_blob(tenant_id, "contact", record_id), json.dumps(legacy_record), tags=tags
    )
    tenant, dataset = services.registry.get_tenant(tenant_id), services.registry.get_dataset(tenant_id, "contact")
    assert tenant is not None and tenant.generation == "" and dataset is not None and dataset.generation == ""
    # A link signed with the key it handed out before generations existed still counts.
    handed_out = hmac.new(MASTER_KEY.encode(), f"packcloud|pixel-signing|{tenant_id}|v1".encode(), hashlib.sha256)
    query = {"contact": "c-1"}
    query["sig"] = sign_query(handed_out.hexdigest(), tenant_id, "contact", query)
    hit = Hit(tenant_id, "contact", query, {}, int(now.timestamp()))
    assert signature_valid(services.settings, Target(tenant, dataset), hit)
    new = capture(services, tenant_id, "new@example.com")
    assert (new["tenant_generation"], new["dataset_generation"], new["declaration_revision"]) == ("", "", 1)
    assert [record["id"] for record in synced(host, tenant_id, api_key)] == [record_id, new["id"]]


def test_a_last_sign_in_kept_for_a_deleted_dataset_is_never_compared_with(settings, tenant_id, city_db):
    clock = ManualClock(datetime.now(UTC))
    fresh = geo_services(settings, clock, city_db, registry_cache_ttl_seconds=0)
    stale = geo_services(settings, clock, city_db, registry_cache_ttl_seconds=LONG_TTL)
    fresh.registry.put_tenant(tenant_id, TenantIn())
    fresh.registry.put_dataset(tenant_id, "signins", Dataset.model_validate(SIGNINS))
    sign_in(stale, tenant_id, "oslo")  # its cache now holds this generation
    assert fresh.registry.delete_dataset(tenant_id, "signins")
    fresh.registry.put_dataset(tenant_id, "signins", Dataset.model_validate(SIGNINS))
    clock.advance(timedelta(minutes=1))
    sign_in(stale, tenant_id, "oslo")  # keeps the user's last sign-in, for the deleted generation
    clock.advance(timedelta(minutes=30))
    # Oslo to Sydney in 30 minutes would be impossible travel, but Oslo belongs to the deleted dataset.
    assert sign_in(fresh, tenant_id, "sydney").alerts == ()
    clock.advance(timedelta(minutes=30))
    assert [alert.to_country for alert in sign_in(fresh, tenant_id, "oslo").alerts] == ["NO"]
