"""Acceptance of PowerSMS's routes, written from README.md, openapi.yaml and docs/sms.md alone, up to the point
where Twilio would be asked (sending itself is test_http_sms.py's, against the fake Twilio): the account route's
shapes and rules, and every send or webhook that must be refused, refused by name with storage unchanged."""

from __future__ import annotations

import json

import pytest

from tests.factories import HOSTILE_MARK, SMS_TEXTS, all_blobs, blob_states, documented_errors, hostile_bodies

ACCOUNT_ROUTE = "/manage/tenants/{tenant}/sms"
SEND_ROUTE = "/sms/{tenant}/{dataset}/messages"
TOKEN = "twilio-auth-token-0123456789abcdef"
ACCOUNT = {"account_sid": "AC" + "1" * 32, "auth_token": TOKEN, "from_number": "+4722334455"}
MESSAGE = {
    "to": "+4791234567",
    "body": "Your appointment is tomorrow",
    "activity_id": "0f8fad5b-d9cb-469f-a165-70867728950e",
}


@pytest.fixture
def tenant(manage, tenant_id) -> tuple[str, dict[str, str]]:
    created = manage.put(f"/manage/tenants/{tenant_id}", json={})
    assert created.status_code == 201
    assert manage.put(f"/manage/tenants/{tenant_id}/datasets/texts", json=SMS_TEXTS).status_code == 201
    return tenant_id, {"authorization": f"Bearer {created.json()['api_key']}"}


def test_the_account_is_kept_shown_without_secrets_and_removed(anon, manage, azurite, tenant):
    tenant_id, auth = tenant
    created = manage.put(f"/manage/tenants/{tenant_id}/sms", json=ACCOUNT)
    assert created.status_code == 201 and documented_errors(created, ACCOUNT_ROUTE, "put") == []
    assert created.json()["credential"] == "auth_token" and TOKEN not in created.text
    replaced = manage.put(
        f"/manage/tenants/{tenant_id}/sms",
        json={**ACCOUNT, "api_key_sid": "SK" + "2" * 32, "api_key_secret": "api-key-secret-0123456789"},
    )
    assert replaced.status_code == 200 and replaced.json()["credential"] == "api_key"
    shown = manage.get(f"/manage/tenants/{tenant_id}/sms")
    assert shown.status_code == 200 and documented_errors(shown, ACCOUNT_ROUTE, "get") == []
    assert TOKEN not in shown.text and "api-key-secret" not in shown.text
    stored = b"".join(
        body for container in ("registry", "state", "audit") for body in _blobs(azurite, container, tenant_id)
    )
    assert TOKEN.encode() not in stored and b"api-key-secret" not in stored
    assert manage.delete(f"/manage/tenants/{tenant_id}/sms").status_code == 204
    unsent = anon.post(f"/sms/{tenant_id}/texts/messages", json=MESSAGE, headers=auth)
    assert (unsent.status_code, unsent.json()["error"]) == (409, "no_sms_account")
    assert documented_errors(unsent, SEND_ROUTE, "post") == []


def _blobs(azurite, container: str, tenant_id: str) -> list[bytes]:
    return [body for name, body in all_blobs(azurite, container).items() if tenant_id in name]


@pytest.mark.parametrize(
    "change",
    [
        {"from_number": None},  # neither sender
        {"messaging_service_sid": "MG" + "3" * 32},  # both senders
        {"api_key_sid": "SK" + "2" * 32},  # a key without its secret
        {"account_sid": HOSTILE_MARK},
        {"auth_token": "short"},
        {"from_number": HOSTILE_MARK},
    ],
)
def test_an_account_outside_the_rules_is_a_422_that_stores_nothing(manage, azurite, tenant, change):
    tenant_id, _ = tenant
    before = blob_states(azurite, ("registry", "state"), within=(tenant_id,))
    answer = manage.put(f"/manage/tenants/{tenant_id}/sms", json={**ACCOUNT, **change})
    assert answer.status_code == 422, answer.text
    assert documented_errors(answer, ACCOUNT_ROUTE, "put") == []
    assert HOSTILE_MARK not in answer.text and TOKEN not in answer.text
    assert blob_states(azurite, ("registry", "state"), within=(tenant_id,)) == before


