"""PowerSMS end to end through the local host, with the real `twilio` client talking to a fake of Twilio's REST
API over HTTPS (tests/integration/fake_twilio.py): sends, Twilio's refusals and failures, idempotency, signed
status callbacks and inbound messages, opt-outs, delivery by /sync, data-subject requests, every bad input, and a
host logging at DEBUG whose every line is searched for the numbers and texts."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import httpx
import pytest
from twilio.request_validator import RequestValidator

from shared.core.errors import PackCloudError
from tests.factories import EU_URL, FUNCTION_KEY, HOST_MASTER_KEY, ROOT, SMS_TEXTS, all_blobs, settings_env
from tests.integration.fake_twilio import HOLD, FakeTwilio, client_env, new_sid, start_fake_twilio

FIELDS = SMS_TEXTS["fields"]
SMS = SMS_TEXTS
# Without the text and the sender: the record of a message keeps neither.
LEAN = {**SMS, "fields": [f for f in FIELDS if f["name"] not in ("body", "from")]}
# Every number and text the module sends: none may reach a log line, an error or an audit entry.
USED: set[str] = set()


def number() -> str:
    value = "+4791" + "".join(secrets.choice("0123456789") for _ in range(6))
    USED.add(value)
    return value


def text(words: str = "Your appointment") -> str:
    value = f"{words} {secrets.token_hex(6)}"
    USED.add(value)
    return value


@pytest.fixture(scope="module")
def twilio(tmp_path_factory) -> Iterator[FakeTwilio]:
    fake, servers = start_fake_twilio(tmp_path_factory.mktemp("twilio"))
    yield fake
    for server in servers:
        server.shutdown()


@pytest.fixture(scope="module")
def sms_host(azurite, twilio, tmp_path_factory) -> Iterator[tuple[str, object]]:
    """A host whose twilio client reaches the fake, logging at DEBUG into a file; its public URL is EU_URL."""
    from devenv.azurite import free_port, wait_for_port
    from devenv.local_host import stop_local_host

    folder = tmp_path_factory.mktemp("sms-host")
    port = free_port()
    log_path = folder / "host.log"
    env = {
        **os.environ,
        **settings_env(azurite),
        **client_env(twilio),
        "PACKCLOUD_LOCAL_SECRETS_PATH": str(folder / "secrets.json"),
        "DEVHOST_FUNCTION_KEY": FUNCTION_KEY,
        "DEVHOST_MASTER_KEY": HOST_MASTER_KEY,
        "DEVHOST_LOG_LEVEL": "debug",
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "devhost", "--root", str(ROOT), "--port", str(port)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            wait_for_port(port, 60, process)
            yield f"http://127.0.0.1:{port}/api", log_path, folder / "secrets.json"
        finally:
            stop_local_host(process)


@pytest.fixture
def api(sms_host) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sms_host[0], timeout=30) as client:
        yield client


@pytest.fixture
def tenant(api, twilio):
    """A tenant with two sms datasets and a Twilio account that sends from a number."""
    tenant_id = f"sms-{secrets.token_hex(4)}"
    manage = {"x-functions-key": FUNCTION_KEY}
    created = api.put(f"/manage/tenants/{tenant_id}", json={}, headers=manage)
    assert created.status_code == 201
    for name, declaration in (("texts", SMS), ("lean", LEAN)):
        answer = api.put(f"/manage/tenants/{tenant_id}/datasets/{name}", json=declaration, headers=manage)
        assert answer.status_code == 201, answer.text
    sid, token = twilio.account()
    sender = number()
    account = {"account_sid": sid, "auth_token": token, "from_number": sender}
    answer = api.put(f"/manage/tenants/{tenant_id}/sms", json=account, headers=manage)
    assert answer.status_code == 201, answer.text
    assert token not in answer.text and answer.json()["credential"] == "auth_token"
    return {"id": tenant_id, "key": created.json()["api_key"], "sid": sid, "token": token, "from": sender}


def in_process(azurite, sms_host, clock=None):
    """Services of this process sharing the host's storage and secrets file (so its tenants and accounts)."""
    from shared.core.clock import SystemClock
    from shared.services import Services
    from tests.factories import settings_from

    env = {**settings_env(azurite), "PACKCLOUD_LOCAL_SECRETS_PATH": str(sms_host[2])}
    return Services.build(settings_from(env), clock or SystemClock())


