"""PowerSMS rules without storage or network: the sms dataset's fields, the keywords, the send request, the
Twilio account, the webhook form and its signature check. The routes end to end: tests/integration/test_http_sms.py."""

from __future__ import annotations

import secrets

import pytest
from pydantic import SecretStr, ValidationError
from twilio.request_validator import RequestValidator

from shared.core.errors import BadRequest, Forbidden, PayloadTooLarge, Unprocessable, UnsupportedMediaType
from shared.registry.models import Dataset
from shared.registry.sms_account import SmsAccountIn
from shared.sms.keywords import keyword_of
from shared.sms.messages import SendRequest
from shared.sms.webhooks import FORM, Webhook, parse_form, require_fields, verify

BASE = {
    "capability": "sms",
    "purpose": "Text messages with customers",
    "legal_basis": "contract",
    "retention_days": 7,
    "controller": {"name": "Contoso Ltd", "email": "privacy@contoso.example"},
}
BODY = {"name": "body", "type": "string", "max_length": 320}
PUBLIC = "https://sms.packcloud.example/api"


def dataset(*fields: dict, **changes: object) -> Dataset:
    return Dataset.model_validate({**BASE, "fields": list(fields), **changes})


def account(**changes: object) -> SmsAccountIn:
    values = {
        "account_sid": "AC" + secrets.token_hex(16),
        "auth_token": secrets.token_hex(16),
        "from_number": "+4722334455",
    }
    return SmsAccountIn.model_validate({**values, **changes})


# --- the dataset ------------------------------------------------------------------------------------------


def test_an_sms_dataset_declares_from_the_fixed_fields_with_their_types():
    declared = dataset(
        {"name": "direction", "type": "string", "required": True},
        {"name": "to", "type": "phone"},
        {"name": "from", "type": "phone"},
        BODY,
        {"name": "error_code", "type": "integer"},
        {"name": "occurred_at", "type": "datetime", "required": True},
    )
    assert declared.field_names == {"direction", "to", "from", "body", "error_code", "occurred_at"}


@pytest.mark.parametrize(
    ("fields", "changes", "reason"),
    [
        ([{"name": "email", "type": "email"}], {}, "may declare only"),
        ([{"name": "to", "type": "string"}], {}, "has type phone"),
        ([{"name": "body", "type": "string"}], {}, "max_length"),
        ([{**BODY, "required": True}], {}, "can be required"),
        ([{"name": "to", "type": "phone"}], {"subject_field": "to"}, "subject_field"),
    ],
)
def test_an_sms_dataset_refuses_anything_else(fields, changes, reason):
    with pytest.raises(ValidationError) as refused:
        dataset(*fields, **changes)
    assert reason in str(refused.value)


# --- keywords ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "keyword"),
    [
        *[(word, "opt_out") for word in ("STOP", "stopall", " Unsubscribe ", "CANCEL", "end", "Quit.")],
        *[(word, "opt_in") for word in ("START", "yes", "Unstop!")],
        *[(word, "help") for word in ("HELP", "info")],
        ("stop sending me these", None),
        ("STOP STOP", None),
        ("", None),
        ("S T O P", None),
        ("x" * 5000 + "STOP", None),
    ],
)
def test_a_keyword_is_the_whole_message(body, keyword):
    assert keyword_of(body) == keyword


# --- the send request and the account ------------------------------------------------------------------------


@pytest.mark.parametrize("to", ["+0123456", "+12", "4791234567", "+47 9123 4567 1234 5678", "", "+47abc12345"])
def test_a_recipient_must_be_e164(to):
    with pytest.raises(ValidationError) as refused:
        SendRequest.model_validate({"to": to, "body": "hi"})
    assert refused.value.errors()[0]["loc"] == ("to",)


def test_a_recipient_is_normalised_and_the_body_bounded():
    assert SendRequest.model_validate({"to": "+47 912 34 567", "body": "hi"}).to == "+4791234567"
    assert SendRequest.model_validate({"to": "0047 91234567", "body": "hi"}).to == "+4791234567"
    with pytest.raises(ValidationError):
        SendRequest.model_validate({"to": "+4791234567", "body": "x" * 1601})
    with pytest.raises(ValidationError):
        SendRequest.model_validate({"to": "+4791234567", "body": "hi", "media_url": "https://x.example/a.png"})


def test_an_account_sends_with_its_api_key_when_it_has_one_and_shows_no_secret():
    plain = account()
    assert plain.sending_credentials() == (plain.account_sid, plain.auth_token.get_secret_value())
    key_sid, key_secret = "SK" + secrets.token_hex(16), secrets.token_urlsafe(20)
    keyed = account(api_key_sid=key_sid, api_key_secret=key_secret)
    assert keyed.sending_credentials() == (key_sid, key_secret)
    shown = str(keyed.public())
    assert key_secret not in shown and keyed.auth_token.get_secret_value() not in shown


