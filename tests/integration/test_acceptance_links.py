"""Acceptance of tracked links, written from README.md, openapi.yaml and docs/links.md alone: the answer's shape,
the expiry rules, the redirect's headers, and every hostile body a 4xx `{"error", "detail"}` that repeats no
value and leaves storage as it was."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.factories import (
    ASSETS_ORIGIN,
    CONTACT,
    HOSTILE_MARK,
    LINKS,
    blob_states,
    documented_errors,
    hostile_bodies,
)

ROUTE = "/links/{tenant}/{dataset}"
BROCHURE = f"{ASSETS_ORIGIN}/brochure.pdf"
VALID = {"target_url": BROCHURE, "contact_id": CONTACT, "expires_at": "2099-01-01T00:00:00Z"}


@pytest.fixture
def tenant(manage, tenant_id) -> tuple[str, dict[str, str]]:
    created = manage.put(f"/manage/tenants/{tenant_id}", json={})
    assert created.status_code == 201
    assert manage.put(f"/manage/tenants/{tenant_id}/datasets/assets", json=LINKS).status_code == 201
    return tenant_id, {"authorization": f"Bearer {created.json()['api_key']}"}


def expiry(answer) -> datetime:
    return datetime.fromisoformat(answer.json()["expires_at"].replace("Z", "+00:00"))


def test_a_link_has_the_documented_shape_and_expires_as_documented(anon, tenant):
    tenant_id, auth = tenant
    now = datetime.now(UTC)
    personal = anon.post(f"/links/{tenant_id}/assets", json=VALID, headers=auth)
    assert personal.status_code == 201 and documented_errors(personal, ROUTE, "post") == []
    # A later expires_at is cut to the dataset's retention (10 days) for a contact's link...
    assert now + timedelta(days=9) < expiry(personal) <= now + timedelta(days=10, minutes=1)
    assert personal.json()["personal"] is True
    # ...and to 30 days for a link for no one.
    shared = anon.post(f"/links/{tenant_id}/assets", json={"target_url": BROCHURE}, headers=auth)
    assert shared.status_code == 201 and shared.json()["personal"] is False
    assert now + timedelta(days=29) < expiry(shared) <= now + timedelta(days=30, minutes=1)
    # An earlier one is kept as given.
    soon = (now + timedelta(hours=2)).replace(microsecond=0)
    earlier = anon.post(f"/links/{tenant_id}/assets", json={**VALID, "expires_at": soon.isoformat()}, headers=auth)
    assert earlier.status_code == 201 and expiry(earlier) == soon


def test_following_a_link_sends_the_promised_headers(anon, tenant):
    tenant_id, auth = tenant
    link = anon.post(f"/links/{tenant_id}/assets", json={"target_url": BROCHURE}, headers=auth).json()["link"]
    followed = anon.get(f"/go/{tenant_id}/{link}")
    assert followed.status_code == 302 and followed.headers["location"] == BROCHURE
    assert followed.headers["referrer-policy"] == "no-referrer"
    assert "no-store" in followed.headers["cache-control"]
    assert followed.headers["x-robots-tag"] == "noindex, nofollow"
    missing = anon.get(f"/go/{tenant_id}/{'B' * 24}")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
    assert missing.headers["x-robots-tag"] == "noindex, nofollow"
    assert missing.headers["content-security-policy"] == "default-src 'none'; style-src 'unsafe-inline'"


@pytest.mark.parametrize(
    "expires_at",
    [
        1900000000,  # Unix seconds: the API takes ISO 8601 text with a zone only
        "1900000000",
        2e9,
        "2099-01-01",  # a date without a time
        "2099-01-01T00:00:00",  # no zone
        "2099-13-01T00:00:00Z",
        "2000-01-01T00:00:00Z",  # in the past
    ],
)
def test_an_expiry_that_is_not_a_future_iso_time_with_a_zone_is_a_422(anon, tenant, azurite, expires_at):
    tenant_id, auth = tenant
    before = blob_states(azurite, ("state", "records"), within=(tenant_id,))
    answer = anon.post(f"/links/{tenant_id}/assets", json={**VALID, "expires_at": expires_at}, headers=auth)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == "invalid_link" and documented_errors(answer, ROUTE, "post") == []
    assert [problem["field"] for problem in answer.json()["errors"]] == ["expires_at"]
    assert blob_states(azurite, ("state", "records"), within=(tenant_id,)) == before


def test_every_hostile_body_is_a_named_4xx_that_stores_nothing(anon, tenant, azurite):
    tenant_id, auth = tenant
    before = blob_states(azurite, ("state", "records"), within=(tenant_id,))
    for name, body, content_type in hostile_bodies(VALID):
        answer = anon.post(f"/links/{tenant_id}/assets", content=body, headers={**auth, "content-type": content_type})
        assert 400 <= answer.status_code < 500, (name, answer.status_code, answer.text)
        assert documented_errors(answer, ROUTE, "post") == [], name
        assert HOSTILE_MARK not in answer.json()["detail"], name
    assert blob_states(azurite, ("state", "records"), within=(tenant_id,)) == before


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"require_signature": True}, "require_signature"),
        ({"keep_url_query": True}, "keep_url_query"),
        ({"subject_field": None}, "subject_field"),
        ({"fields": [*LINKS["fields"], {"name": "campaign", "type": "string"}]}, "campaign"),
        ({"subject_field": None, "fields": [{"name": "link_id", "type": "integer"}]}, "link_id"),
    ],
)
def test_a_link_dataset_declares_only_what_the_docs_allow(manage, tenant, azurite, change, problem):
    tenant_id, _ = tenant
    before = blob_states(azurite, ("registry",), within=(tenant_id,))
    answer = manage.put(f"/manage/tenants/{tenant_id}/datasets/other", json={**LINKS, **change})
    assert answer.status_code == 422, answer.text
    assert problem in answer.text
    assert blob_states(azurite, ("registry",), within=(tenant_id,)) == before


def test_an_unknown_property_is_named_tamed_and_bounded(anon, tenant):
    # README: a 422 names unknown properties; the name is the sender's, so it comes back as dropped names do.
    tenant_id, auth = tenant
    name = "<img src=x>" + "k" * 5000
    answer = anon.post(f"/links/{tenant_id}/assets", json={"target_url": BROCHURE, name: 1}, headers=auth)
    assert answer.status_code == 422 and documented_errors(answer, ROUTE, "post") == []
    (problem,) = answer.json()["errors"]
    assert problem["field"] == "?img src?x?" + "k" * 52 + "\u2026"
    assert "<img" not in answer.text and len(answer.text) < 1000
