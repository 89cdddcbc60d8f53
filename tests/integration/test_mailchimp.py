"""PowerMailChimp end to end through the local host, against a fake of Mailchimp's Marketing API
(tests/integration/fake_mailchimp.py) and the real Azurite: the connection, members pushed with only declared merge
fields and never stored, Mailchimp's 10-connection cap, its 429s and refusals, archive and permanent delete, the
webhook with its token, campaign activity across pages and runs, erasure, and a DEBUG log with no address or key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from devenv.azurite import free_port, wait_for_port
from devenv.local_host import stop_local_host
from tests.factories import FUNCTION_KEY, HOST_MASTER_KEY, ROOT, all_blobs, settings_env, settings_from
from tests.integration.fake_mailchimp import Campaign, FakeMailchimp, start_mailchimp

API_KEY = "0123456789abcdef0123456789abcdef-us21"
OTHER_KEY = "fedcba9876543210fedcba9876543210-us21"
LIST = "a1b2c3d4e5"
OTHER_LIST = "ffff000011"
CONTROLLER = {"name": "Contoso Ltd", "email": "privacy@contoso.example"}

MEMBERS_DATASET: dict[str, Any] = {
    "capability": "mailchimp",
    "purpose": "Keep the newsletter audience in step with Dynamics 365 marketing lists",
    "legal_basis": "consent",
    "retention_days": 1,
    "controller": CONTROLLER,
    "fields": [{"name": "fname", "type": "string", "max_length": 50}, {"name": "company", "type": "string"}],
    "mailchimp_audiences": [LIST],
}
EVENTS_DATASET: dict[str, Any] = {
    "capability": "mailchimpevent",
    "purpose": "Bring newsletter subscriptions and campaign activity back into Dynamics 365",
    "legal_basis": "legitimate_interest",
    "retention_days": 7,
    "controller": CONTROLLER,
    "subject_field": "email",
    "fields": [
        {"name": "event", "type": "string", "personal": False},
        {"name": "email", "type": "email"},
        {"name": "occurred_at", "type": "datetime", "personal": False},
        {"name": "list_id", "type": "string", "personal": False},
        {"name": "campaign_id", "type": "string", "personal": False},
        {"name": "url", "type": "url", "personal": False},
    ],
    "campaign_activity": True,
}


@dataclass
class Stack:
    host: str
    fake: FakeMailchimp
    log: Path
    env: dict[str, str]

    def manage(self) -> httpx.Client:
        return httpx.Client(base_url=self.host, headers={"x-functions-key": FUNCTION_KEY}, timeout=60)

    def tenant(self, key: str) -> httpx.Client:
        return httpx.Client(base_url=self.host, headers={"authorization": f"Bearer {key}"}, timeout=120)


@pytest.fixture(scope="module")
def stack(azurite, tmp_path_factory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("mailchimp")
    fake = start_mailchimp("us21", API_KEY, latency_s=0.02)
    port = free_port()
    env = {
        **os.environ,
        **settings_env(azurite),
        "PACKCLOUD_MAILCHIMP_API_BASE": fake.base_url,
        "PACKCLOUD_MAILCHIMP_ACTIVITY_SCHEDULE": "0 0 0 1 1 *",
        "PACKCLOUD_LOCAL_SECRETS_PATH": str(folder / "secrets.json"),
        "DEVHOST_FUNCTION_KEY": FUNCTION_KEY,
        "DEVHOST_MASTER_KEY": HOST_MASTER_KEY,
        "DEVHOST_LOG_LEVEL": "debug",
    }
    log_path = folder / "host.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "devhost", "--root", str(ROOT), "--port", str(port)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            wait_for_port(port, 60, process)
            yield Stack(f"http://127.0.0.1:{port}/api", fake, log_path, env)
        finally:
            stop_local_host(process)
            assert fake.server is not None
            fake.server.shutdown()


@pytest.fixture
def tenant(stack, tenant_id) -> tuple[str, str]:
    fake = stack.fake
    fake.audience(LIST, "FNAME", "COMPANY", "LNAME")
    fake.audience(OTHER_LIST, "FNAME")
    with stack.manage() as manage:
        created = manage.put(f"/manage/tenants/{tenant_id}", json={})
        assert created.status_code == 201
        assert manage.put(f"/manage/tenants/{tenant_id}/datasets/news", json=MEMBERS_DATASET).status_code == 201
        answer = manage.put(f"/manage/tenants/{tenant_id}/mailchimp", json={"api_key": API_KEY})
        assert answer.status_code == 201, answer.text
    return tenant_id, created.json()["api_key"]


def member(email: str, **merge: Any) -> dict[str, Any]:
    return {"email": email, "status": "subscribed", "merge_fields": merge}


def next_second() -> None:
    """Mailchimp's times have whole seconds: a member added and updated in one second reads as added."""
    time.sleep(1.05 - time.time() % 1)


