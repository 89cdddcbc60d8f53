"""Tracked links over real HTTP through the local host: making a link, following it, what is stored, and every
bad input with its status and storage unchanged."""

from __future__ import annotations

import json

import pytest

from tests.factories import ASSETS_ORIGIN, CONTACT, EU_URL, LINKS, all_blobs, blob_states

BROCHURE = f"{ASSETS_ORIGIN}/brochure.pdf?v=3"


@pytest.fixture
def tenant(manage, tenant_id):
    created = manage.put(f"/manage/tenants/{tenant_id}", json={})
    assert created.status_code == 201
    assert manage.put(f"/manage/tenants/{tenant_id}/datasets/assets", json=LINKS).status_code == 201
    pixel = {**LINKS, "capability": "pixel", "fields": [{"name": "page_url", "type": "url"}], "subject_field": None}
    assert manage.put(f"/manage/tenants/{tenant_id}/datasets/visits", json=pixel).status_code == 201
    return tenant_id, created.json()["api_key"]


def create(anon, tenant, key, body, dataset="assets"):
    auth = {"authorization": f"Bearer {key}"} if key else {}
    return anon.post(f"/links/{tenant}/{dataset}", json=body, headers=auth)


def records(azurite, tenant):
    return [json.loads(body) for body in all_blobs(azurite, "records", f"{tenant}/").values()]


def test_a_link_is_made_followed_and_its_visit_stored(anon, tenant, azurite):
    tenant_id, key = tenant
    answer = create(anon, tenant_id, key, {"target_url": BROCHURE, "contact_id": CONTACT})
    assert answer.status_code == 201, answer.text
    body = answer.json()
    # The region's configured base URL, not the address the request reached.
    assert body["url"] == f"{EU_URL}/go/{tenant_id}/{body['link']}"
    assert body["personal"] is True and body["target_url"] == BROCHURE
    followed = anon.get(f"/go/{tenant_id}/{body['link']}")
    assert followed.status_code == 302
    assert followed.headers["location"] == BROCHURE
    assert followed.headers["referrer-policy"] == "no-referrer"
    assert "no-store" in followed.headers["cache-control"]
    (record,) = records(azurite, tenant_id)
    assert record["dataset"] == "assets"
    assert record["fields"]["link_id"] == body["link"] and record["fields"]["contact_id"] == CONTACT
    assert record["fields"]["ip"] == "127.0.0.0"  # truncated
    assert record["fields"]["target_url"] == f"{ASSETS_ORIGIN}/brochure.pdf"


def test_the_target_never_comes_from_the_request(anon, tenant, azurite):
    tenant_id, key = tenant
    link = create(anon, tenant_id, key, {"target_url": BROCHURE}).json()["link"]
    for query in ({"url": "https://evil.example/"}, {"target_url": "https://evil.example/"}, {"next": "//evil"}):
        answer = anon.get(f"/go/{tenant_id}/{link}", params=query, headers={"referer": "https://evil.example/"})
        assert answer.status_code == 302 and answer.headers["location"] == BROCHURE


@pytest.mark.parametrize(
    "headers",
    [
        {"sec-gpc": "1"},
        {"dnt": "1"},
        {"user-agent": "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)"},
        {"user-agent": "python-httpx/0.27"},
        {"sec-purpose": "prefetch"},
    ],
)
def test_the_redirect_happens_and_nothing_is_recorded(anon, tenant, azurite, headers):
    tenant_id, key = tenant
    link = create(anon, tenant_id, key, {"target_url": BROCHURE, "contact_id": CONTACT}).json()["link"]
    answer = anon.get(f"/go/{tenant_id}/{link}", headers=headers)
    assert answer.status_code == 302 and answer.headers["location"] == BROCHURE
    assert records(azurite, tenant_id) == []


def test_unknown_malformed_and_foreign_links_are_the_same_page(anon, tenant, azurite):
    tenant_id, key = tenant
    link = create(anon, tenant_id, key, {"target_url": BROCHURE}).json()["link"]
    pages = [
        anon.get(path)
        for path in (
            f"/go/{tenant_id}/{'A' * 24}",
            f"/go/{tenant_id}/short",
            f"/go/{tenant_id}/{link * 3}",  # too long
            f"/go/{tenant_id}/{link[:-1]}!",
            f"/go/nobody-here/{link}",
            f"/go/Bad_Tenant/{link}",
        )
    ]
    assert {page.status_code for page in pages} == {404}
    assert len({page.text for page in pages}) == 1
    assert pages[0].headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in pages[0].headers["content-security-policy"]
    assert tenant_id not in pages[0].text and link not in pages[0].text
    assert records(azurite, tenant_id) == []


@pytest.mark.parametrize(
    ("body", "key", "dataset", "status", "code"),
    [
        ({"target_url": BROCHURE}, None, "assets", 401, None),
        ({"target_url": BROCHURE}, "wrong-key", "assets", 403, None),
        ({"target_url": BROCHURE}, "KEY", "visits", 404, "unknown_dataset"),  # a pixel dataset
        ({"target_url": BROCHURE}, "KEY", "Bad_Id", 400, "invalid_id"),
        ({"target_url": "https://evil.example/x"}, "KEY", "assets", 422, "invalid_link"),
        ({"target_url": "http://assets.contoso.example/x"}, "KEY", "assets", 422, "invalid_link"),
        ({"target_url": "javascript:alert(1)"}, "KEY", "assets", 422, "invalid_link"),
        ({"target_url": BROCHURE, "contact_id": "a b"}, "KEY", "assets", 422, "invalid_link"),
        ({"target_url": BROCHURE, "expires_at": "2000-01-01T00:00:00Z"}, "KEY", "assets", 422, "invalid_link"),
        ({"target_url": BROCHURE, "redirect": "x"}, "KEY", "assets", 422, "invalid_link"),
    ],
)
def test_bad_requests_are_refused_and_store_nothing(anon, tenant, azurite, body, key, dataset, status, code):
    tenant_id, real_key = tenant
    before = blob_states(azurite, ("records", "state"), within=(tenant_id,))
    answer = create(anon, tenant_id, real_key if key == "KEY" else key, body, dataset)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"] == code or code is None
    assert "evil.example" not in answer.text and "a b" not in answer.json()["detail"]
    assert blob_states(azurite, ("records", "state"), within=(tenant_id,)) == before


def test_an_erased_contacts_link_is_a_404(anon, tenant, azurite):
    tenant_id, key = tenant
    link = create(anon, tenant_id, key, {"target_url": BROCHURE, "contact_id": CONTACT}).json()["link"]
    assert anon.get(f"/go/{tenant_id}/{link}").status_code == 302
    erased = anon.post(
        f"/privacy/{tenant_id}/subjects/erase", json={"subject": CONTACT}, headers={"authorization": f"Bearer {key}"}
    )
    assert erased.status_code == 200 and (erased.json()["erased"], erased.json()["state_erased"]) == (1, 1)
    assert anon.get(f"/go/{tenant_id}/{link}").status_code == 404
