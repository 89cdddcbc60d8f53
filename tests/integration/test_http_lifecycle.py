"""Delivery, data-subject requests and the DPO report over real HTTP, with every bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from shared.core.clock import ManualClock
from shared.services import Services
from tests.factories import CONTRACT_FORM, all_blobs, blob_states


@pytest.fixture
def tenant(manage, tenant_id, settings):
    created = manage.put(f"/manage/tenants/{tenant_id}", json={})
    assert created.status_code == 201
    assert manage.put(f"/manage/tenants/{tenant_id}/datasets/contact", json=CONTRACT_FORM).status_code == 201
    # Captured a minute ago by "another instance", so the feed's settle time has passed.
    clock = ManualClock(datetime.now(UTC) - timedelta(minutes=1))
    past = Services.build(settings, clock)
    target = past.capture.resolve(tenant_id, "contact", "webform")
    ids = []
    for n in range(3):
        ids.append(past.capture.capture(target, {"email": f"p{n}@example.com"}).record.id)
        clock.advance(timedelta(milliseconds=1))  # distinct capture times, so capture order is id order
    return tenant_id, created.json()["api_key"], ids


def bearer(key):
    return {"authorization": f"Bearer {key}"}


def test_sync_pages_then_ack_deletes(host, tenant, azurite):
    tenant_id, key, ids = tenant
    with httpx.Client(base_url=host, headers=bearer(key)) as client:
        first = client.get(f"/sync/{tenant_id}/contact", params={"limit": 2}).json()
        assert [r["id"] for r in first["records"]] == ids[:2] and first["more"] is True
        second = client.get(f"/sync/{tenant_id}/contact", params={"cursor": first["next_cursor"]}).json()
        assert [r["id"] for r in second["records"]] == ids[2:] and second["more"] is False
        assert second["records"][0]["fields"] == {"email": "p2@example.com"}
        assert client.post(f"/sync/{tenant_id}/contact/ack", json={"ids": ids[:2]}).json() == {
            "acknowledged": 2,
            "new": 2,
            "already_gone": 0,
        }
        again = client.post(f"/sync/{tenant_id}/contact/ack", json={"ids": ids[:2]}).json()
        assert again["new"] == 0 and again["already_gone"] == 2
    assert [name.rsplit("/", 1)[-1] for name in all_blobs(azurite, "records", f"{tenant_id}/")] == [f"{ids[2]}.json"]


def test_export_erase_and_report(host, tenant, azurite):
    tenant_id, key, ids = tenant
    with httpx.Client(base_url=host, headers=bearer(key)) as client:
        exported = client.post(f"/privacy/{tenant_id}/subjects/export", json={"subject": "P1@example.com"}).json()
        assert exported["record_count"] == 1
        assert exported["datasets"]["contact"]["records"][0]["id"] == ids[1]
        erased = client.post(f"/privacy/{tenant_id}/subjects/erase", json={"subject": "p1@example.com"})
        assert erased.json() == {
            "tenant": tenant_id,
            "request_id": erased.json()["request_id"],
            "erased": 1,
            "state_erased": 0,
            "more": False,
            "next_cursor": None,
        }
        after = client.post(f"/privacy/{tenant_id}/subjects/export", json={"subject": "p1@example.com"}).json()
        assert after["record_count"] == 0
        report = client.get(f"/privacy/{tenant_id}/report").json()
        (dataset,) = report["datasets"]
        assert dataset["records_held"] == 2 and dataset["legal_basis"] == "contract" and report["region"] == "eu"
        assert dataset["fields"] == [{"name": "email", "type": "email", "personal": True, "required": True}]
        assert 50 < dataset["oldest_record_age_s"] < 3600
        page = client.get(f"/privacy/{tenant_id}/report", params={"format": "html"})
        assert page.headers["content-type"].startswith("text/html")
        assert "<script>alert(1)" not in page.text and "&lt;script&gt;" in page.text
        assert client.get(f"/privacy/{tenant_id}/report", params={"format": "pdf"}).status_code == 400


def snapshot(azurite):
    return blob_states(azurite, ("records", "state", "registry"))


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    [
        ("GET", "/sync/{t}/contact", {"params": {"cursor": "nope"}}, 400, "invalid_cursor"),
        ("GET", "/sync/{t}/contact", {"params": {"limit": "0"}}, 400, "invalid_limit"),
        ("GET", "/sync/{t}/contact", {"params": {"limit": "1001"}}, 400, "invalid_limit"),
        ("GET", "/sync/{t}/contact", {"params": {"limit": "ten"}}, 400, "invalid_limit"),
        ("GET", "/sync/{t}/missing", {}, 404, "unknown_dataset"),
        ("GET", "/sync/{t}/Bad_Id", {}, 400, "invalid_id"),
        ("POST", "/sync/{t}/contact/ack", {"json": {"ids": ["../../x"]}}, 422, "invalid_ack"),
        ("POST", "/sync/{t}/contact/ack", {"json": {"ids": []}}, 422, "invalid_ack"),
        ("POST", "/sync/{t}/contact/ack", {"json": {"id": "x"}}, 422, "invalid_ack"),
        (
            "POST",
            "/sync/{t}/contact/ack",
            {"content": b"{oops", "headers": {"content-type": "application/json"}},
            400,
            "invalid_json",
        ),
        ("POST", "/privacy/{t}/subjects/erase", {"json": {"subject": ""}}, 422, "invalid_subject_request"),
        (
            "POST",
            "/privacy/{t}/subjects/erase",
            {"json": {"subject": "x", "all": True}},
            422,
            "invalid_subject_request",
        ),
        (
            "POST",
            "/privacy/{t}/subjects/export",
            {"content": b"subject=x", "headers": {"content-type": "application/x-www-form-urlencoded"}},
            415,
            "unsupported_media_type",
        ),
    ],
)
def test_bad_input_is_a_named_4xx_and_changes_nothing(host, tenant, azurite, method, path, kwargs, status, code):
    tenant_id, key, _ = tenant
    before = snapshot(azurite)
    headers = {**bearer(key), **kwargs.pop("headers", {})}
    answer = httpx.request(method, host + path.format(t=tenant_id), headers=headers, **kwargs)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"] == code
    assert snapshot(azurite) == before


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/sync/{t}/contact"),
        ("POST", "/sync/{t}/contact/ack"),
        ("POST", "/privacy/{t}/subjects/export"),
        ("POST", "/privacy/{t}/subjects/erase"),
        ("GET", "/privacy/{t}/report"),
    ],
)
def test_keys_are_checked(host, manage, tenant, azurite, method, path):
    tenant_id, key, ids = tenant
    other = manage.put(f"/manage/tenants/{tenant_id}-x", json={}).json()["api_key"]
    body = {"ids": ids} if "ack" in path else {"subject": "p0@example.com"}
    before = snapshot(azurite)
    url = host + path.format(t=tenant_id)
    assert httpx.request(method, url, json=body).status_code == 401
    assert httpx.request(method, url, json=body, headers={"authorization": "Basic abc"}).status_code == 401
    for wrong in ("pck_wrong", other, key + "x"):
        answer = httpx.request(method, url, json=body, headers=bearer(wrong))
        assert answer.status_code == 403 and answer.json()["error"] == "forbidden"
    assert snapshot(azurite) == before


def test_tenant_of_another_region_is_misdirected(host, manage, tenant_id, azurite):
    key = manage.put(f"/manage/tenants/{tenant_id}", json={"region": "us"}).json()["api_key"]
    before = snapshot(azurite)
    for method, path in (
        ("GET", f"/sync/{tenant_id}/contact"),
        ("GET", f"/privacy/{tenant_id}/report"),
        ("POST", f"/privacy/{tenant_id}/subjects/erase"),
    ):
        answer = httpx.request(method, host + path, headers=bearer(key), json={"subject": "x"})
        assert answer.status_code == 421 and answer.json()["region"] == "us"
    assert snapshot(azurite) == before


def cursor_at(when: datetime) -> str:
    return f"{when:%Y%m%dT%H%M%S%f}Z-0123456789abcdef"


@pytest.mark.parametrize(
    ("age", "code"),
    [
        (timedelta(days=31), "cursor_too_old"),
        (timedelta(days=2 * 365), "cursor_too_old"),
        (-timedelta(hours=1), "cursor_in_future"),
        (-timedelta(days=3650), "cursor_in_future"),
    ],
)
def test_a_cursor_outside_what_can_be_held_is_refused(host, tenant, azurite, age, code):
    """Each day between a cursor and now is one listing: a cursor's age must not set a request's work."""
    tenant_id, key, _ = tenant
    cursor = cursor_at(datetime.now(UTC) - age)
    before = snapshot(azurite)
    answer = httpx.get(f"{host}/sync/{tenant_id}/contact", params={"cursor": cursor}, headers=bearer(key))
    assert answer.status_code == 400 and answer.json()["error"] == code
    assert cursor not in answer.text and cursor[:8] not in answer.text
    assert snapshot(azurite) == before


def test_a_cursor_within_the_longest_retention_still_pages(host, tenant):
    tenant_id, key, ids = tenant
    cursor = cursor_at(datetime.now(UTC) - timedelta(days=29, hours=23))
    answer = httpx.get(f"{host}/sync/{tenant_id}/contact", params={"cursor": cursor}, headers=bearer(key))
    assert answer.status_code == 200 and [r["id"] for r in answer.json()["records"]] == ids


def test_the_oldest_cursor_bounds_the_listings_of_a_page(services, clock, tenant_id):
    """At the edge of the window a page lists at most one prefix per day of the longest retention; past it,
    nothing reaches storage. The bound is the clock's: tests move it, production reads the system's."""
    from shared.core.errors import BadRequest
    from shared.lifecycle.delivery import OLDEST_CURSOR, Delivery, check_cursor_age
    from shared.lifecycle.generations import Generations
    from shared.registry.models import MAX_RETENTION_DAYS

    delivery = Delivery(services.storage, services.audit, clock)
    generations = Generations.read(services.registry, tenant_id)
    services.storage.container("records")  # containers exist before counting
    sent = services.storage.transport.sent
    delivery.page(tenant_id, "contact", cursor_at(clock.now() - OLDEST_CURSOR), 10, generations)
    assert services.storage.transport.sent - sent <= MAX_RETENTION_DAYS + 2
    for cursor in (
        cursor_at(clock.now() - OLDEST_CURSOR - timedelta(seconds=1)),
        "00010101T000000000000Z-0123456789abcdef",
    ):
        sent = services.storage.transport.sent
        with pytest.raises(BadRequest) as refused:
            delivery.page(tenant_id, "contact", cursor, 10, generations)
        assert refused.value.code == "cursor_too_old" and services.storage.transport.sent == sent
    with pytest.raises(BadRequest) as refused:
        check_cursor_age(cursor_at(clock.now() + timedelta(microseconds=1)), clock.now())
    assert refused.value.code == "cursor_in_future"
    check_cursor_age(cursor_at(clock.now()), clock.now())