@pytest.mark.parametrize(
    "changes",
    [
        {"from_number": None},  # no sender
        {"messaging_service_sid": "MG" + "0" * 32},  # two senders
        {"api_key_sid": "SK" + "0" * 32},  # a key without its secret
        {"account_sid": "XX" + "0" * 32},
        {"from_number": "22334455"},
        {"auth_token": "short"},
    ],
)
def test_an_incomplete_account_is_refused(changes):
    with pytest.raises(ValidationError):
        account(**changes)


# --- webhooks ---------------------------------------------------------------------------------------------


def signed(kind: str, form: dict[str, str], token: str, url: str | None = None, query: str = "") -> Webhook:
    path = f"/sms/{kind}/contoso/texts"
    signature = RequestValidator(token).compute_signature(url or f"{PUBLIC}{path}{query}", form)
    return Webhook(path, query.lstrip("?"), b"", {"content-type": FORM, "x-twilio-signature": signature})


def test_the_signature_is_checked_against_the_public_url_and_the_tenants_account():
    tenant = account()
    token = tenant.auth_token.get_secret_value()
    form = {"AccountSid": tenant.account_sid, "MessageSid": "SM" + "1" * 32, "MessageStatus": "sent"}
    verify(signed("status", form, token, query="?activity_id=x"), form, tenant, PUBLIC)
    verify(signed("status", form, token), form, tenant, PUBLIC + "/")  # a trailing slash in the setting
    wrong = [
        signed("status", form, token, url=f"{PUBLIC}/sms/status/contoso/other"),
        signed("status", form, token, url=f"{PUBLIC.replace('https', 'http')}/sms/status/contoso/texts"),
        signed("status", form, token, url="http://127.0.0.1:7071/api/sms/status/contoso/texts"),
        signed("status", form, secrets.token_hex(16)),
        signed("inbound", form, token),  # signed for the other route
    ]
    for hook in wrong:
        with pytest.raises(Forbidden):
            verify(Webhook("/sms/status/contoso/texts", "", b"", hook.headers), form, tenant, PUBLIC)
    other = {**form, "AccountSid": "AC" + "2" * 32}
    with pytest.raises(Forbidden):  # signed, but for another account
        verify(signed("status", other, token), other, tenant, PUBLIC)
    with pytest.raises(Forbidden):  # no public URL configured: nothing can be checked
        verify(signed("status", form, token), form, tenant, None)
    with pytest.raises(Forbidden):
        verify(Webhook("/sms/status/contoso/texts", "", b"", {"content-type": FORM}), form, tenant, PUBLIC)


def test_the_webhook_form_is_bounded():
    assert parse_form(b"From=%2B4791234567&Body=hi+there", FORM, 1000) == {"From": "+4791234567", "Body": "hi there"}
    for body, content_type, error in [
        (b"a=" + b"x" * 2000, FORM, PayloadTooLarge),
        (b'{"Body": "hi"}', "application/json", UnsupportedMediaType),
        (b"a=1&a=2", FORM, BadRequest),
        (b"&".join(b"p%d=1" % n for n in range(101)), FORM, BadRequest),
        (b"Body=\xff\xfe", FORM, BadRequest),
    ]:
        with pytest.raises(error):
            parse_form(body, content_type, 1000)
    with pytest.raises(Unprocessable) as missing:
        require_fields({"MessageSid": "SM1"}, ("MessageSid", "MessageStatus"), "invalid_status_callback")
    assert missing.value.extra["errors"] == [{"field": "MessageStatus", "reason": "is required"}]


def test_an_account_keeps_its_secrets_out_of_its_repr():
    tenant = account(api_key_sid="SK" + "3" * 32, api_key_secret=SecretStr("k" * 20))
    assert tenant.auth_token.get_secret_value() not in repr(tenant) and "k" * 20 not in repr(tenant)


def test_an_sms_dataset_can_be_delivered_into_dataverse_with_its_capture_times():
    mapping = {
        "mode": "dataverse",
        "table": "pc_textmessages",
        "key": "pc_recordid",
        "columns": {"to": "pc_to", "body": "pc_body", "direction": "pc_direction"},
        "meta": {"captured_at": "pc_capturedat", "expires_at": "pc_expiresat"},
    }
    fields = ({"name": "direction", "type": "string"}, {"name": "to", "type": "phone"}, BODY)
    assert dataset(*fields, delivery=mapping).delivery.meta["captured_at"] == "pc_capturedat"
    with pytest.raises(ValidationError) as refused:
        dataset(*fields, delivery={**mapping, "meta": {"impossible_travel": "pc_travel"}})
    assert "sms records have no impossible_travel" in str(refused.value)
