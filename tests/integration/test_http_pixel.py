"""The tracking pixel over real HTTP through the local host."""

from __future__ import annotations

import json
import re

import pytest

from shared.pixel.hits import GIF
from tests.factories import EXAMPLE, all_blobs, blob_states

PAGE = "https://www.contoso.example/pricing"


@pytest.fixture
def tenant(manage, tenant_id):
    assert manage.put(f"/manage/tenants/{tenant_id}", json={}).status_code == 201
    assert manage.put(f"/manage/tenants/{tenant_id}/datasets/pricing", json=EXAMPLE).status_code == 201
    return tenant_id


def records(azurite, tenant):
    return [json.loads(body) for body in all_blobs(azurite, "records", f"{tenant}/").values()]


def assert_gif(answer):
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "image/gif"
    assert "no-store" in answer.headers["cache-control"]
    assert answer.content == GIF


def test_pixel_records_one_page_view(anon, tenant, azurite):
    answer = anon.get(
        f"/px/{tenant}/pricing",
        params={"page_url": PAGE, "visitor": "v-1", "name": "Jane"},
        headers={"referer": "https://www.contoso.example/"},
    )
    assert_gif(answer)
    (record,) = records(azurite, tenant)
    assert record["fields"] == {"page_url": PAGE, "visitor": "v-1", "ip": "127.0.0.0"}
    assert "Jane" not in json.dumps(record)


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/px/{tenant}/pricing", {"referer": ""}),  # page_url on an allowed site, but no header says so
        ("/px/{tenant}/pricing", {"sec-gpc": "1"}),
        ("/px/{tenant}/pricing", {"dnt": "1"}),
        ("/px/{tenant}/pricing", {"user-agent": "Googlebot/2.1 (+http://www.google.com/bot.html)"}),
        ("/px/{tenant}/unknown", {}),
        ("/px/nobody-here/pricing", {}),
        ("/px/{tenant}/Bad_Id", {}),
    ],
)
def test_pixel_answers_the_gif_and_records_nothing(anon, tenant, azurite, path, headers):
    before = blob_states(azurite, ("records",))
    # From an allowed page, so that each case is refused for its own reason only.
    headers = {"referer": "https://www.contoso.example/", **headers}
    answer = anon.get(path.format(tenant=tenant), params={"page_url": PAGE}, headers=headers)
    assert_gif(answer)
    assert blob_states(azurite, ("records",)) == before


def test_snippet_is_served_configured(anon, tenant):
    answer = anon.get("/px/snippet.js", params={"tenant": tenant, "dataset": "pricing"})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/javascript")
    config = json.loads(re.search(r"var config = (\{.*?\});", answer.text).group(1))
    assert config["enabled"] is True
    assert config["endpoint"] == str(anon.base_url).rstrip("/") + f"/px/{tenant}/pricing"


def test_snippet_for_unknown_dataset_does_nothing(anon):
    answer = anon.get("/px/snippet.js", params={"tenant": "nobody-here", "dataset": "x1"})
    assert answer.status_code == 200
    assert json.loads(re.search(r"var config = (\{.*?\});", answer.text).group(1)) == {"enabled": False}


# ------------------------------------------------------------------ the beacon (POST): the GET's rules on its body

SITE = {"origin": "https://www.contoso.example", "content-type": "text/plain;charset=UTF-8"}


def beacon(anon, path, params, headers=None):
    return anon.post(path, content=json.dumps(params), headers={**SITE, **(headers or {})})


