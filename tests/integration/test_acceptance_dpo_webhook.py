"""Acceptance of the DPO webhook's manage routes, written from README.md, openapi.yaml and
docs/dpo-notifications.md alone: answers of the documented shape, the secret shown once and new on every PUT,
kept out of storage and the audit (which keeps only the URL's host), and every hostile body a named 4xx with
storage unchanged."""

from __future__ import annotations

import re

import pytest

from tests.factories import HOSTILE_MARK, all_blobs, blob_states, documented_errors, hostile_bodies

ROUTE = "/manage/tenants/{tenant}/dpo-webhook"
# A public address written as a literal, so that setting it needs no name resolution.
PUBLIC = "https://93.184.216.34"


@pytest.fixture
def tenant(manage, tenant_id) -> str:
    assert manage.put(f"/manage/tenants/{tenant_id}", json={}).status_code == 201
    return tenant_id


def test_set_show_replace_and_delete_as_documented(manage, azurite, tenant):
    url = f"{PUBLIC}/hooks/{HOSTILE_MARK}"  # a path may carry the receiver's own token
    created = manage.put(f"/manage/tenants/{tenant}/dpo-webhook", json={"url": url})
    assert created.status_code == 201 and documented_errors(created, ROUTE, "put") == []
    first = created.json()["secret"]
    assert re.fullmatch(r"whsec_[A-Za-z0-9_-]{43}", first)
    shown = manage.get(f"/manage/tenants/{tenant}/dpo-webhook")
    assert shown.status_code == 200 and documented_errors(shown, ROUTE, "get") == []
    assert "secret" not in shown.json() and first not in shown.text and shown.json()["url"] == url
    replaced = manage.put(f"/manage/tenants/{tenant}/dpo-webhook", json={"url": url})
    assert replaced.status_code == 200 and documented_errors(replaced, ROUTE, "put") == []
    second = replaced.json()["secret"]
    assert second != first and replaced.json()["version"] != created.json()["version"]
    stored = b"".join(
        body for container in ("registry", "state", "audit") for body in all_blobs(azurite, container).values()
    )
    assert first.encode() not in stored and second.encode() not in stored
    audit = b"".join(all_blobs(azurite, "audit", f"{tenant}/").values())
    assert b"93.184.216.34" in audit and HOSTILE_MARK.encode() not in audit  # the host only, never the path
    assert manage.delete(f"/manage/tenants/{tenant}/dpo-webhook").status_code == 204
    for method in ("GET", "DELETE"):
        gone = manage.request(method, f"/manage/tenants/{tenant}/dpo-webhook")
        assert gone.status_code == 404 and documented_errors(gone, ROUTE, method) == []
    untested = manage.post(f"/manage/tenants/{tenant}/dpo-webhook/test")
    assert untested.status_code == 404
    assert documented_errors(untested, "/manage/tenants/{tenant}/dpo-webhook/test", "post") == []


def test_an_unknown_tenant_or_a_bad_id_is_refused_by_name(manage, tenant_id):
    for path, status in (
        (f"/manage/tenants/{tenant_id}-none/dpo-webhook", 404),
        ("/manage/tenants/Bad_Id/dpo-webhook", 400),
    ):
        answer = manage.put(path, json={"url": f"{PUBLIC}/hook"})
        assert answer.status_code == status and documented_errors(answer, ROUTE, "put") == []


@pytest.mark.parametrize(
    "url",
    [
        f"http://93.184.216.34/{HOSTILE_MARK}",
        f"https://127.0.0.1/{HOSTILE_MARK}",
        f"https://[::ffff:10.0.0.1]/{HOSTILE_MARK}",
        f"https://169.254.169.254/{HOSTILE_MARK}",
        f"https://{HOSTILE_MARK}@93.184.216.34/",
        f"https://93.184.216.34/#{HOSTILE_MARK}",
        f"https://93.184.216.34/\\{HOSTILE_MARK}",
        f"https://93.184.216.34/{HOSTILE_MARK}" + "x" * 2100,
    ],
)
def test_a_url_the_guard_refuses_is_a_422_that_names_the_rule_not_the_url(manage, azurite, tenant, url):
    before = blob_states(azurite, ("registry", "audit"), within=(tenant,))
    answer = manage.put(f"/manage/tenants/{tenant}/dpo-webhook", json={"url": url})
    assert answer.status_code == 422 and answer.json()["error"] == "invalid_webhook"
    assert documented_errors(answer, ROUTE, "put") == []
    assert HOSTILE_MARK not in answer.text
    assert blob_states(azurite, ("registry", "audit"), within=(tenant,)) == before


def test_every_hostile_body_is_a_named_4xx_that_stores_nothing(manage, azurite, tenant):
    before = blob_states(azurite, ("registry", "audit"), within=(tenant,))
    for name, body, content_type in hostile_bodies({"url": f"{PUBLIC}/hook"}):
        answer = manage.put(
            f"/manage/tenants/{tenant}/dpo-webhook", content=body, headers={"content-type": content_type}
        )
        assert 400 <= answer.status_code < 500, (name, answer.status_code, answer.text)
        assert documented_errors(answer, ROUTE, "put") == [], name
        assert HOSTILE_MARK not in answer.json()["detail"], name
    assert blob_states(azurite, ("registry", "audit"), within=(tenant,)) == before


@pytest.mark.parametrize(
    ("method", "route"),
    [
        (method, route)
        for route in ("dpo-webhook", "sms", "delivery", "email-events/key")
        for method in ("PUT", "GET", "DELETE")
    ]
    + [("POST", "dpo-webhook/test"), ("POST", "delivery/check")],
)
def test_a_tenant_homed_elsewhere_is_a_421_on_every_configuration_route(manage, tenant_id, method, route):
    # README: a tenant homed in another region is a 421; a 404 "has no webhook" would send the caller astray.
    assert manage.put(f"/manage/tenants/{tenant_id}", json={"region": "us"}).status_code == 201
    body = {"json": {}} if method == "PUT" else {}
    answer = manage.request(method, f"/manage/tenants/{tenant_id}/{route}", **body)
    assert answer.status_code == 421, answer.text
    assert (answer.json()["error"], answer.json()["region"]) == ("misdirected", "us")
    assert documented_errors(answer, f"/manage/tenants/{{tenant}}/{route}", method) == []