def send(api, tenant, body, dataset="texts", **headers):
    auth = {"authorization": f"Bearer {tenant['key']}"}
    return api.post(f"/sms/{tenant['id']}/{dataset}/messages", json=body, headers={**auth, **headers})


def webhook(api, tenant, kind, form, *, dataset="texts", query="", url=None, token=None, signature=True):
    """A webhook as Twilio sends it, signed for `url` (default: the public URL of the route)."""
    form = {"AccountSid": tenant["sid"], **form}
    path = f"/sms/{kind}/{tenant['id']}/{dataset}"
    signed_url = url or f"{EU_URL}{path}{query}"
    headers = {"content-type": "application/x-www-form-urlencoded"}
    if signature:
        headers["x-twilio-signature"] = RequestValidator(token or tenant["token"]).compute_signature(signed_url, form)
    return api.post(f"{path}{query}", content=urlencode(form), headers=headers)


def records(azurite, tenant, dataset=None):
    prefix = f"{tenant['id']}/" + (f"{dataset}/" if dataset else "")
    return [json.loads(body) for body in all_blobs(azurite, "records", prefix).values()]


def storage(azurite, tenant):
    return {c: all_blobs(azurite, c, f"{tenant['id']}/") for c in ("records", "state")}


# ------------------------------------------------------------------------------------------------------ send


def test_a_message_is_sent_through_twilio_and_stored_with_its_declared_fields(api, tenant, twilio, azurite):
    to, body, activity = number(), text(), str(uuid.uuid4())
    answer = send(api, tenant, {"to": to, "body": body, "activity_id": activity})
    assert answer.status_code == 201, answer.text
    shown = answer.json()
    assert shown["sid"].startswith("SM") and shown["status"] == "queued"
    sent = twilio.sent[-1]
    # Basic auth with the account's own SID and token; the form as Twilio's API takes it.
    assert (sent.account, sent.user) == (tenant["sid"], tenant["sid"])
    assert sent.form["To"] == to and sent.form["Body"] == body and sent.form["From"] == tenant["from"]
    assert sent.form["StatusCallback"] == f"{EU_URL}/sms/status/{tenant['id']}/texts?activity_id={activity}"
    (record,) = records(azurite, tenant, "texts")
    assert record["id"] == shown["id"] and record["meta"] == {"event": "sent", "message_sid": shown["sid"]}
    fields = record["fields"]
    assert (fields["direction"], fields["to"], fields["from"], fields["body"]) == ("outbound", to, tenant["from"], body)
    assert fields["status"] == "queued" and fields["activity_id"] == activity


def test_only_declared_fields_are_kept(api, tenant, azurite):
    to, body = number(), text()
    assert send(api, tenant, {"to": to, "body": body}, dataset="lean").status_code == 201
    (record,) = records(azurite, tenant, "lean")
    assert set(record["fields"]) == {"direction", "to", "status", "occurred_at"}
    assert body not in json.dumps(storage(azurite, tenant), default=str)


def test_an_api_key_and_a_messaging_service(api, tenant, twilio):
    key_sid, key_secret = twilio.api_key(tenant["sid"])
    service = new_sid("MG")
    account = {
        "account_sid": tenant["sid"],
        "auth_token": tenant["token"],
        "api_key_sid": key_sid,
        "api_key_secret": key_secret,
        "messaging_service_sid": service,
    }
    answer = api.put(f"/manage/tenants/{tenant['id']}/sms", json=account, headers={"x-functions-key": FUNCTION_KEY})
    assert answer.status_code == 200 and key_secret not in answer.text
    assert send(api, tenant, {"to": number(), "body": text()}).status_code == 201
    sent = twilio.sent[-1]
    assert sent.user == key_sid and sent.form["MessagingServiceSid"] == service and "From" not in sent.form


def test_a_twilio_refusal_is_a_422_with_its_code_and_never_the_number(api, tenant, twilio, azurite):
    to = number()
    twilio.script.append((400, 21211))
    answer = send(api, tenant, {"to": to, "body": text()})
    assert answer.status_code == 422
    assert answer.json()["error"] == "sms_refused" and answer.json()["twilio_code"] == 21211
    assert to not in answer.text
    assert records(azurite, tenant) == []


