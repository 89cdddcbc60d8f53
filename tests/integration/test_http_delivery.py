"""The delivery into Dynamics 365 through the local host: its routes, and its timer delivering what the pixel and a
web form captured into the fake Dataverse (tests/integration/fake_dataverse.py). Everything else is real: Azurite
(its own, since the host's timer delivers every target of its account), the host, azure-identity, HTTPS."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from devenv.azurite import Azurite, free_port, start_azurite, wait_for_port
from devenv.local_host import stop_local_host
from tests.factories import (
    BROWSER_UA,
    CLIENT_SECRET,
    FORM_DELIVERED,
    FUNCTION_KEY,
    HOST_MASTER_KEY,
    LEAD_COLUMNS,
    LEADS,
    ORIGIN,
    PIXEL_DELIVERED,
    PIXEL_TO_LEADS,
    RECORD_KEY,
    ROOT,
    all_blobs,
    application_certificate,
    blob_states,
    settings_values,
    target_body,
    variant,
)
from tests.integration.fake_dataverse import Column, FakeDataverse, FakeEntra, fakes

TIMER_SECONDS = 2  # the host delivers every 2 s; records wait 15 s to settle (lifecycle/delivery.py)
DELIVERY_WAIT_S = 90


@dataclass
class Stack:
    api: str
    azurite: Azurite
    entra: FakeEntra
    orgs: list[FakeDataverse]
    secrets: Path
    log: Path


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("delivery-host")
    storage = start_azurite()
    try:
        with fakes(folder, organisations=2) as (ca, entra, orgs):
            for org in orgs:
                org.table(LEADS, "lead", RECORD_KEY, **{n: Column(k, s) for n, (k, s) in LEAD_COLUMNS.items()})
            port = free_port()
            env = {
                **os.environ,
                **settings_values(storage.connection_string),
                "PACKCLOUD_DELIVERY_SCHEDULE": f"*/{TIMER_SECONDS} * * * * *",
                "PACKCLOUD_DYNAMICS_HOST_PATTERNS": ",".join(org.host for org in orgs),
                "PACKCLOUD_ENTRA_AUTHORITY": entra.url,
                "PACKCLOUD_LOCAL_SECRETS_PATH": str(folder / "secrets.json"),
                "REQUESTS_CA_BUNDLE": str(ca.bundle),
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
                    yield Stack(f"http://127.0.0.1:{port}/api", storage, entra, orgs, folder / "secrets.json", log_path)
                finally:
                    stop_local_host(process)
    finally:
        storage.stop()


@pytest.fixture
def manage(stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.api, headers={"x-functions-key": FUNCTION_KEY}, timeout=60) as client:
        yield client


@pytest.fixture
def site(stack) -> Iterator[httpx.Client]:
    headers = {"user-agent": BROWSER_UA, "origin": ORIGIN, "referer": f"{ORIGIN}/"}
    with httpx.Client(base_url=stack.api, headers=headers, timeout=30) as client:
        yield client


@dataclass
class Tenant:
    id: str
    api_key: str
    client_id: str
    entra_tenant: str
    org: FakeDataverse


@pytest.fixture
def tenant(stack, manage, tenant_id) -> Iterator[Tenant]:
    created = manage.put(f"/manage/tenants/{tenant_id}", json={})
    assert created.status_code == 201
    entra_tenant, client = str(uuid.uuid4()), str(uuid.uuid4())
    org = stack.orgs[0]
    stack.entra.register(entra_tenant, client, secret=CLIENT_SECRET)
    org.users.add(client)
    yield Tenant(tenant_id, created.json()["api_key"], client, entra_tenant, org)
    manage.delete(f"/manage/tenants/{tenant_id}/delivery")
    manage.delete(f"/manage/tenants/{tenant_id}")


def give_target(manage: httpx.Client, tenant: Tenant, **changes) -> httpx.Response:
    body = target_body(tenant.org.url, tenant.entra_tenant, tenant.client_id, **changes)
    return manage.put(f"/manage/tenants/{tenant.id}/delivery", json=body)


def secrets_file(stack: Stack) -> bytes | None:
    return stack.secrets.read_bytes() if stack.secrets.exists() else None


def eventually(condition: Callable[[], bool], seconds: float = DELIVERY_WAIT_S) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the timer did not deliver in time"
        time.sleep(0.5)


def held(stack: Stack, tenant: str) -> set[str]:
    return {name.rsplit("/", 1)[-1][:-5] for name in all_blobs(stack.azurite, "records", f"{tenant}/")}


# ------------------------------------------------------------------------------------------------ the target


def test_a_target_is_given_shown_without_its_secret_replaced_and_removed(stack, manage, tenant):
    created = give_target(manage, tenant)
    assert created.status_code == 201, created.text
    shown = created.json()
    assert shown["organization_url"] == tenant.org.url and shown["credential"] == "client_secret"
    assert shown["status"] == {"state": "ok", "last_error": None, "paused_until": None}
    assert CLIENT_SECRET not in created.text and "secret_name" not in shown
    got = manage.get(f"/manage/tenants/{tenant.id}/delivery")
    assert got.status_code == 200 and got.json() == shown

    replaced = give_target(manage, tenant, client_secret=None, certificate=application_certificate())
    assert replaced.status_code == 200 and replaced.json()["credential"] == "certificate"
    assert replaced.json()["version"] != shown["version"]
    assert "PRIVATE KEY" not in replaced.text

    assert manage.delete(f"/manage/tenants/{tenant.id}/delivery").status_code == 204
    assert manage.get(f"/manage/tenants/{tenant.id}/delivery").status_code == 404
    assert manage.post(f"/manage/tenants/{tenant.id}/delivery/check").status_code == 404
    assert f"pc-{tenant.id}--".encode() not in (secrets_file(stack) or b"")
    kinds = [json.loads(line)["change"] for line in audit_lines(stack, tenant.id) if '"delivery_target"' in line]
    assert kinds == ["created", "replaced", "deleted"]


def audit_lines(stack: Stack, tenant: str) -> list[str]:
    blobs = all_blobs(stack.azurite, "audit", f"{tenant}/")
    return [line for body in blobs.values() for line in body.decode().splitlines()]


def test_an_unknown_tenant_has_no_target(manage):
    assert manage.get("/manage/tenants/nobody-here/delivery").json()["error"] == "unknown_tenant"
    assert manage.put("/manage/tenants/Bad_Id/delivery", json={}).status_code == 400


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"organization_url": "http://{host}/"}, "organization_url"),
        ({"organization_url": "https://contoso.crm4.dynamics.com/"}, "organization_url"),  # not this host's patterns
        ({"organization_url": "https://{host}.evil.example/"}, "organization_url"),
        ({"organization_url": "https://evil.example\\.{host}/"}, "organization_url"),
        ({"organization_url": "https://user@{host}/"}, "organization_url"),
        ({"entra_tenant_id": "contoso.onmicrosoft.com"}, "entra_tenant_id"),
        ({"client_id": "12345"}, "client_id"),
        ({"client_secret": ""}, "client_secret"),
        ({"client_secret": None}, "body"),
        ({"certificate": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"}, "certificate"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_every_bad_target_is_a_422_naming_the_field_with_nothing_stored(stack, manage, tenant, changes, field):
    before = blob_states(stack.azurite, ("registry", "audit"), within=(tenant.id,))
    secrets_before = secrets_file(stack)
    changes = {k: v.format(host=tenant.org.host) if isinstance(v, str) else v for k, v in changes.items()}
    if field == "certificate":
        changes["client_secret"] = None
    answer = give_target(manage, tenant, **changes)
    assert answer.status_code == 422, answer.text
    assert field in [error["field"] for error in answer.json()["errors"]]
    assert CLIENT_SECRET not in answer.text
    assert blob_states(stack.azurite, ("registry", "audit"), within=(tenant.id,)) == before
    assert secrets_file(stack) == secrets_before  # no secret written


@pytest.mark.parametrize(
    ("mapping", "field"),
    [
        ({**PIXEL_TO_LEADS, "columns": {"page_url": "pc_page", "phone": "telephone1"}}, "delivery.columns.phone"),
        ({**PIXEL_TO_LEADS, "table": None}, "delivery.table"),
        ({**PIXEL_TO_LEADS, "key": "Bad Key"}, "delivery.key"),
        ({**PIXEL_TO_LEADS, "meta": {"consent": "pc_consent"}}, "delivery.meta.consent"),
        ({**PIXEL_TO_LEADS, "columns": {"page_url": "pc_recordid"}}, "delivery.columns.page_url"),
    ],
)
def test_every_bad_mapping_is_a_422_naming_the_field_with_nothing_stored(stack, manage, tenant, mapping, field):
    before = blob_states(stack.azurite, ("registry", "audit"), within=(tenant.id,))
    answer = manage.put(f"/manage/tenants/{tenant.id}/datasets/visits", json=variant(delivery=mapping))
    assert answer.status_code == 422, answer.text
    assert field in [error["field"] for error in answer.json()["errors"]]
    assert blob_states(stack.azurite, ("registry", "audit"), within=(tenant.id,)) == before


def test_a_dataset_without_delivery_is_pulled_as_before(manage, tenant):
    answer = manage.put(f"/manage/tenants/{tenant.id}/datasets/visits", json=variant())
    assert answer.status_code == 201 and answer.json()["delivery"]["mode"] == "pull"


def test_the_check_says_which_step_fails(manage, tenant):
    give_target(manage, tenant)
    ok = manage.post(f"/manage/tenants/{tenant.id}/delivery/check")
    assert ok.status_code == 200 and ok.json()["ok"] is True, ok.text
    tenant.org.users.discard(tenant.client_id)
    refused = manage.post(f"/manage/tenants/{tenant.id}/delivery/check").json()
    assert (refused["ok"], refused["failed_step"]) == (False, "permission")
    give_target(manage, tenant, client_secret="not-the-secret")
    token = manage.post(f"/manage/tenants/{tenant.id}/delivery/check").json()
    assert (token["failed_step"], token["code"]) == ("token", "credentials_refused")
    assert "not-the-secret" not in json.dumps(token)


# ------------------------------------------------------------------------------------------------ the timer


def test_a_pixel_hit_and_a_form_post_become_rows_exactly_once_and_leave_azurite(stack, manage, site, tenant):
    assert give_target(manage, tenant).status_code == 201
    assert manage.put(f"/manage/tenants/{tenant.id}/datasets/visits", json=PIXEL_DELIVERED).status_code == 201
    assert manage.put(f"/manage/tenants/{tenant.id}/datasets/contact", json=FORM_DELIVERED).status_code == 201
    page = f"{ORIGIN}/pricing"
    hit = site.get(f"/px/{tenant.id}/visits", params={"page_url": page, "visitor": "visitor-e2e"})
    assert hit.status_code == 200
    form = site.post(
        f"/forms/{tenant.id}/contact", json={"email": "Jane.Roe@Example.com", "name": "Jane", "consent": "on"}
    )
    assert form.status_code == 201, form.text
    (pixel_id,) = held(stack, tenant.id) - {form.json()["id"]}
    form_id = form.json()["id"]

    eventually(lambda: held(stack, tenant.id) == set())

    rows = tenant.org.rows[LEADS]
    assert rows[pixel_id]["pc_page"] == page and rows[pixel_id]["pc_visitor"] == "visitor-e2e"
    assert rows[form_id]["emailaddress1"] == "Jane.Roe@example.com" and rows[form_id]["lastname"] == "Jane"
    assert rows[form_id]["pc_consent"] == "contact-2026-11"
    time.sleep(3 * TIMER_SECONDS)  # more runs: nothing sent again
    assert Counter(key for _, key in tenant.org.upserts if key in (pixel_id, form_id)) == {pixel_id: 1, form_id: 1}
    kinds = [json.loads(line)["kind"] for line in audit_lines(stack, tenant.id)]
    assert kinds.count("delivery") == 2  # one per dataset
    report = httpx.get(
        f"{stack.api}/privacy/{tenant.id}/report", headers={"authorization": f"Bearer {tenant.api_key}"}, timeout=30
    ).json()
    receipts = {d["dataset"]: d["delivery"]["last_receipt"] for d in report["datasets"]}
    assert receipts["visits"]["rows"] == [{"record": pixel_id, "row": rows[pixel_id]["id"]}]
    assert receipts["contact"]["rows"] == [{"record": form_id, "row": rows[form_id]["id"]}]


def test_a_dead_letter_is_listed_retried_and_delivered(stack, manage, site, tenant, monkeypatch):
    give_target(manage, tenant)
    assert manage.put(f"/manage/tenants/{tenant.id}/datasets/contact", json=FORM_DELIVERED).status_code == 201
    form = site.post(
        f"/forms/{tenant.id}/contact", json={"email": "long@example.com", "name": "Bartholomew-X", "consent": "on"}
    )
    record = form.json()["id"]
    key = {"authorization": f"Bearer {tenant.api_key}"}
    failed_url = f"{stack.api}/sync/{tenant.id}/contact/failed"

    def listed() -> list[dict]:
        return httpx.get(failed_url, headers=key, timeout=30).json()["failed"]

    eventually(lambda: bool(listed()))
    (letter,) = listed()
    assert (letter["id"], letter["status"], letter["code"]) == (record, 400, "0x80044331")
    assert "Bartholomew" not in json.dumps(letter)
    assert held(stack, tenant.id) == {record}
    report = httpx.get(f"{stack.api}/privacy/{tenant.id}/report", headers=key, timeout=30).json()
    (dataset,) = report["datasets"]
    assert dataset["delivery"]["refused"] == 1

    monkeypatch.setitem(tenant.org.tables[LEADS].columns, "lastname", Column("string", 100))
    retried = httpx.post(f"{failed_url}/retry", headers=key, json={"ids": [record]}, timeout=30)
    assert retried.json() == {"retried": 1, "not_failed": 0, "more": False}
    eventually(lambda: held(stack, tenant.id) == set())
    assert tenant.org.rows[LEADS][record]["lastname"] == "Bartholomew-X"
    assert listed() == []
    wrong = httpx.post(f"{failed_url}/retry", headers=key, json={"ids": [record], "all": True}, timeout=30)
    assert wrong.status_code == 422


def test_a_stopped_target_shows_why_and_a_new_target_resumes(stack, manage, site, tenant):
    give_target(manage, tenant)
    assert manage.put(f"/manage/tenants/{tenant.id}/datasets/visits", json=PIXEL_DELIVERED).status_code == 201
    tenant.org.users.discard(tenant.client_id)
    site.get(f"/px/{tenant.id}/visits", params={"page_url": f"{ORIGIN}/a"})
    status = lambda: manage.get(f"/manage/tenants/{tenant.id}/delivery").json()["status"]  # noqa: E731
    eventually(lambda: status()["state"] == "stopped")
    assert status()["last_error"]["code"] == "forbidden"
    assert len(held(stack, tenant.id)) == 1
    tenant.org.users.add(tenant.client_id)
    give_target(manage, tenant)
    eventually(lambda: held(stack, tenant.id) == set())
    assert status()["state"] == "ok"


def test_no_secret_token_or_captured_value_in_the_host_log_at_debug(stack, manage, site, tenant):
    give_target(manage, tenant)
    manage.put(f"/manage/tenants/{tenant.id}/datasets/contact", json=FORM_DELIVERED)
    values = ["Bartholomew-X", "Ada-Value", "secret.person@example.com"]
    for name, email in [(values[0], "one@example.com"), (values[1], values[2])]:
        site.post(f"/forms/{tenant.id}/contact", json={"email": email, "name": name, "consent": "on"})
    tenant.org.fail_next(503)
    eventually(lambda: len(held(stack, tenant.id)) == 1)  # one delivered, one refused
    manage.post(f"/manage/tenants/{tenant.id}/delivery/check")
    tenant.org.users.discard(tenant.client_id)
    manage.post(f"/manage/tenants/{tenant.id}/delivery/check")
    give_target(manage, tenant, client_secret="a-wrong-secret-value")
    manage.post(f"/manage/tenants/{tenant.id}/delivery/check")

    logged = stack.log.read_text(errors="replace")
    assert f"DEBUG packcloud.delivery: delivery for tenant {tenant.id}" in logged  # the search means something
    for value in [CLIENT_SECRET, "a-wrong-secret-value", *stack.entra.tokens, *values, "one@example.com"]:
        assert value not in logged
    assert not re.search(r"[?&][A-Za-z0-9_.%-]+=", logged), "a URL with a query string reached the log"