def test_every_hostile_account_body_is_a_named_4xx(manage, azurite, tenant):
    tenant_id, _ = tenant
    before = blob_states(azurite, ("registry", "state"), within=(tenant_id,))
    for name, body, content_type in hostile_bodies(ACCOUNT):
        answer = manage.put(f"/manage/tenants/{tenant_id}/sms", content=body, headers={"content-type": content_type})
        assert 400 <= answer.status_code < 500, (name, answer.status_code, answer.text)
        assert documented_errors(answer, ACCOUNT_ROUTE, "put") == [], name
        assert HOSTILE_MARK not in answer.json()["detail"] and TOKEN not in answer.text, name
    assert blob_states(azurite, ("registry", "state"), within=(tenant_id,)) == before


def test_every_message_outside_the_rules_is_refused_before_twilio_is_asked(anon, manage, azurite, tenant):
    tenant_id, auth = tenant
    assert manage.put(f"/manage/tenants/{tenant_id}/sms", json=ACCOUNT).status_code == 201
    before = blob_states(azurite, ("records", "state"), within=(tenant_id,))
    bodies = [(name, body, content_type) for name, body, content_type in hostile_bodies(MESSAGE)]
    bodies += [
        ("national number", json.dumps({**MESSAGE, "to": "91234567"}).encode(), "application/json"),
        ("empty text", json.dumps({**MESSAGE, "body": ""}).encode(), "application/json"),
        ("text over max_length", json.dumps({**MESSAGE, "body": "x" * 321}).encode(), "application/json"),
        ("activity not a GUID", json.dumps({**MESSAGE, "activity_id": HOSTILE_MARK}).encode(), "application/json"),
    ]
    for name, body, content_type in bodies:
        answer = anon.post(
            f"/sms/{tenant_id}/texts/messages", content=body, headers={**auth, "content-type": content_type}
        )
        assert 400 <= answer.status_code < 500, (name, answer.status_code, answer.text)
        assert documented_errors(answer, SEND_ROUTE, "post") == [], name
        assert HOSTILE_MARK not in answer.text and "+4791234567" not in answer.text, name
    for key in ("short", "has spaces in it", "x" * 201):
        answer = anon.post(f"/sms/{tenant_id}/texts/messages", json=MESSAGE, headers={**auth, "idempotency-key": key})
        assert (answer.status_code, answer.json()["error"]) == (400, "invalid_idempotency_key")
    assert blob_states(azurite, ("records", "state"), within=(tenant_id,)) == before


@pytest.mark.parametrize("route", ["status", "inbound"])
def test_an_unsigned_webhook_is_a_403_that_stores_nothing(anon, manage, azurite, tenant, route):
    tenant_id, _ = tenant
    assert manage.put(f"/manage/tenants/{tenant_id}/sms", json=ACCOUNT).status_code == 201
    before = blob_states(azurite, ("records", "state"), within=(tenant_id,))
    form = {"AccountSid": ACCOUNT["account_sid"], "MessageSid": "SM" + "4" * 32, "MessageStatus": "delivered"}
    form |= {"From": "+4791234567", "Body": "STOP"}
    for signature in ({}, {"x-twilio-signature": "bm90LWEtc2lnbmF0dXJl"}):
        answer = anon.post(f"/sms/{route}/{tenant_id}/texts", data=form, headers=signature)
        assert (answer.status_code, answer.json()["error"]) == (403, "invalid_signature")
        assert "+4791234567" not in answer.text
    assert blob_states(azurite, ("records", "state"), within=(tenant_id,)) == before