@pytest.mark.parametrize("status", [429, 500, 503])
def test_twilio_rate_limits_and_failures_are_a_503_with_retry_after(api, tenant, twilio, azurite, status):
    twilio.script.append((status, None))
    answer = send(api, tenant, {"to": number(), "body": text()})
    assert answer.status_code == 503 and answer.json()["error"] == "sms_provider_unavailable"
    assert int(answer.headers["retry-after"]) > 0
    assert records(azurite, tenant) == []


def test_wrong_credentials_are_a_422_with_twilios_code(api, tenant, twilio):
    account = {"account_sid": tenant["sid"], "auth_token": "0" * 32, "from_number": tenant["from"]}
    api.put(f"/manage/tenants/{tenant['id']}/sms", json=account, headers={"x-functions-key": FUNCTION_KEY})
    answer = send(api, tenant, {"to": number(), "body": text()})
    assert answer.status_code == 422 and answer.json()["twilio_code"] == 20003


def test_an_idempotency_key_never_sends_twice(api, tenant, twilio, azurite):
    message = {"to": number(), "body": text()}
    key = str(uuid.uuid4())
    before = len(twilio.sent)
    first = send(api, tenant, message, **{"idempotency-key": key})
    again = send(api, tenant, message, **{"idempotency-key": key})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert len(twilio.sent) == before + 1 and len(records(azurite, tenant)) == 1
    # A send Twilio did not take may be retried with its key: it is sent then, once.
    other = str(uuid.uuid4())
    twilio.script.append((500, None))
    assert send(api, tenant, message, **{"idempotency-key": other}).status_code == 503
    assert send(api, tenant, message, **{"idempotency-key": other}).status_code == 201
    assert send(api, tenant, message, **{"idempotency-key": other}).status_code == 201
    assert len(twilio.sent) == before + 2
    assert send(api, tenant, message, **{"idempotency-key": "short"}).status_code == 400


def test_no_answer_from_twilio_is_a_503_and_its_key_never_sends_again(tenant, twilio, azurite, sms_host, monkeypatch):
    """Twilio took the message but answered after the client's timeout: the outcome is unknown to PackCloud, so
    the same key is refused (409), never sent twice. In process, with a client whose timeout is short."""
    from twilio.http.http_client import TwilioHttpClient

    from shared.sms.gateway import TwilioGateway
    from shared.sms.messages import SendRequest, SmsService

    for name, value in client_env(twilio).items():
        monkeypatch.setenv(name, value)
    services = in_process(azurite, sms_host)
    gateway = TwilioGateway(TwilioHttpClient(timeout=0.5))
    sms = SmsService(
        services.capture, services.storage, services.sms_accounts, gateway, services.settings, services.clock
    )
    target = services.capture.resolve(tenant["id"], "texts", "sms")
    message, key = SendRequest(to=number(), body=text()), str(uuid.uuid4())
    before = len(twilio.sent)
    twilio.script.append((HOLD, 2))
    with pytest.raises(PackCloudError) as late:
        sms.send(target, message, key)
    assert late.value.status == 503 and late.value.code == "sms_provider_unavailable"
    with pytest.raises(PackCloudError) as again:
        sms.send(target, message, key)
    assert again.value.status == 409 and again.value.code == "send_outcome_unknown"
    for _ in range(100):  # the fake records the message when its held answer goes out
        if len(twilio.sent) > before:
            break
        time.sleep(0.1)
    assert len(twilio.sent) == before + 1 and records(azurite, tenant) == []


def test_without_an_account_a_send_is_refused(api, tenant, twilio):
    manage = {"x-functions-key": FUNCTION_KEY}
    assert api.delete(f"/manage/tenants/{tenant['id']}/sms", headers=manage).status_code == 204
    assert api.get(f"/manage/tenants/{tenant['id']}/sms", headers=manage).status_code == 404
    before = twilio.requests
    answer = send(api, tenant, {"to": number(), "body": text()})
    assert answer.status_code == 409 and answer.json()["error"] == "no_sms_account"
    assert twilio.requests == before


# ---------------------------------------------------------------------------------------------- webhooks