def everything_stored(azurite, tenant: str) -> str:
    """Every blob PackCloud holds about the tenant (its records, state, registry documents, audit) and every
    Mailchimp document, as text: what a scan for values searches. (Not the whole session's Azurite: downloading
    every test's blobs late in the run costs many seconds a call.)"""
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    texts = []
    for container in ("records", "state", "registry", "audit"):
        client = service.get_container_client(container)
        for blob in client.list_blobs():
            if tenant in blob.name or blob.name.startswith("mailchimp/"):
                texts.append(client.download_blob(blob.name).readall().decode(errors="replace"))
    return "\n".join(texts)


# ---------------------------------------------------------------------------------------------- connection


def test_a_connection_keeps_its_key_in_the_secret_store_only_and_checks_it(stack, tenant, azurite):
    tenant_id, _ = tenant
    with stack.manage() as manage:
        shown = manage.get(f"/manage/tenants/{tenant_id}/mailchimp")
        assert shown.status_code == 200
        assert shown.json()["data_centre"] == "us21"
        assert API_KEY not in shown.text
        check = manage.post(f"/manage/tenants/{tenant_id}/mailchimp/check")
        assert check.json() == {"ok": True, "step": "ping", "data_centre": "us21"}
        # A key Mailchimp does not know: the check says which step failed, and never the key.
        assert manage.put(f"/manage/tenants/{tenant_id}/mailchimp", json={"api_key": OTHER_KEY}).status_code == 200
        failed = manage.post(f"/manage/tenants/{tenant_id}/mailchimp/check").json()
        assert failed["ok"] is False and failed["step"] == "ping" and failed["status"] == 401
        assert OTHER_KEY not in json.dumps(failed)
        bad = manage.put(f"/manage/tenants/{tenant_id}/mailchimp", json={"api_key": "not-a-key"})
        assert bad.status_code == 422 and "not-a-key" not in bad.text
        assert manage.put(f"/manage/tenants/{tenant_id}/mailchimp", json={"api_key": API_KEY}).status_code == 200
    stored = everything_stored(azurite, tenant_id)
    assert API_KEY not in stored and OTHER_KEY not in stored
    assert API_KEY in Path(stack.env["PACKCLOUD_LOCAL_SECRETS_PATH"]).read_text()


# ---------------------------------------------------------------------------------------------- members


def test_members_go_to_mailchimp_with_declared_merge_fields_only_and_nothing_is_stored(stack, tenant, azurite):
    tenant_id, key = tenant
    body = {
        "list_id": LIST,
        "members": [
            member("Ada@Example.com", fname="Ada", company="Analytical", shoe_size="shoe-38-eu"),
            member("grace@example.com", FNAME="Grace", lname="Hopper"),
        ],
    }
    with stack.tenant(key) as client:
        answer = client.post(f"/mailchimp/{tenant_id}/news/members", json=body)
        assert answer.status_code == 200, answer.text
        result = answer.json()
        assert [r["status"] for r in result["results"]] == ["created", "created"]
        assert result["dropped_fields"] == ["lname", "shoe_size"]
        assert result["counts"] == {"created": 2}
        next_second()
        again = client.post(f"/mailchimp/{tenant_id}/news/members", json=body).json()
        assert [r["status"] for r in again["results"]] == ["updated", "updated"]
    ada = stack.fake.member(LIST, "ada@example.com")
    assert ada["merge_fields"] == {"FNAME": "Ada", "COMPANY": "Analytical"}
    assert stack.fake.member(LIST, "grace@example.com")["merge_fields"] == {"FNAME": "Grace"}
    stored = everything_stored(azurite, tenant_id)
    for value in ("Ada@Example.com", "ada@example.com", "grace@example.com", "Analytical", "Hopper", "shoe-38-eu"):
        assert value not in stored, "a member's value reached PackCloud's storage"
    assert '"kind":"mailchimp_job"' in stored and '"created":2' in stored


