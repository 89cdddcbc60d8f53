"""Acceptance of the page-view snippet's server side, written from README.md ("Custom events", the pixel rules)
and openapi.yaml alone: the beacon POST, custom events and their properties, what an event declaration may
say, and every body that is no hit a documented 4xx with storage unchanged."""

from __future__ import annotations

import json

import pytest

from tests.factories import EXAMPLE, HOSTILE_MARK, all_blobs, blob_states, documented_errors

ROUTE = "/px/{tenant}/{dataset}"
ORIGIN = EXAMPLE["allowed_origins"][0]
EVENTS = {
    **EXAMPLE,
    "legal_basis": "legitimate_interest",
    "fields": [
        *EXAMPLE["fields"],
        {"name": "event", "type": "string", "personal": False, "max_length": 40},
        {"name": "plan", "type": "choice", "options": ["free", "pro"], "personal": False},
        {"name": "url", "type": "url", "personal": False},
    ],
    "events": [
        {"name": "signup", "properties": ["plan"]},
        {"name": "outbound", "properties": ["url"]},
        {"name": "download", "properties": ["url"]},
    ],
}
PAGE = f"{ORIGIN}/pricing"


@pytest.fixture
def tenant(manage, tenant_id) -> str:
    assert manage.put(f"/manage/tenants/{tenant_id}", json={}).status_code == 201
    assert manage.put(f"/manage/tenants/{tenant_id}/datasets/visits", json=EVENTS).status_code == 201
    return tenant_id


def beacon(anon, tenant: str, body: bytes | dict, content_type: str = "text/plain"):
    content = json.dumps(body).encode() if isinstance(body, dict) else body
    return anon.post(f"/px/{tenant}/visits", content=content, headers={"origin": ORIGIN, "content-type": content_type})


def records(azurite, tenant: str) -> list[dict]:
    return [json.loads(body) for body in all_blobs(azurite, "records", f"{tenant}/").values()]


def test_a_beacon_event_keeps_only_its_declared_properties(anon, tenant, azurite):
    hit = {"page_url": PAGE, "event": "signup", "p.plan": "pro", "p.url": f"{ORIGIN}/x", "p.secret": HOSTILE_MARK}
    answer = beacon(anon, tenant, hit)
    assert answer.status_code == 204 and answer.content == b""
    (record,) = records(azurite, tenant)
    assert (record["fields"]["event"], record["fields"]["plan"]) == ("signup", "pro")
    assert "url" not in record["fields"]  # a property of another event
    assert record["dropped_fields"] == 2 and HOSTILE_MARK not in json.dumps(record)


def test_a_page_view_never_keeps_an_event_property_and_an_undeclared_event_is_not_stored(anon, tenant, azurite):
    assert beacon(anon, tenant, {"page_url": PAGE, "plan": "pro", "p.plan": "pro"}).status_code == 204
    assert beacon(anon, tenant, {"page_url": PAGE, "event": "purchase"}).status_code == 204
    gif = anon.get(f"/px/{tenant}/visits", params={"page_url": PAGE, "event": "purchase"}, headers={"origin": ORIGIN})
    assert gif.status_code == 200 and gif.headers["content-type"] == "image/gif"
    assert "no-store" in gif.headers["cache-control"].split(", ")
    (record,) = records(azurite, tenant)
    assert "plan" not in record["fields"] and "event" not in record["fields"]


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"", "text/plain", 400),
        (b"{" + HOSTILE_MARK.encode(), "text/plain", 400),
        (json.dumps([PAGE, HOSTILE_MARK]).encode(), "text/plain", 400),
        (json.dumps(HOSTILE_MARK).encode(), "text/plain", 400),
        (b"null", "text/plain", 400),
        (b'{"page_url": NaN}', "text/plain", 400),
        (b'{"page_url": ' + b"9" * 5000 + b"}", "text/plain", 400),
        (json.dumps({"page_url": PAGE, "visitor": {"a": HOSTILE_MARK}}).encode(), "text/plain", 400),
        (json.dumps({"page_url": PAGE, "visitor": [HOSTILE_MARK]}).encode(), "text/plain", 400),
        (json.dumps({f"p.k{index}": HOSTILE_MARK for index in range(121)}).encode(), "text/plain", 400),
        (b"[" * 3000 + b"]" * 3000, "text/plain", 400),
        (b'{"page_url": "' + b"a" * 70_000 + b'"}', "text/plain", 413),
        (json.dumps({"page_url": PAGE}).encode(), "application/x-www-form-urlencoded", 415),
        (json.dumps({"page_url": PAGE}).encode(), "image/png", 415),
    ],
)
def test_a_body_that_is_no_hit_is_a_documented_4xx_that_stores_nothing(
    anon, tenant, azurite, body, content_type, status
):
    before = blob_states(azurite, ("records", "state"), within=(tenant,))
    answer = beacon(anon, tenant, body, content_type)
    assert answer.status_code == status, answer.text
    assert documented_errors(answer, ROUTE, "post") == []
    assert HOSTILE_MARK not in answer.text
    assert blob_states(azurite, ("records", "state"), within=(tenant,)) == before