def test_a_signed_status_callback_is_a_record(api, tenant, azurite):
    to, activity = number(), str(uuid.uuid4())
    form = {"MessageSid": new_sid("SM"), "MessageStatus": "undelivered", "ErrorCode": "30003", "To": to}
    form["From"] = tenant["from"]
    answer = webhook(api, tenant, "status", form, query=f"?activity_id={activity}")
    assert answer.status_code == 204, answer.text
    (record,) = records(azurite, tenant, "texts")
    assert record["fields"]["status"] == "undelivered" and record["fields"]["error_code"] == 30003
    assert record["fields"]["activity_id"] == activity and record["fields"]["to"] == to
    assert record["meta"] == {"event": "status", "message_sid": form["MessageSid"]}


@pytest.mark.parametrize(
    "signed_for",
    [
        "wrong path",  # signed for another URL
        "http",  # http against the https public URL
        "seen",  # the URL the function sees (behind a proxy it is not the public one)
        "other token",  # another account's token
        "none",  # no signature
    ],
)
def test_a_webhook_not_signed_for_the_public_url_is_403_and_stores_nothing(api, sms_host, tenant, azurite, signed_for):
    form = {"MessageSid": new_sid("SM"), "From": number(), "To": tenant["from"], "Body": text()}
    path = f"/sms/inbound/{tenant['id']}/texts"
    options: dict = {
        "wrong path": {"url": f"{EU_URL}/sms/inbound/{tenant['id']}/lean"},
        "http": {"url": f"{EU_URL.replace('https://', 'http://')}{path}"},
        "seen": {"url": f"{sms_host[0]}{path}"},
        "other token": {"token": secrets.token_hex(16)},
        "none": {"signature": False},
    }[signed_for]
    answer = webhook(api, tenant, "inbound", form, **options)
    assert answer.status_code == 403 and answer.json()["error"] == "invalid_signature"
    assert storage(azurite, tenant) == {"records": {}, "state": {}}


def test_inbound_messages_answer_empty_twiml_and_stop_opts_out_until_start(api, tenant, twilio, azurite):
    customer = number()
    hello = webhook(api, tenant, "inbound", {"MessageSid": new_sid("SM"), "From": customer, "Body": text("Hi")})
    assert hello.status_code == 200 and hello.headers["content-type"].startswith("text/xml")
    assert hello.text.endswith("<Response/>")
    assert send(api, tenant, {"to": customer, "body": text()}).status_code == 201
    stop = webhook(api, tenant, "inbound", {"MessageSid": new_sid("SM"), "From": customer, "Body": " stop "})
    assert stop.status_code == 200
    before = twilio.requests
    refused = send(api, tenant, {"to": customer, "body": text()})
    assert refused.status_code == 409 and refused.json()["error"] == "opted_out"
    assert customer not in refused.text and twilio.requests == before
    # The opt-out is personal state named by a keyed hash, never by the number.
    (state_name,) = [n for n in all_blobs(azurite, "state", f"{tenant['id']}/") if "/optout/" in n]
    assert customer not in state_name and customer.lstrip("+") not in state_name
    webhook(api, tenant, "inbound", {"MessageSid": new_sid("SM"), "From": customer, "Body": "START"})
    assert send(api, tenant, {"to": customer, "body": text()}).status_code == 201
    keywords = [r["meta"].get("keyword") for r in records(azurite, tenant, "texts") if r["meta"]["event"] == "inbound"]
    assert sorted(k for k in keywords if k) == ["opt_in", "opt_out"]


@pytest.mark.parametrize("word", ["STOPALL", "unsubscribe", "Cancel", "END", "quit."])
def test_every_opt_out_synonym_opts_out_and_every_opt_in_synonym_back(api, tenant, word):
    customer = number()
    webhook(api, tenant, "inbound", {"MessageSid": new_sid("SM"), "From": customer, "Body": word})
    assert send(api, tenant, {"to": customer, "body": text()}).status_code == 409
    back = {"STOPALL": "YES", "unsubscribe": "unstop"}.get(word, "START")
    webhook(api, tenant, "inbound", {"MessageSid": new_sid("SM"), "From": customer, "Body": back})
    assert send(api, tenant, {"to": customer, "body": text()}).status_code == 201


def test_help_is_marked_and_changes_nothing(api, tenant, azurite):
    customer = number()
    webhook(api, tenant, "inbound", {"MessageSid": new_sid("SM"), "From": customer, "Body": "HELP"})
    (record,) = records(azurite, tenant, "texts")
    assert record["meta"]["keyword"] == "help"
    assert send(api, tenant, {"to": customer, "body": text()}).status_code == 201