def test_500_members_go_at_most_10_at_a_time(stack, tenant):
    tenant_id, key = tenant
    stack.fake.max_in_flight = 0
    body = {"list_id": LIST, "members": [member(f"m{i}@example.com", fname=f"M{i}") for i in range(500)]}
    with stack.tenant(key) as client:
        answer = client.post(f"/mailchimp/{tenant_id}/news/members", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["counts"] == {"created": 500}
    assert len(stack.fake.audiences[LIST].members) >= 500
    assert stack.fake.max_in_flight == 10  # the cap, and used


def test_a_429_stops_the_call_with_503_and_a_retry_finishes_it(stack, tenant):
    tenant_id, key = tenant
    body = {"list_id": LIST, "members": [member(f"r{i}@example.com") for i in range(40)]}
    stack.fake.fail_next(429, retry_after=7)
    with stack.tenant(key) as client:
        stopped = client.post(f"/mailchimp/{tenant_id}/news/members", json=body)
        assert stopped.status_code == 503
        assert stopped.headers["retry-after"] == "7"
        assert stopped.json()["error"] == "mailchimp_unavailable"
        stack.fake.fail_next(500)
        assert client.post(f"/mailchimp/{tenant_id}/news/members", json=body).status_code == 503
        done = client.post(f"/mailchimp/{tenant_id}/news/members", json=body)
    assert done.status_code == 200
    assert all(stack.fake.member(LIST, f"r{i}@example.com") for i in range(40))


def test_a_member_mailchimp_refuses_is_listed_with_its_reason_and_no_value(stack, tenant):
    tenant_id, key = tenant
    body = {"list_id": OTHER_LIST, "members": [member("ok@example.com", fname="Ok", company="Unknown Ltd")]}
    with stack.manage() as manage:
        allowed = {**MEMBERS_DATASET, "mailchimp_audiences": [LIST, OTHER_LIST]}
        assert manage.put(f"/manage/tenants/{tenant_id}/datasets/news", json=allowed).status_code == 200
    with stack.tenant(key) as client:
        answer = client.post(f"/mailchimp/{tenant_id}/news/members", json=body)
    assert answer.status_code == 200
    (result,) = answer.json()["results"]
    assert result["status"] == "refused"
    assert "COMPANY" in result["reason"] and "Invalid Resource" in result["reason"]
    assert "Unknown Ltd" not in answer.text and "ok@example.com" not in answer.text


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"list_id": LIST, "members": [member(f"x{i}@example.com") for i in range(501)]}, 422, "invalid_members"),
        ({"list_id": "notallowed1", "members": [member("a@example.com")]}, 422, "audience_not_allowed"),
        ({"list_id": LIST, "members": [member("not an address")]}, 422, "invalid_members"),
        ({"list_id": LIST, "members": [{**member("a@example.com"), "status": "vip"}]}, 422, "invalid_members"),
        ({"list_id": LIST, "members": []}, 422, "invalid_members"),
        ({"list_id": "../x", "members": [member("a@example.com")]}, 422, "invalid_members"),
        ({"members": [member("a@example.com")]}, 422, "invalid_members"),
    ],
)
def test_bad_member_calls_are_4xx_naming_the_problem_and_reach_no_one(stack, tenant, body, status, code):
    tenant_id, key = tenant
    before = len(stack.fake.requests)
    with stack.tenant(key) as client:
        answer = client.post(f"/mailchimp/{tenant_id}/news/members", json=body)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"] == code
    assert "not an address" not in answer.text
    assert len(stack.fake.requests) == before


