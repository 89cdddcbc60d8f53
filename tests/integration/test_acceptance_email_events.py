"""Acceptance of SendGrid e-mail events, written from README.md, openapi.yaml and docs/email-events.md alone:
answers of the documented shape, `dropped_fields` shown by the one documented rule (docs/webform.md), the key
route, and every refused batch a 4xx that repeats no value and stores nothing."""

from __future__ import annotations

import json

import pytest

from devenv.sendgrid_events import WebhookKey, batch, sendgrid_event
from tests.factories import EMAIL_EVENTS, HOSTILE_MARK, blob_states, documented_errors, hostile_bodies

ROUTE = "/email/events/{tenant}/{dataset}"
KEY_ROUTE = "/manage/tenants/{tenant}/email-events/key"


@pytest.fixture
def tenant(manage, tenant_id) -> tuple[str, WebhookKey]:
    assert manage.put(f"/manage/tenants/{tenant_id}", json={}).status_code == 201
    assert manage.put(f"/manage/tenants/{tenant_id}/datasets/mail", json=EMAIL_EVENTS).status_code == 201
    key = WebhookKey.generate()
    answer = manage.put(f"/manage/tenants/{tenant_id}/email-events/key", json={"verification_key": key.public_base64})
    assert answer.status_code == 200 and documented_errors(answer, KEY_ROUTE, "put") == []
    return tenant_id, key


def post(anon, tenant_id: str, key: WebhookKey, body: bytes):
    headers = {**key.headers(body), "content-type": "application/json"}
    return anon.post(f"/email/events/{tenant_id}/mail", content=body, headers=headers)


def test_dropped_names_come_back_by_the_web_forms_rule(anon, tenant):
    tenant_id, key = tenant
    odd = {"<b>tag": 1, "x" * 200: 2, "prénom": 3, "": 4}
    answer = post(anon, tenant_id, key, batch([sendgrid_event(1, **odd)]))
    assert answer.status_code == 200 and documented_errors(answer, ROUTE, "post") == []
    shown = answer.json()["dropped_fields"]
    assert {"?b?tag", "x" * 63 + "\u2026", "prénom", "(unnamed)"} <= set(shown)
    assert all(len(name) <= 64 for name in shown)


def test_the_key_route_says_whether_a_key_is_set_and_never_shows_it(anon, manage, tenant):
    tenant_id, key = tenant
    shown = manage.get(f"/manage/tenants/{tenant_id}/email-events/key")
    assert shown.status_code == 200 and shown.json() == {"configured": True}
    assert key.public_base64 not in shown.text
    assert manage.delete(f"/manage/tenants/{tenant_id}/email-events/key").status_code == 204
    # openapi.yaml: 200 when a key is configured, else the 404 of the other configuration routes.
    gone = manage.get(f"/manage/tenants/{tenant_id}/email-events/key")
    assert gone.status_code == 404 and documented_errors(gone, KEY_ROUTE, "get") == []
    refused = post(anon, tenant_id, key, batch([sendgrid_event(2)]))
    assert (refused.status_code, refused.json()["error"]) == (401, "no_verification_key")


def test_every_hostile_key_body_is_a_named_4xx(manage, tenant, azurite):
    tenant_id, _ = tenant
    before = blob_states(azurite, ("registry", "state"), within=(tenant_id,))
    valid = {"verification_key": WebhookKey.generate().public_base64}
    for name, body, content_type in [
        *hostile_bodies(valid),
        ("not a key", json.dumps({"verification_key": HOSTILE_MARK}).encode(), "application/json"),
    ]:
        answer = manage.put(
            f"/manage/tenants/{tenant_id}/email-events/key", content=body, headers={"content-type": content_type}
        )
        assert 400 <= answer.status_code < 500, (name, answer.status_code, answer.text)
        assert documented_errors(answer, KEY_ROUTE, "put") == [], name
        assert HOSTILE_MARK not in answer.text, name
    assert blob_states(azurite, ("registry", "state"), within=(tenant_id,)) == before


def test_every_hostile_batch_is_a_named_4xx_that_stores_nothing(anon, tenant, azurite):
    tenant_id, key = tenant
    event = sendgrid_event(7)
    before = blob_states(azurite, ("records", "state"), within=(tenant_id,))
    bodies = [body for _, body, _ in hostile_bodies(event)] + [
        batch([{**event, "timestamp": value}]) for value in (1.5, "17", -1, 10**30, True, None)
    ]
    bodies += [batch([{**event, "email": HOSTILE_MARK}]), batch([{**event, "activity_id": HOSTILE_MARK}])]
    bodies += [batch([{**event, "sg_event_id": HOSTILE_MARK + " x"}]), b"[" + b",".join([b"{}"] * 1001) + b"]"]
    for body in bodies:
        answer = post(anon, tenant_id, key, body)
        assert 400 <= answer.status_code < 500, (body[:60], answer.status_code, answer.text)
        assert documented_errors(answer, ROUTE, "post") == [], body[:60]
        assert HOSTILE_MARK not in answer.text, body[:60]
    assert blob_states(azurite, ("records", "state"), within=(tenant_id,)) == before


def test_unsigned_stale_and_foreign_batches_are_401_by_name(anon, tenant, azurite):
    tenant_id, key = tenant
    body = batch([sendgrid_event(9)])
    before = blob_states(azurite, ("records", "state"), within=(tenant_id,))
    unsigned = anon.post(f"/email/events/{tenant_id}/mail", content=body, headers={"content-type": "application/json"})
    stale = anon.post(
        f"/email/events/{tenant_id}/mail", content=body, headers={**key.headers(body, timestamp=1_000_000_000)}
    )
    foreign = anon.post(f"/email/events/{tenant_id}/mail", content=body, headers=WebhookKey.generate().headers(body))
    for answer, code in ((unsigned, "missing_signature"), (stale, "stale_timestamp"), (foreign, "invalid_signature")):
        assert (answer.status_code, answer.json()["error"]) == (401, code)
        assert documented_errors(answer, ROUTE, "post") == []
    assert blob_states(azurite, ("records", "state"), within=(tenant_id,)) == before