# ------------------------------------------------------------------------------- delivery and the subject


def test_messages_reach_sync_and_a_subject_request_finds_them_and_the_opt_out(
    api, tenant, twilio, azurite, sms_host, monkeypatch
):
    """Captured a minute ago (the feed hands out settled records only) by services of this process, which share
    the host's storage and secrets file and reach the fake Twilio as the host does; then /sync and the privacy
    routes of the host."""
    from shared.core.clock import ManualClock
    from shared.sms.messages import SendRequest
    from shared.sms.webhooks import Webhook

    for name, value in client_env(twilio).items():
        monkeypatch.setenv(name, value)
    past = in_process(azurite, sms_host, ManualClock(datetime.now(UTC) - timedelta(minutes=1)))
    target = past.capture.resolve(tenant["id"], "texts", "sms")
    customer = number()
    answer, replayed = past.sms.send(target, SendRequest(to=customer, body=text()), None)
    assert not replayed and twilio.sent[-1].form["To"] == customer
    past.clock.advance(timedelta(seconds=1))  # type: ignore[attr-defined]
    form = {"AccountSid": tenant["sid"], "MessageSid": new_sid("SM"), "From": customer, "Body": "STOP"}
    path = f"/sms/inbound/{tenant['id']}/texts"
    signature = RequestValidator(tenant["token"]).compute_signature(f"{EU_URL}{path}", form)
    headers = {"content-type": "application/x-www-form-urlencoded", "x-twilio-signature": signature}
    past.sms.inbound(tenant["id"], "texts", Webhook(path, "", urlencode(form).encode(), headers))

    auth = {"authorization": f"Bearer {tenant['key']}"}
    page = api.get(f"/sync/{tenant['id']}/texts", headers=auth).json()
    assert [r["fields"]["direction"] for r in page["records"]] == ["outbound", "inbound"]
    assert page["records"][0]["id"] == answer["id"] and page["records"][1]["fields"]["from"] == customer
    assert send(api, tenant, {"to": customer, "body": text()}).status_code == 409  # the host sees the opt-out
    export = api.post(f"/privacy/{tenant['id']}/subjects/export", json={"subject": customer}, headers=auth)
    assert export.status_code == 200, export.text
    assert export.json()["record_count"] == 2 and export.json()["state_count"] == 1
    erased = api.post(f"/privacy/{tenant['id']}/subjects/erase", json={"subject": customer}, headers=auth).json()
    assert (erased["erased"], erased["state_erased"]) == (2, 1)
    assert storage(azurite, tenant) == {"records": {}, "state": {}}


# ---------------------------------------------------------------------------------------------- bad input


def test_every_bad_input_is_a_4xx_naming_the_problem_and_storage_is_unchanged(api, tenant, twilio, azurite):
    auth = {"authorization": f"Bearer {tenant['key']}"}
    route = f"/sms/{tenant['id']}/texts/messages"
    before, asked = storage(azurite, tenant), twilio.requests
    bad_json = api.post(route, content=b'{"to": ', headers={**auth, "content-type": "application/json"})
    assert bad_json.status_code == 400 and bad_json.json()["error"] == "invalid_json"
    not_e164 = send(api, tenant, {"to": "0047 91 23", "body": text()})
    assert not_e164.status_code == 422 and not_e164.json()["errors"][0]["field"] == "to"
    no_body = send(api, tenant, {"to": number()})
    assert no_body.status_code == 422 and no_body.json()["errors"][0]["field"] == "body"
    # Longer than the dataset keeps (320): refused before anything is sent.
    too_long = send(api, tenant, {"to": number(), "body": "x" * 400})
    assert too_long.status_code == 422 and "body" in too_long.json()["detail"]
    unknown = send(api, tenant, {"to": number(), "body": text(), "media": "x"})
    assert unknown.status_code == 422 and "media" in unknown.json()["detail"]
    huge = api.post(route, content=b"{" + b" " * 70_000 + b"}", headers={**auth, "content-type": "application/json"})
    assert huge.status_code == 413
    assert send(api, tenant, {"to": number(), "body": text()}, dataset="nope").status_code == 404
    assert api.post(route, json={"to": number(), "body": text()}).status_code == 401
    # Webhooks: signed but incomplete, the wrong media type, too large, a repeated parameter.
    missing = webhook(api, tenant, "status", {"MessageStatus": "sent"})
    assert missing.status_code == 422 and missing.json()["errors"] == [{"field": "MessageSid", "reason": "is required"}]
    no_from = webhook(api, tenant, "inbound", {"MessageSid": new_sid("SM"), "Body": "hi"})
    assert no_from.status_code == 422 and "From" in no_from.json()["detail"]
    as_json = api.post(f"/sms/status/{tenant['id']}/texts", json={"MessageSid": "x"})
    assert as_json.status_code == 415
    form = {"content-type": "application/x-www-form-urlencoded"}
    huge_form = api.post(f"/sms/inbound/{tenant['id']}/texts", content=b"Body=" + b"x" * 70_000, headers=form)
    assert huge_form.status_code == 413
    repeated = api.post(f"/sms/inbound/{tenant['id']}/texts", content=b"From=a&From=b", headers=form)
    assert repeated.status_code == 400 and repeated.json()["error"] == "invalid_form"
    assert api.post(f"/sms/inbound/{tenant['id']}/NOPE", content=b"a=b", headers=form).status_code == 400
    assert storage(azurite, tenant) == before and twilio.requests == asked