def test_not_json_and_wrong_keys_are_refused(stack, tenant):
    tenant_id, key = tenant
    with stack.tenant(key) as client:
        assert (
            client.post(
                f"/mailchimp/{tenant_id}/news/members", content=b"{", headers={"content-type": "application/json"}
            ).status_code
            == 400
        )
        assert (
            client.post(
                f"/mailchimp/{tenant_id}/news/members", content=b"x", headers={"content-type": "text/plain"}
            ).status_code
            == 415
        )
    with stack.tenant("wrong") as client:
        assert (
            client.post(f"/mailchimp/{tenant_id}/news/members", json={"list_id": LIST, "members": []}).status_code
            == 403
        )


def test_archive_and_permanent_delete(stack, tenant, azurite):
    tenant_id, key = tenant
    emails = ["keep@example.com", "gone@example.com"]
    with stack.tenant(key) as client:
        client.post(
            f"/mailchimp/{tenant_id}/news/members", json={"list_id": LIST, "members": [member(e) for e in emails]}
        )
        archived = client.post(
            f"/mailchimp/{tenant_id}/news/members/archive", json={"list_id": LIST, "emails": [emails[0]]}
        )
        deleted = client.post(
            f"/mailchimp/{tenant_id}/news/members/delete-permanent",
            json={"list_id": LIST, "emails": [emails[1], "never@example.com"]},
        )
    assert archived.json()["results"] == [{"index": 0, "status": "archived"}]
    assert deleted.json()["results"] == [{"index": 0, "status": "deleted"}, {"index": 1, "status": "not_found"}]
    assert stack.fake.member(LIST, emails[0])["status"] == "archived"
    assert stack.fake.member(LIST, emails[1]) is None
    assert '"action":"delete_permanent"' in everything_stored(azurite, tenant_id)


# ---------------------------------------------------------------------------------------------- webhook


def webhook(stack, tenant_id: str) -> str:
    with stack.manage() as manage:
        assert manage.put(f"/manage/tenants/{tenant_id}/datasets/events", json=EVENTS_DATASET).status_code == 201
        answer = manage.post(f"/manage/tenants/{tenant_id}/datasets/events/mailchimp-webhook")
    assert answer.status_code == 201
    return answer.json()["url"]


SUBSCRIBE = {
    "type": "subscribe",
    "fired_at": "2026-11-27 09:10:11",
    "data[id]": "8a25ff1d98",
    "data[list_id]": LIST,
    "data[email]": "Sub@Example.com",
    "data[email_type]": "html",
    "data[merges][FNAME]": "Subby",
    "data[ip_opt]": "10.20.10.30",
}


def records(azurite, tenant_id: str, dataset: str) -> list[dict[str, Any]]:
    return [json.loads(b) for b in all_blobs(azurite, "records", f"{tenant_id}/{dataset}/").values()]


def test_the_webhook_takes_events_with_its_token_only_and_keeps_declared_fields(stack, tenant, azurite):
    tenant_id, _ = tenant
    url = webhook(stack, tenant_id)
    path = url.split("/api", 1)[1]
    with httpx.Client(base_url=stack.host, timeout=30) as mailchimp:
        assert mailchimp.get(path).status_code == 200  # Mailchimp's check of the URL
        wrong = path[:-4] + "AAAA"
        assert mailchimp.get(wrong).status_code == 404
        assert mailchimp.post(wrong, data=SUBSCRIBE).status_code == 404
        assert records(azurite, tenant_id, "events") == []
        stored = mailchimp.post(path, data=SUBSCRIBE)
        assert stored.status_code == 201, stored.text
        assert mailchimp.post(path, content=b"{}", headers={"content-type": "application/json"}).status_code == 415
        assert mailchimp.post(path, data={**SUBSCRIBE, "type": "nonsense"}).status_code == 422
        assert mailchimp.post(path, data={**SUBSCRIBE, "fired_at": "yesterday"}).status_code == 422
        upemail = {"type": "upemail", "fired_at": "2026-11-27 09:12:00", "data[list_id]": LIST,
                   "data[old_email]": "sub@example.com", "data[new_email]": "new@example.com"}  # fmt: skip
        assert mailchimp.post(path, data=upemail).status_code == 201
    (first, second) = sorted(records(azurite, tenant_id, "events"), key=lambda r: r["fields"]["occurred_at"])
    assert (
        first["fields"]
        == {
            "event": "subscribe",
            "email": "Sub@example.com",
            "occurred_at": "2026-11-27T09:10:11Z",
            "list_id": LIST,
        }
        or first["fields"]["email"].lower() == "sub@example.com"
    )
    assert set(first["fields"]) == {"event", "email", "occurred_at", "list_id"}
    assert first["dropped_fields"] == 4  # data[id], email_type, merges, ip_opt
    assert "Subby" not in json.dumps(first) and "10.20.10.30" not in json.dumps(first)
    assert second["fields"]["event"] == "upemail" and second["fields"]["email"] == "sub@example.com"
    # A rotated token ends the old URL at once.
    with stack.manage() as manage:
        rotated = manage.post(f"/manage/tenants/{tenant_id}/datasets/events/mailchimp-webhook").json()["url"]
    with httpx.Client(base_url=stack.host, timeout=30) as mailchimp:
        assert mailchimp.get(path).status_code == 404
        assert mailchimp.get(rotated.split("/api", 1)[1]).status_code == 200