def test_a_beacon_the_rules_hold_back_is_204_as_well(anon, tenant, azurite):
    hit = json.dumps({"page_url": PAGE}).encode()
    for tenant_id, dataset, headers in [
        (tenant, "visits", {"origin": "https://elsewhere.example"}),
        (tenant, "visits", {"origin": ORIGIN, "sec-gpc": "1"}),
        (tenant, "visits", {"origin": ORIGIN, "user-agent": "HeadlessChrome/120"}),
        (tenant, "nothing-here", {"origin": ORIGIN}),
        ("Not_An_Id", "visits", {"origin": ORIGIN}),
    ]:
        answer = anon.post(f"/px/{tenant_id}/{dataset}", content=hit, headers={**headers, "content-type": "text/plain"})
        assert answer.status_code == 204, (dataset, headers)
    assert records(azurite, tenant) == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"fields": EXAMPLE["fields"]}, "event"),  # no `event` field to hold it
        ({"events": [{"name": "signup", "properties": ["page_url"]}]}, "page_url"),
        ({"events": [{"name": "signup", "properties": ["nowhere"]}]}, "nowhere"),
        ({"events": [{"name": f"e{index}"} for index in range(51)]}, "events"),
        ({"events": [{"name": "signup", "properties": ["plan"] * 21}]}, "properties"),
        ({"events": [{"name": "signup", "colour": "red"}]}, "colour"),
        ({"capability": "webform", "consent_field": None}, "events"),
    ],
)
def test_an_event_declaration_outside_the_rules_is_a_422_that_stores_nothing(manage, tenant, azurite, change, problem):
    before = blob_states(azurite, ("registry",), within=(tenant,))
    answer = manage.put(f"/manage/tenants/{tenant}/datasets/visits", json={**EVENTS, **change})
    assert answer.status_code == 422, answer.text
    assert problem in answer.text
    assert blob_states(azurite, ("registry",), within=(tenant,)) == before


BOTS = [
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36",
    "curl/8.5.0",
    "python-requests/2.32.3",
    "",
]


def test_bots_record_nothing_and_a_mail_image_proxy_counts_as_the_reader(anon, tenant, azurite):
    # README, "Bots": the crawler-user-agents list plus PackCloud's own; mail image proxies count as people.
    for agent in BOTS:
        gif = anon.get(
            f"/px/{tenant}/visits", params={"page_url": PAGE}, headers={"origin": ORIGIN, "user-agent": agent}
        )
        assert gif.status_code == 200 and gif.headers["content-type"] == "image/gif"
    assert records(azurite, tenant) == []
    proxy = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
    anon.get(f"/px/{tenant}/visits", params={"page_url": PAGE}, headers={"origin": ORIGIN, "user-agent": proxy})
    assert len(records(azurite, tenant)) == 1