def test_a_beacon_post_records_the_hit_and_answers_204(anon, tenant, azurite):
    answer = beacon(anon, f"/px/{tenant}/pricing", {"page_url": PAGE + "?token=t", "visitor": "v-2", "name": "Jane"})
    assert answer.status_code == 204 and answer.content == b""
    (record,) = records(azurite, tenant)
    assert record["fields"] == {"page_url": PAGE, "visitor": "v-2", "ip": "127.0.0.0"}
    assert record["dropped_fields"] == 1 and "Jane" not in json.dumps(record)


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/px/{tenant}/pricing", {"origin": ""}),  # nothing from the browser names the site
        ("/px/{tenant}/pricing", {"origin": "https://evil.example"}),
        ("/px/{tenant}/pricing", {"sec-gpc": "1"}),
        ("/px/{tenant}/pricing", {"dnt": "1"}),
        ("/px/{tenant}/pricing", {"user-agent": "Googlebot/2.1 (+http://www.google.com/bot.html)"}),
        ("/px/{tenant}/unknown", {}),
        ("/px/nobody-here/pricing", {}),
        ("/px/{tenant}/Bad_Id", {}),
    ],
)
def test_a_beacon_is_refused_for_the_reasons_a_get_is_and_stores_nothing(anon, tenant, azurite, path, headers):
    before = blob_states(azurite, ("records",))
    answer = beacon(anon, path.format(tenant=tenant), {"page_url": PAGE, "visitor": "v-3"}, headers)
    assert answer.status_code == 204  # as the GIF: a page never learns which rule held its hit back
    assert blob_states(azurite, ("records",)) == before


def test_a_signed_beacon_counts_as_a_signed_link(anon, manage, tenant_id, azurite):
    from shared.pixel.hits import sign_query

    created = manage.put(f"/manage/tenants/{tenant_id}", json={})
    mail = {**EXAMPLE, "require_signature": True, "allowed_origins": []}
    assert manage.put(f"/manage/tenants/{tenant_id}/datasets/opens", json=mail).status_code == 201
    params = {"visitor": "c-42", "page_url": PAGE}
    signed = {**params, "sig": sign_query(created.json()["signing_key"], tenant_id, "opens", params)}
    forged = {**params, "visitor": "c-43", "sig": signed["sig"]}
    assert beacon(anon, f"/px/{tenant_id}/opens", forged, {"origin": ""}).status_code == 204
    assert beacon(anon, f"/px/{tenant_id}/opens", signed, {"origin": ""}).status_code == 204
    assert [record["fields"]["visitor"] for record in records(azurite, tenant_id)] == ["c-42"]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (b"page_url=https%3A%2F%2Fwww.contoso.example%2F", "text/plain", 400, "invalid_json"),
        (b'["page_url"]', "text/plain", 400, "invalid_beacon"),
        (b'{"page_url": {"x": "y"}}', "text/plain", 400, "invalid_beacon"),
        (b'{"page_url": "x"}', "application/xml", 415, "unsupported_media_type"),
        (b'{"page_url": "' + b"x" * 70_000 + b'"}', "text/plain", 413, "body_too_large"),
    ],
)
def test_a_beacon_body_that_is_no_hit_is_a_json_4xx(anon, tenant, azurite, body, content_type, status, code):
    answer = anon.post(f"/px/{tenant}/pricing", content=body, headers={**SITE, "content-type": content_type})
    assert answer.status_code == status
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json()["error"] == code and "contoso" not in answer.json()["detail"]
    assert records(azurite, tenant) == []


def test_a_dataset_declares_its_events_through_the_manage_api(manage, tenant_id):
    assert manage.put(f"/manage/tenants/{tenant_id}", json={}).status_code == 201
    fields = [
        *EXAMPLE["fields"],
        {"name": "event", "type": "string", "personal": False},
        {"name": "plan", "type": "string"},
    ]
    declared = {**EXAMPLE, "fields": fields, "events": [{"name": "signup", "properties": ["plan"]}]}
    answer = manage.put(f"/manage/tenants/{tenant_id}/datasets/site", json=declared)
    assert answer.status_code == 201 and answer.json()["events"] == [
        {"name": "signup", "properties": ["plan"], "description": None}
    ]
    undeclared = {**declared, "events": [{"name": "signup", "properties": ["coupon"]}]}
    refused = manage.put(f"/manage/tenants/{tenant_id}/datasets/site", json=undeclared)
    assert refused.status_code == 422 and "property coupon must be a declared field" in refused.text
    assert manage.get(f"/manage/tenants/{tenant_id}/datasets/site").json()["events"][0]["properties"] == ["plan"]