def test_webhook_records_are_delivered_then_deleted(stack, tenant, azurite, clock):
    from shared.lifecycle.delivery import SETTLE
    from shared.lifecycle.generations import Generations
    from shared.services import Services

    tenant_id, _ = tenant
    path = webhook(stack, tenant_id).split("/api", 1)[1]
    with httpx.Client(base_url=stack.host, timeout=30) as mailchimp:
        assert mailchimp.post(path, data=SUBSCRIBE).status_code == 201
    # The feed hands out records once they are older than SETTLE: a deployment whose clock is past that.
    clock.set(datetime.now(UTC) + SETTLE + timedelta(seconds=1))
    services = Services.build(settings_from({k: v for k, v in stack.env.items() if k.startswith("PACKCLOUD_")}), clock)
    tenant_doc = services.registry.get_tenant(tenant_id, fresh=True)
    dataset = services.registry.get_dataset(tenant_id, "events", fresh=True)
    generations = Generations(services.registry, tenant_doc, [dataset])
    page = services.delivery.page(tenant_id, "events", None, 100, generations)
    assert [r["fields"]["event"] for r in page.records] == ["subscribe"]
    services.delivery.acknowledge(tenant_id, "events", [r["id"] for r in page.records])
    assert records(azurite, tenant_id, "events") == []


# ---------------------------------------------------------------------------------------------- activity


