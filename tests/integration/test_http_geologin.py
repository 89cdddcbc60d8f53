"""Geo-login over real HTTP through the local host: located sign-ins, minimal records, impossible travel, and
every bad input with its status, its JSON error and storage unchanged."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from tests.city_db import ADDRESSES
from tests.factories import SIGNINS, USER, all_blobs


@pytest.fixture
def tenant(manage, tenant_id):
    created = manage.put(f"/manage/tenants/{tenant_id}", json={})
    assert created.status_code == 201
    assert manage.put(f"/manage/tenants/{tenant_id}/datasets/signins", json=SIGNINS).status_code == 201
    pixel = {
        **SIGNINS,
        "capability": "pixel",
        "fields": [{"name": "page_url", "type": "url", "required": True}],
        "subject_field": None,
    }
    assert manage.put(f"/manage/tenants/{tenant_id}/datasets/visits", json=pixel).status_code == 201
    return tenant_id, created.json()["api_key"]


def post(anon, tenant, key, body, dataset="signins", **headers):
    auth = {"authorization": f"Bearer {key}"} if key else {}
    return anon.post(f"/geologin/{tenant}/{dataset}", json=body, headers={**auth, **headers})


def stored(azurite, tenant):
    return {
        container: {name: json.loads(body) for name, body in all_blobs(azurite, container, f"{tenant}/").items()}
        for container in ("records", "state")
    }


def iso(when):
    return when.isoformat().replace("+00:00", "Z")


def test_sign_in_is_located_and_stored_minimally(anon, tenant, azurite):
    tenant_id, key = tenant
    answer = post(anon, tenant_id, key, {"user_id": USER, "ip": "193.0.6.139", "user_agent": "Mozilla/5.0"})
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["location"] == {"country": "NL", "region": None, "city": None, "latitude": None, "longitude": None}
    assert body["alerts"] == []
    (record,) = stored(azurite, tenant_id)["records"].values()
    assert record["id"] == body["id"]
    # Declared: user_id, signed_in_at, country, city, ip. Not declared: user_agent, region.
    assert set(record["fields"]) == {"user_id", "signed_in_at", "country", "ip"}
    assert record["fields"]["ip"] == "193.0.6.0" and record["fields"]["country"] == "NL"
    assert "193.0.6.139" not in json.dumps(stored(azurite, tenant_id))


def test_ipv6_private_and_the_callers_own_address(anon, tenant):
    tenant_id, key = tenant
    assert post(anon, tenant_id, key, {"user_id": USER, "ip": "2001:67c:2e8::1"}).json()["location"]["country"] == "NL"
    private = post(anon, tenant_id, key, {"user_id": USER, "ip": "10.0.0.7"})
    assert private.status_code == 201 and private.json()["location"]["country"] is None
    # No ip: the address the request came from (the loopback here: located nowhere, never an error).
    own = post(anon, tenant_id, key, {"user_id": USER})
    assert own.status_code == 201 and own.json()["location"]["country"] is None


def test_impossible_travel_in_the_answer(anon, tenant, azurite):
    tenant_id, key = tenant
    now = datetime.now(UTC)
    oslo = {"user_id": USER, "ip": ADDRESSES["oslo"], "signed_in_at": iso(now - timedelta(minutes=30))}
    assert post(anon, tenant_id, key, oslo).json()["alerts"] == []
    sydney = post(anon, tenant_id, key, {"user_id": USER, "ip": ADDRESSES["sydney"]}).json()
    (alert,) = sydney["alerts"]
    assert alert["type"] == "impossible_travel" and (alert["from_country"], alert["to_country"]) == ("NO", "AU")
    other = "5f2b1f0e-8e7b-4a0c-9d1e-0a1b2c3d4e5f"
    sweden = {"user_id": other, "ip": ADDRESSES["stockholm"], "signed_in_at": iso(now - timedelta(hours=8))}
    post(anon, tenant_id, key, {**sweden, "ip": ADDRESSES["oslo"], "signed_in_at": iso(now - timedelta(hours=16))})
    assert post(anon, tenant_id, key, sweden).json()["alerts"] == []
    alerted = [r for r in stored(azurite, tenant_id)["records"].values() if r["meta"].get("alerts")]
    assert [r["id"] for r in alerted] == [sydney["id"]]


NOW = datetime.now(UTC)


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ({"user_id": "not-a-guid"}, 422, "invalid_sign_in", "user_id"),
        ({}, 422, "invalid_sign_in", "user_id"),
        ({"user_id": USER, "ip": "999.1.1.1"}, 422, "invalid_sign_in", "ip"),
        ({"user_id": USER, "ip": "example.com"}, 422, "invalid_sign_in", "ip"),
        ({"user_id": USER, "signed_in_at": "yesterday"}, 422, "invalid_sign_in", "signed_in_at"),
        ({"user_id": USER, "signed_in_at": "2026-11-23T10:00:00"}, 422, "invalid_sign_in", "signed_in_at"),
        ({"user_id": USER, "signed_in_at": iso(NOW + timedelta(hours=1))}, 422, "invalid_sign_in", "signed_in_at"),
        ({"user_id": USER, "signed_in_at": iso(NOW - timedelta(days=15))}, 422, "invalid_sign_in", "signed_in_at"),
        ({"user_id": USER, "user_agent": "x" * 513}, 422, "invalid_sign_in", "user_agent"),
        ({"user_id": USER, "email": "jane@example.com"}, 422, "invalid_sign_in", "email"),
    ],
)
def test_bad_sign_ins_are_refused_and_nothing_is_stored(anon, tenant, azurite, body, status, code, field):
    tenant_id, key = tenant
    answer = post(anon, tenant_id, key, body)
    assert answer.status_code == status
    error = answer.json()
    assert error["error"] == code and field in [problem["field"] for problem in error["errors"]]
    assert "jane@example.com" not in answer.text
    assert stored(azurite, tenant_id) == {"records": {}, "state": {}}


def test_wrong_keys_bodies_and_datasets_are_refused_and_nothing_is_stored(anon, manage, tenant, azurite):
    tenant_id, key = tenant
    good = {"user_id": USER, "ip": "193.0.6.139"}
    other = manage.put(f"/manage/tenants/{tenant_id}x", json={}).json()["api_key"]
    cases = [
        (post(anon, tenant_id, None, good), 401),
        (post(anon, tenant_id, "pck_wrong", good), 403),
        (post(anon, tenant_id, other, good), 403),
        (post(anon, tenant_id, key, good, dataset="visits"), 404),
        (post(anon, tenant_id, key, good, dataset="nope"), 404),
        (post(anon, tenant_id, key, good, dataset="BAD..id"), 400),
        (anon.post(f"/geologin/{tenant_id}/signins", content=b"{", headers={"authorization": f"Bearer {key}"}), 400),
        (anon.post(f"/geologin/{tenant_id}/signins", content=b"[]", headers={"authorization": f"Bearer {key}"}), 400),
        (
            anon.post(
                f"/geologin/{tenant_id}/signins",
                content=b"user_id=x",
                headers={"authorization": f"Bearer {key}", "content-type": "application/x-www-form-urlencoded"},
            ),
            415,
        ),
        (
            anon.post(
                f"/geologin/{tenant_id}/signins",
                content=json.dumps({"user_id": USER, "user_agent": "x" * 70_000}).encode(),
                headers={"authorization": f"Bearer {key}", "content-type": "application/json"},
            ),
            413,
        ),
    ]
    for answer, status in cases:
        assert answer.status_code == status, (status, answer.text)
        assert answer.headers["content-type"].startswith("application/json") and answer.json()["error"]
    assert stored(azurite, tenant_id) == {"records": {}, "state": {}}
    assert anon.get(f"/geologin/{tenant_id}/signins").status_code in (404, 405)
