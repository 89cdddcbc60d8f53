"""Key rotation over real HTTP: POST /manage/tenants/{tenant}/keys/rotate, the signing-key grace, and a
re-created tenant that shares no key with its predecessor."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from shared.core.clock import ManualClock
from shared.pixel.hits import Hit, record_hit, sign_query
from shared.registry.models import KeyRotation
from shared.registry.tenants import rotate_keys
from shared.services import Services
from tests.factories import BROWSER_UA, CONTRACT_FORM, FUNCTION_KEY, MASTER_KEY, all_blobs, blob_states, variant

MAIL = variant(
    require_signature=True,
    allowed_origins=[],
    subject_field="contact",
    fields=[{"name": "contact", "type": "string"}, {"name": "campaign", "type": "string", "personal": False}],
)
QUERY = {"contact": "c-42", "campaign": "spring"}


@pytest.fixture
def tenant(manage, tenant_id):
    created = manage.put(f"/manage/tenants/{tenant_id}", json={})
    assert created.status_code == 201
    assert manage.put(f"/manage/tenants/{tenant_id}/datasets/mail-opens", json=MAIL).status_code == 201
    assert manage.put(f"/manage/tenants/{tenant_id}/datasets/contact", json=CONTRACT_FORM).status_code == 201
    return created.json()


def rotate(manage, tenant_id, **body):
    return manage.post(f"/manage/tenants/{tenant_id}/keys/rotate", json=body)


def signed(key, tenant_id, **query):
    values = {**QUERY, **query}
    return {**values, "sig": sign_query(key, tenant_id, "mail-opens", values)}


def opens(azurite, tenant_id):
    return len(all_blobs(azurite, "records", f"{tenant_id}/mail-opens/"))


def open_mail(anon, tenant_id, query):
    assert anon.get(f"/px/{tenant_id}/mail-opens", params=query).status_code == 200


def sync_status(host, tenant_id, key):
    with httpx.Client(base_url=host, headers={"authorization": f"Bearer {key}"}, timeout=30) as client:
        return client.get(f"/sync/{tenant_id}/contact").status_code


def test_rotation_answers_new_keys_once_and_the_old_api_key_stops_at_once(host, manage, azurite, tenant):
    tenant_id, old_api, old_signing = tenant["id"], tenant["api_key"], tenant["signing_key"]
    assert sync_status(host, tenant_id, old_api) == 200
    answer = rotate(manage, tenant_id)
    assert answer.status_code == 200
    body = answer.json()
    assert body["api_key"].startswith("pck_") and body["api_key"] != old_api
    assert len(body["signing_key"]) == 64 and body["signing_key"] != old_signing
    assert body["signing_key_version"] == 2 and "api_key_sha256" not in body
    (retired,) = body["retired_signing_keys"]
    assert retired["version"] == 1
    assert sync_status(host, tenant_id, old_api) == 403
    assert sync_status(host, tenant_id, body["api_key"]) == 200
    shown = manage.get(f"/manage/tenants/{tenant_id}").json()
    assert shown["signing_key_version"] == 2 and "api_key" not in shown and "signing_key" not in shown
    stored = json.dumps({name: blob.decode() for name, blob in all_blobs(azurite, "registry").items()})
    audit = b"".join(all_blobs(azurite, "audit", f"{tenant_id}/").values()).decode()
    for secret in (body["api_key"], body["signing_key"], old_api, old_signing):
        assert secret not in stored and secret not in audit
    (entry,) = [json.loads(line) for line in audit.splitlines() if '"kind":"keys"' in line]
    assert entry["change"] == "rotated" and entry["api_key"] is True and entry["signing_key_version"] == 2


def test_the_old_signing_key_counts_within_its_grace(anon, manage, azurite, tenant):
    tenant_id, old_signing = tenant["id"], tenant["signing_key"]
    new_signing = rotate(manage, tenant_id).json()["signing_key"]
    open_mail(anon, tenant_id, signed(old_signing, tenant_id))  # a link sent before the rotation
    open_mail(anon, tenant_id, signed(new_signing, tenant_id, contact="c-43"))
    open_mail(anon, tenant_id, signed("0" * 64, tenant_id, contact="c-44"))  # never a valid key
    assert opens(azurite, tenant_id) == 2


def test_without_grace_the_old_signing_key_stops_at_once(anon, manage, azurite, tenant):
    tenant_id, old_signing = tenant["id"], tenant["signing_key"]
    answer = rotate(manage, tenant_id, api_key=False, signing_key_grace_days=0)
    assert answer.status_code == 200 and "api_key" not in answer.json()
    assert answer.json()["retired_signing_keys"] == []
    open_mail(anon, tenant_id, signed(old_signing, tenant_id))
    assert opens(azurite, tenant_id) == 0
    open_mail(anon, tenant_id, signed(answer.json()["signing_key"], tenant_id))
    assert opens(azurite, tenant_id) == 1


def test_after_its_grace_only_the_new_signing_key_counts(manage, azurite, settings, tenant):
    tenant_id, old_signing = tenant["id"], tenant["signing_key"]
    # A whole second: the pixel sees time in whole seconds (the hit's epoch).
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    services = Services.build(settings, clock)  # an instance whose clock the test moves
    rotated = rotate_keys(
        services.registry,
        services.audit,
        MASTER_KEY,
        tenant_id,
        KeyRotation(api_key=False, signing_key_grace_days=7),
    )
    old_link, new_link = signed(old_signing, tenant_id), signed(rotated["signing_key"], tenant_id, contact="c-9")

    def recorded(query) -> bool:
        hit = Hit(tenant_id, "mail-opens", query, {"user-agent": BROWSER_UA}, int(clock.now().timestamp()))
        return record_hit(services.capture, services.settings, hit)

    clock.advance(timedelta(days=7) - timedelta(seconds=1))
    assert recorded(old_link)
    clock.advance(timedelta(seconds=1))
    assert not recorded(old_link)
    assert recorded(new_link)
    assert opens(azurite, tenant_id) == 2


def test_rotating_one_key_leaves_the_other(host, manage, anon, azurite, tenant):
    tenant_id = tenant["id"]
    signing_only = rotate(manage, tenant_id, api_key=False).json()
    assert "api_key" not in signing_only and signing_only["signing_key_version"] == 2
    assert sync_status(host, tenant_id, tenant["api_key"]) == 200
    api_only = rotate(manage, tenant_id, signing_key=False).json()
    assert "signing_key" not in api_only and api_only["signing_key_version"] == 2
    assert sync_status(host, tenant_id, tenant["api_key"]) == 403
    assert sync_status(host, tenant_id, api_only["api_key"]) == 200
    open_mail(anon, tenant_id, signed(signing_only["signing_key"], tenant_id))
    assert opens(azurite, tenant_id) == 1


def test_a_re_created_tenant_shares_no_key_with_its_predecessor(host, manage, anon, azurite, tenant_id):
    first = manage.put(f"/manage/tenants/{tenant_id}", json={}).json()
    assert manage.delete(f"/manage/tenants/{tenant_id}").status_code == 204
    second = manage.put(f"/manage/tenants/{tenant_id}", json={}).json()
    assert second["generation"] != first["generation"]
    assert second["signing_key"] != first["signing_key"] and second["api_key"] != first["api_key"]
    assert manage.put(f"/manage/tenants/{tenant_id}/datasets/mail-opens", json=MAIL).status_code == 201
    assert manage.put(f"/manage/tenants/{tenant_id}/datasets/contact", json=CONTRACT_FORM).status_code == 201
    open_mail(anon, tenant_id, signed(first["signing_key"], tenant_id))
    assert opens(azurite, tenant_id) == 0
    assert sync_status(host, tenant_id, first["api_key"]) == 403
    open_mail(anon, tenant_id, signed(second["signing_key"], tenant_id))
    assert opens(azurite, tenant_id) == 1


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"api_key": False, "signing_key": False}, 422, "invalid_rotation"),
        ({"signing_key_grace_days": 31}, 422, "invalid_rotation"),
        ({"signing_key_grace_days": "7"}, 422, "invalid_rotation"),
        ({"api_key": "no"}, 422, "invalid_rotation"),
        ({"everything": True}, 422, "invalid_rotation"),
        ([], 400, "invalid_json"),
    ],
)
def test_bad_rotation_requests_change_nothing(manage, azurite, tenant, body, status, code):
    before = blob_states(azurite, ("registry",), within=(tenant["id"],))
    answer = manage.post(f"/manage/tenants/{tenant['id']}/keys/rotate", json=body)
    assert answer.status_code == status and answer.json()["error"] == code
    assert "pck_" not in answer.text
    assert blob_states(azurite, ("registry",), within=(tenant["id"],)) == before


def test_rotation_needs_the_function_key_and_a_known_tenant(host, manage, tenant):
    with httpx.Client(base_url=host, timeout=30) as client:
        assert client.post(f"/manage/tenants/{tenant['id']}/keys/rotate").status_code == 401
        wrong = {"x-functions-key": FUNCTION_KEY + "x", "authorization": f"Bearer {tenant['api_key']}"}
        assert client.post(f"/manage/tenants/{tenant['id']}/keys/rotate", headers=wrong).status_code == 401
    unknown = manage.post("/manage/tenants/nobody-here/keys/rotate")
    assert unknown.status_code == 404 and unknown.json()["error"] == "unknown_tenant"
    assert manage.post("/manage/tenants/Bad_Id/keys/rotate").status_code == 400
    assert sync_status(host, tenant["id"], tenant["api_key"]) == 200
