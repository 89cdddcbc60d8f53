"""PowerEmail delivery events over real HTTP through a local host logging at DEBUG: SendGrid's signed Event Webhook
verified by the `sendgrid` library against keys the tests make with `cryptography`, events stored minimally and
once, delivered through /sync; every bad input a 4xx naming the problem with storage unchanged; no e-mail address
in any log line, error or audit entry."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from devenv.sendgrid_events import SIGNATURE, TIMESTAMP, WebhookKey, batch, sendgrid_event
from tests.factories import FUNCTION_KEY, ROOT, all_blobs, home_host_env

EVENTS: dict = {
    "capability": "emailevent",
    "purpose": "Follow the delivery of e-mails sent from Dynamics 365",
    "legal_basis": "legitimate_interest",
    "retention_days": 7,
    "controller": {"name": "Contoso Ltd", "email": "privacy@contoso.example"},
    "subject_field": "email",
    "fields": [
        {"name": "event", "type": "string", "required": True},
        {"name": "email", "type": "email", "required": True},
        {"name": "occurred_at", "type": "datetime", "personal": False},
        {"name": "activity_id", "type": "string"},
        {"name": "reason", "type": "string"},
        {"name": "url", "type": "url"},
        {"name": "ip", "type": "ip"},
    ],
}
LOGGED: list[str] = []  # every e-mail address the module sent: searched for in the host's log at the end


@dataclass
class Host:
    api: str
    log: Path


@pytest.fixture(scope="module")
def host(azurite, tmp_path_factory) -> Iterator[Host]:
    from devenv.azurite import free_port, wait_for_port
    from devenv.local_host import stop_local_host

    folder = tmp_path_factory.mktemp("email-events")
    port = free_port()
    env = home_host_env(azurite, folder / "secrets.json", DEVHOST_LOG_LEVEL="debug")
    log = folder / "host.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "devhost", "--root", str(ROOT), "--port", str(port)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            wait_for_port(port, 60, process)
            yield Host(f"http://127.0.0.1:{port}/api", log)
        finally:
            stop_local_host(process)


@pytest.fixture
def manage(host) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=host.api, headers={"x-functions-key": FUNCTION_KEY}, timeout=60) as client:
        yield client


@pytest.fixture
def anon(host) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=host.api, timeout=60) as client:
        yield client


@dataclass
class Tenant:
    id: str
    api_key: str
    key: WebhookKey


def make_tenant(manage, name: str) -> Tenant:
    created = manage.put(f"/manage/tenants/{name}", json={})
    assert created.status_code == 201, created.text
    assert manage.put(f"/manage/tenants/{name}/datasets/mail", json=EVENTS).status_code == 201
    key = WebhookKey.generate()
    answer = manage.put(f"/manage/tenants/{name}/email-events/key", json={"verification_key": key.public_base64})
    assert answer.status_code == 200, answer.text
    return Tenant(name, created.json()["api_key"], key)


@pytest.fixture
def tenant(manage, tenant_id) -> Tenant:
    return make_tenant(manage, tenant_id)


def post(anon, tenant: Tenant, body: bytes, headers: dict[str, str] | None = None, dataset: str = "mail"):
    return anon.post(f"/email/events/{tenant.id}/{dataset}", content=body, headers=headers or tenant.key.headers(body))


def stored(azurite, tenant: Tenant) -> dict[str, dict]:
    return {c: all_blobs(azurite, c, f"{tenant.id}/") for c in ("records", "state")}


def events(count: int, **changes) -> list[dict]:
    made = [sendgrid_event(n, kind=("click" if n % 3 == 0 else "delivered"), **changes) for n in range(count)]
    LOGGED.extend(event["email"] for event in made if isinstance(event.get("email"), str))
    return made


def test_a_signed_batch_becomes_minimal_records_once_and_reaches_sync(anon, tenant, azurite):
    sent = [*events(5), sendgrid_event(9, kind="group_unsubscribe")]
    body = batch(sent)
    answer = post(anon, tenant, body)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert (result["received"], result["stored"], result["duplicates"], result["skipped"]) == (6, 5, 0, 1)
    # Provider keys no dataset declares are dropped and named; useragent maps to user_agent, which is not declared.
    assert {"smtp-id", "category", "sg_message_id", "tls", "user_agent"} <= set(result["dropped_fields"])
    records = [json.loads(b) for b in stored(azurite, tenant)["records"].values()]
    assert len(records) == 5
    for record in records:
        assert set(record["fields"]) <= {"event", "email", "occurred_at", "activity_id", "reason", "url", "ip"}
        assert record["fields"]["ip"] == "203.0.113.0"  # truncated to /24
        assert record["dropped_fields"] >= 5
        assert "sg_event_id" not in json.dumps(record) and "Mozilla" not in json.dumps(record)
    clicks = [r for r in records if r["fields"]["event"] == "click"]
    assert clicks and all(r["fields"]["url"] == "https://www.contoso.example/offer" for r in clicks)
    by_activity = {r["fields"]["activity_id"] for r in records}
    assert by_activity == {e["activity_id"] for e in sent[:5]}
    # SendGrid sends the same batch again (a lost answer): nothing new is stored. One event in a later batch too.
    again = post(anon, tenant, body)
    assert again.status_code == 200 and again.json()["duplicates"] == 5 and again.json()["stored"] == 0
    mixed = post(anon, tenant, batch([sent[0], *events(1)]))
    assert (mixed.json()["stored"], mixed.json()["duplicates"]) == (1, 1)
    assert len(stored(azurite, tenant)["records"]) == 6
    # The markers: a keyed hash per event in shards, no value of the event, nor its SendGrid id, in them.
    shards = {n: json.loads(b) for n, b in stored(azurite, tenant)["state"].items() if "/sgev/" in n}
    hashes = [h for shard in shards.values() for h in shard["events"]]
    assert len(hashes) == len(set(hashes)) == 6 and all(set(shard) == {"events"} for shard in shards.values())
    assert not any(e["sg_event_id"] in json.dumps(shards) for e in sent)
    # Delivered like every record: the /sync feed hands them out once its settle time has passed.
    with httpx.Client(base_url=str(anon.base_url), headers={"authorization": f"Bearer {tenant.api_key}"}) as crm:
        for _ in range(60):
            page = crm.get(f"/sync/{tenant.id}/mail").json()
            if len(page["records"]) == 6:
                break
            time.sleep(1)
    assert len(page["records"]) == 6 and {r["fields"]["event"] for r in page["records"]} <= {"delivered", "click"}


def test_signatures_that_do_not_count(anon, manage, tenant, azurite):
    body = batch(events(2))
    good = tenant.key.headers(body)
    tampered = body.replace(b"delivered", b"bounce   ", 1)
    assert post(anon, tenant, tampered, good).json()["error"] == "invalid_signature"
    stale = tenant.key.headers(body, timestamp=int(time.time()) - 301)
    assert post(anon, tenant, body, stale).json()["error"] == "stale_timestamp"
    future = tenant.key.headers(body, timestamp=int(time.time()) + 400)
    assert post(anon, tenant, body, future).status_code == 401
    other = make_tenant(manage, f"{tenant.id}-b")
    signed_by_other = other.key.headers(body)  # a key of another tenant
    answer = post(anon, tenant, body, signed_by_other)
    assert answer.status_code == 401 and answer.json()["error"] == "invalid_signature"
    for missing in (SIGNATURE, TIMESTAMP):
        headers = {k: v for k, v in good.items() if k != missing}
        answer = post(anon, tenant, body, headers)
        assert answer.status_code == 401 and missing in answer.json()["detail"]
    not_base64 = {**good, SIGNATURE: "%%%"}
    assert post(anon, tenant, body, not_base64).status_code == 401
    assert post(anon, tenant, body, {**good, TIMESTAMP: "yesterday"}).json()["error"] == "invalid_timestamp"
    assert stored(azurite, tenant) == {"records": {}, "state": {}}
    # Without a key nothing counts; the genuine request then passes.
    assert manage.delete(f"/manage/tenants/{tenant.id}/email-events/key").status_code == 204
    assert post(anon, tenant, body, good).json()["error"] == "no_verification_key"
    route = f"/manage/tenants/{tenant.id}/email-events/key"
    assert manage.put(route, json={"verification_key": tenant.key.public_base64}).status_code == 200
    assert post(anon, tenant, body).status_code == 200
    assert manage.put(route, json={"verification_key": "bm90IGEga2V5"}).status_code == 422


def test_unknown_tenant_or_dataset_is_404_and_nothing_is_stored(anon, manage, tenant, azurite):
    body = batch(events(1))
    ghost = Tenant("no-such-tenant", "", tenant.key)
    assert post(anon, ghost, body).status_code == 404
    assert post(anon, tenant, body, dataset="other").status_code == 404
    assert post(anon, tenant, body, dataset="BAD_ID").status_code == 400
    assert stored(azurite, tenant) == {"records": {}, "state": {}}


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "invalid_json"),
        (b'{"event": "delivered"}', 400, "invalid_json"),
        (b"\xff\xfe", 400, "invalid_json"),
        (json.dumps([1, 2]).encode(), 422, "invalid_events"),
        (json.dumps([{"event": 5}]).encode(), 422, "invalid_events"),
    ],
)
def test_bad_bodies_are_4xx_naming_the_problem(anon, tenant, azurite, body, status, code):
    answer = post(anon, tenant, body)
    assert answer.status_code == status and answer.json()["error"] == code, answer.text
    assert stored(azurite, tenant) == {"records": {}, "state": {}}


def test_wrong_types_limits_and_oversized_bodies_store_nothing(anon, tenant, azurite):
    cases = [
        (events(1, timestamp="yesterday"), "events[0].timestamp"),
        (events(1, sg_event_id=7), "events[0].sg_event_id"),
        (events(1, activity_id="not-a-guid"), "events[0].activity_id"),
        ([*events(2), *events(1, email="not an address")], "events[2].email"),
        (events(1, ip="999.1.1.1"), "events[0].ip"),
    ]
    for sent, field in cases:
        answer = post(anon, tenant, batch(sent))
        assert answer.status_code == 422, answer.text
        assert field in [p["field"] for p in answer.json()["errors"]]
        assert "not an address" not in answer.text and "person" not in answer.text  # the value is never echoed
    too_many = post(anon, tenant, batch(events(1001)))
    assert too_many.status_code == 413 and too_many.json()["error"] == "too_many_events"
    assert "1000" in too_many.json()["detail"]
    huge = batch(events(1, reason="x" * (5 * 1024 * 1024)))
    assert post(anon, tenant, huge).json()["error"] == "body_too_large"
    assert stored(azurite, tenant) == {"records": {}, "state": {}}
    full = post(anon, tenant, batch(events(1000)))
    assert full.status_code == 200 and full.json()["stored"] == 1000


def test_the_same_event_twice_in_a_batch_is_stored_once(anon, tenant, azurite):
    (event,) = events(1)
    answer = post(anon, tenant, batch([event, dict(event)]))
    assert (answer.json()["stored"], answer.json()["duplicates"]) == (1, 1)
    assert len(stored(azurite, tenant)["records"]) == 1


def test_export_and_erasure_find_a_recipients_events(anon, tenant, azurite):
    mine, other = events(2, email="Erin.Example@Example.com"), events(1)
    assert post(anon, tenant, batch([*mine, *other])).json()["stored"] == 3
    with httpx.Client(base_url=str(anon.base_url), headers={"authorization": f"Bearer {tenant.api_key}"}) as crm:
        exported = crm.post(f"/privacy/{tenant.id}/subjects/export", json={"subject": "erin.example@example.com"})
        assert exported.status_code == 200, exported.text
        body = exported.json()
        assert body["record_count"] == 2 and body["state_count"] == 0  # the shard markers name no one
        records = body["datasets"]["mail"]["records"]
        assert {r["fields"]["activity_id"] for r in records} == {e["activity_id"] for e in mine}
        erased = crm.post(f"/privacy/{tenant.id}/subjects/erase", json={"subject": "Erin.Example@example.com"})
        assert erased.status_code == 200, erased.text
    left = [json.loads(b) for b in stored(azurite, tenant)["records"].values()]
    assert [r["fields"]["activity_id"] for r in left] == [other[0]["activity_id"]]


def test_a_tenant_deleted_and_created_again_has_no_key_until_given_one(anon, manage, tenant):
    """The host had verified the old tenant's batches: its verifier, kept by tenant id, counted for the new tenant."""
    body = batch(events(1))
    assert post(anon, tenant, body).status_code == 200
    assert manage.delete(f"/manage/tenants/{tenant.id}").status_code == 204
    assert manage.put(f"/manage/tenants/{tenant.id}", json={}).status_code == 201
    assert manage.put(f"/manage/tenants/{tenant.id}/datasets/mail", json=EVENTS).status_code == 201
    answer = post(anon, tenant, body)  # signed with the old tenant's key
    assert (answer.status_code, answer.json()["error"]) == (401, "no_verification_key")
    assert manage.get(f"/manage/tenants/{tenant.id}/email-events/key").status_code == 404
    key = WebhookKey.generate()
    given = manage.put(f"/manage/tenants/{tenant.id}/email-events/key", json={"verification_key": key.public_base64})
    assert given.status_code == 200
    assert post(anon, tenant, body, key.headers(body)).status_code == 200
    assert post(anon, tenant, body).json()["error"] == "invalid_signature"


def test_no_email_address_in_logs_errors_or_audit(host, anon, tenant, azurite):
    """Runs last in the module: every address any test sent is searched for in the DEBUG log and audit entries."""
    post(anon, tenant, batch(events(1, email="not-valid@")))
    post(anon, tenant, batch(events(2)), {SIGNATURE: "AAAA", TIMESTAMP: str(int(time.time()))})
    assert post(anon, tenant, batch(events(3))).status_code == 200
    logged = host.log.read_text(errors="replace")
    assert "DEBUG packcloud: email_events answered 401 (invalid_signature)" in logged  # the log means something
    audit = b"".join(all_blobs(azurite, "audit", "").values()).decode(errors="replace")
    assert LOGGED
    for address in LOGGED:
        assert address not in logged and address not in audit
    assert "@example.com" not in logged and "@example.com" not in audit