def test_no_number_or_text_in_logs_errors_or_audit_entries(sms_host, azurite):
    """Runs after the module's other tests (file order): every number and text they used is searched for."""
    logged = sms_host[1].read_text(errors="replace")
    assert "DEBUG packcloud: sms_send answered" in logged  # the host did log at DEBUG
    audit = b"".join(all_blobs(azurite, "audit").values()).decode(errors="replace")
    assert USED
    for value in USED:
        assert value not in logged and value.lstrip("+") not in logged
        assert value not in audit


# ------------------------------------------------------------------------------- the account's life cycle


def test_the_report_names_the_sms_state_and_deleting_the_tenant_removes_its_account(api, tenant, sms_host, azurite):
    auth = {"authorization": f"Bearer {tenant['key']}"}
    report = api.get(f"/privacy/{tenant['id']}/report", headers=auth)
    assert report.status_code == 200 and "sms_opt_out" in report.text
    services = in_process(azurite, sms_host)
    found = services.registry.get_tenant(tenant["id"], fresh=True)
    assert services.sms_accounts.get(found) is not None
    assert api.delete(f"/manage/tenants/{tenant['id']}", headers={"x-functions-key": FUNCTION_KEY}).status_code == 204
    assert tenant["token"] not in sms_host[2].read_text()


def test_an_sms_registration_at_home_gives_the_account_to_the_tenants_region(sms_host, azurite, tmp_path):
    """The home deployment (us, in process) registers the `sms` pack in region eu, served by the module's host:
    the tenant is created there and its Twilio account lands in that region's secret store, which sends with it."""
    from shared.registration.engine import RegistrationIn
    from shared.services import Services
    from shared.storage.secrets import LocalSecrets, region_key_secret_name
    from tests.factories import US_URL, registration, settings_from

    home_secrets = tmp_path / "home-secrets.json"
    LocalSecrets(home_secrets).set(region_key_secret_name("eu"), FUNCTION_KEY)
    env = {
        **settings_env(azurite, region="us"),
        "PACKCLOUD_ROLE": "regional,registration",
        "PACKCLOUD_LOCAL_SECRETS_PATH": str(home_secrets),
        "PACKCLOUD_REGION_URLS": json.dumps({"eu": sms_host[0], "us": US_URL}),
    }
    home = Services.build(settings_from(env))
    token = secrets.token_hex(16)
    credentials = {"twilio-account-sid": new_sid("AC"), "twilio-auth-token": token, "twilio-from": number()}
    body = registration(str(uuid.uuid4()), pack="sms", region="eu", credentials=credentials)
    status, created = home.registrations.register(RegistrationIn.model_validate(body))
    assert status == 201
    shown = httpx.get(
        f"{sms_host[0]}/manage/tenants/{created['tenant']}/sms", headers={"x-functions-key": FUNCTION_KEY}
    )
    assert shown.status_code == 200, shown.text
    assert shown.json()["account_sid"] == credentials["twilio-account-sid"] and token not in shown.text
    assert token in sms_host[2].read_text()  # the region's secret store
    home.registrations.deregister(created["tenant"])
    assert token not in sms_host[2].read_text()