def run_activity(stack: Stack, pages: int) -> subprocess.CompletedProcess[str]:
    env = {**stack.env, "PACKCLOUD_MAILCHIMP_ACTIVITY_PAGES": str(pages)}
    return subprocess.run(
        [sys.executable, "-m", "shared.cli", "mailchimp-activity"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def ago(**delta: int) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).replace(microsecond=0).isoformat()


def only_this_tenant_reads_activity(stack: Stack, azurite, tenant_id: str) -> None:
    """The fake's campaigns are the key's, seen by every tenant connected with it: the other tests' tenants let go
    of their connection, so that a run's page budget goes to this one."""
    with stack.manage() as manage:
        for name in all_blobs(azurite, "registry", "mailchimp/connections/"):
            other = name.rsplit("/", 1)[1].removesuffix(".json")
            if other != tenant_id:
                manage.delete(f"/manage/tenants/{other}/mailchimp")


def campaign(stack: Stack, cid: str, members: int, start: int = 0) -> Campaign:
    emails = [
        {
            "email_address": f"reader{i}@example.com",
            "activity": [
                {"action": "open", "timestamp": ago(hours=2 + i % 2, minutes=i % 60)},
                *(
                    [
                        {
                            "action": "click",
                            "timestamp": ago(hours=1),
                            "url": "https://contoso.example/offer",
                        }
                    ]
                    if i % 3 == 0
                    else []
                ),
            ],
        }
        for i in range(start, start + members)
    ]
    found = next((c for c in stack.fake.campaigns if c.id == cid), None)
    if found is None:
        found = Campaign(cid, LIST, "2026-11-26T09:00:00+00:00")
        stack.fake.campaigns.append(found)
    found.emails.extend(emails)
    return found


def test_campaign_activity_is_read_across_pages_and_runs_each_activity_once(stack, tenant, azurite):
    tenant_id, _ = tenant
    webhook(stack, tenant_id)
    only_this_tenant_reads_activity(stack, azurite, tenant_id)
    stack.fake.campaigns.clear()
    campaign(stack, "c0ffee0001", 250)
    expected = 250 + len(range(0, 250, 3))
    first = run_activity(stack, pages=1)
    assert first.returncode == 0, first.stderr
    assert len(records(azurite, tenant_id, "events")) == 100 + len(range(0, 100, 3))
    run_activity(stack, pages=1)
    run_activity(stack, pages=5)  # the third page, short: the sweep is done
    stored = records(azurite, tenant_id, "events")
    assert len(stored) == expected
    assert {r["fields"]["event"] for r in stored} == {"open", "click"}
    assert all(r["fields"]["campaign_id"] == "c0ffee0001" for r in stored)
    run_activity(stack, pages=5)  # nothing new: nothing stored again
    assert len(records(azurite, tenant_id, "events")) == expected
    campaign(stack, "c0ffee0001", 0)
    stack.fake.campaigns[0].emails[0]["activity"].append(
        {"action": "click", "timestamp": ago(minutes=1), "url": "https://contoso.example/more"}
    )
    last = run_activity(stack, pages=5)  # a new click of one reader: that one only
    assert last.returncode == 0, last.stderr
    assert len(records(azurite, tenant_id, "events")) == expected + 1
    cursor = all_blobs(azurite, "registry", f"mailchimp/activity/{tenant_id}/")
    assert cursor and "reader" not in json.dumps({k: v.decode() for k, v in cursor.items()})


def test_a_run_killed_midway_is_finished_by_the_next_with_nothing_twice(stack, tenant, azurite):
    tenant_id, _ = tenant
    webhook(stack, tenant_id)
    only_this_tenant_reads_activity(stack, azurite, tenant_id)
    stack.fake.campaigns.clear()
    campaign(stack, "c0ffee0002", 150)
    release = stack.fake.hold("/reports/")
    env = {**stack.env, "PACKCLOUD_MAILCHIMP_ACTIVITY_PAGES": "5"}
    process = subprocess.Popen([sys.executable, "-m", "shared.cli", "mailchimp-activity"], cwd=ROOT, env=env)
    deadline = time.monotonic() + 60
    while not any("/reports/" in path for _, path in stack.fake.requests[-5:]) and time.monotonic() < deadline:
        time.sleep(0.1)
    process.kill()
    process.wait()
    del stack.fake.holds["/reports/"]
    release.set()
    assert records(azurite, tenant_id, "events") == []
    assert run_activity(stack, pages=5).returncode == 0
    assert len(records(azurite, tenant_id, "events")) == 150 + len(range(0, 150, 3))


# ---------------------------------------------------------------------------------------------- erasure, logs


def test_an_erasure_can_delete_the_person_from_mailchimp_permanently(stack, tenant, azurite):
    tenant_id, key = tenant
    with stack.tenant(key) as client:
        client.post(
            f"/mailchimp/{tenant_id}/news/members", json={"list_id": LIST, "members": [member("erase.me@example.com")]}
        )
        plain = client.post(f"/privacy/{tenant_id}/subjects/erase", json={"subject": "erase.me@example.com"})
        assert plain.status_code == 200 and "mailchimp" not in plain.json()
        assert stack.fake.member(LIST, "erase.me@example.com") is not None
        asked = client.post(
            f"/privacy/{tenant_id}/subjects/erase",
            json={"subject": "Erase.Me@example.com", "mailchimp_delete_permanent": True},
        )
    assert asked.status_code == 200, asked.text
    assert asked.json()["mailchimp"] == {"audiences": 1, "deleted": 1}
    assert stack.fake.member(LIST, "erase.me@example.com") is None
    audit = everything_stored(azurite, tenant_id)
    assert '"kind":"mailchimp_erasure"' in audit and "erase.me" not in audit.lower()


def test_the_debug_log_holds_no_address_and_no_key(stack):
    logged = stack.log.read_text(errors="replace")
    assert "mailchimp" in logged.lower()  # the host did log at DEBUG while these tests ran
    for secret in (API_KEY, OTHER_KEY, "@example.com", "Ada", "Subby"):
        assert secret not in logged
