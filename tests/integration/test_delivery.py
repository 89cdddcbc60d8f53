"""The delivery into Dynamics 365, in process: real Azurite, azure-identity against the fake Entra ID, the fake
Dataverse Web API (tests/integration/fake_dataverse.py), over HTTPS with a test CA. The HTTP routes and the timer
in the local host: test_http_delivery.py."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from devenv.azurite import start_azurite
from shared.core.clock import ManualClock
from shared.core.logs import quiet_request_logs
from shared.dataverse import dead_letters
from shared.dataverse.check import check_target
from shared.dataverse.targets import TargetIn
from shared.lifecycle.dataverse_push import BACKOFF_S, MAX_THROTTLED_RETRIES, Deliverer
from shared.lifecycle.delivery import SETTLE
from shared.registry.models import Dataset, Tenant, TenantIn
from shared.services import Services
from tests.factories import (
    CLIENT_SECRET,
    CONTACT,
    FORM_DELIVERED,
    LEAD_COLUMNS,
    LEADS,
    LINKS,
    PIXEL_DELIVERED,
    RECORD_KEY,
    ROOT,
    all_blobs,
    application_certificate,
    settings_env,
    target_body,
    variant,
)
from tests.integration.fake_dataverse import Column, FakeDataverse, FakeEntra, TrustedCA, fakes


@dataclass
class World:
    ca: TrustedCA
    entra: FakeEntra
    orgs: list[FakeDataverse]


@dataclass
class Connected:
    tenant: Tenant
    client_id: str
    org: FakeDataverse


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[World]:
    with fakes(tmp_path_factory.mktemp("dataverse"), organisations=2) as (ca, entra, orgs):
        for org in orgs:
            columns = {name: Column(kind, size) for name, (kind, size) in LEAD_COLUMNS.items()}
            org.table(LEADS, "lead", RECORD_KEY, **columns)
        yield World(ca, entra, orgs)


@pytest.fixture
def clock():
    # Near the real time: the command line (another process) judges the settling time by the system clock.
    return ManualClock(datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1))


def delivery_settings(settings, world: World, secrets: Path):
    return settings.model_copy(
        update={
            "dynamics_host_patterns": tuple(org.host for org in world.orgs),
            "entra_authority": world.entra.url,
            "local_secrets_path": secrets,
        }
    )


@pytest.fixture
def dv(settings, clock, world, monkeypatch, tmp_path) -> Iterator[Services]:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(world.ca.bundle))
    for org in world.orgs:
        org.reset()
    services = Services.build(delivery_settings(settings, world, tmp_path / "secrets.json"), clock)
    yield services
    # Every run delivers every target of the account: none outlives its test.
    for target in services.delivery_targets.all():
        services.delivery_targets.delete(target.tenant)
        services.registry.delete_tenant(target.tenant)


def connect(
    dv: Services,
    world: World,
    org: FakeDataverse,
    tenant_id: str,
    declaration: dict | None = None,
    dataset: str = "visits",
    certificate: str | None = None,
) -> Connected:
    entra_tenant, client = str(uuid.uuid4()), str(uuid.uuid4())
    world.entra.register(
        entra_tenant, client, secret=None if certificate else CLIENT_SECRET, certificate_pem=certificate
    )
    org.users.add(client)
    tenant, _ = dv.registry.put_tenant(tenant_id, TenantIn())
    dv.registry.put_dataset(tenant_id, dataset, Dataset.model_validate(declaration or PIXEL_DELIVERED))
    secret = {"client_secret": None, "certificate": certificate} if certificate else {}
    dv.delivery_targets.put(tenant, TargetIn.model_validate(target_body(org.url, entra_tenant, client, **secret)))
    return Connected(tenant, client, org)


def capture_pixels(dv: Services, tenant: str, count: int, dataset: str = "visits") -> list[str]:
    target = dv.capture.resolve(tenant, dataset, "pixel")

    def one(n: int) -> str:
        values = {"page_url": f"https://www.contoso.example/p/{n}", "visitor": f"visitor-{n:05d}"}
        return dv.capture.capture(target, values).record.id

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(count)))


def settle(dv: Services) -> None:
    dv.clock.advance(SETTLE + timedelta(seconds=1))  # type: ignore[attr-defined]


def held_records(azurite, tenant: str) -> set[str]:
    return {name.rsplit("/", 1)[-1].removesuffix(".json") for name in all_blobs(azurite, "records", f"{tenant}/")}


def receipts_of(azurite, tenant: str) -> dict[str, str]:
    rows: dict[str, str] = {}
    for body in all_blobs(azurite, "audit", f"{tenant}.receipts/").values():
        rows.update(json.loads(body)["rows"])
    return rows


# ------------------------------------------------------------------------------------------------ delivery


def test_records_become_rows_once_and_are_deleted_with_a_receipt(dv, world, azurite, tenant_id):
    org = world.orgs[0]
    connect(dv, world, org, tenant_id)
    ids = capture_pixels(dv, tenant_id, 5)
    settle(dv)

    report = dv.deliverer.run()

    assert report.tenants[tenant_id].state == "ok"
    assert (report.delivered, report.deleted, report.requests) == (5, 5, 1)
    rows = org.rows[LEADS]
    assert set(ids) <= set(rows)
    row = rows[ids[0]]
    assert row["pc_page"] == "https://www.contoso.example/p/0" and row["pc_visitor"] == "visitor-00000"
    assert set(row) == {"id", RECORD_KEY, "pc_page", "pc_visitor", "pc_capturedat"}  # mapped columns only
    assert held_records(azurite, tenant_id) == set()
    assert receipts_of(azurite, tenant_id) == {record: rows[record]["id"] for record in ids}
    (entry,) = [e for e in dv.audit.entries(tenant_id) if e["kind"] == "delivery"]
    assert (entry["dataset"], entry["via"], entry["acknowledged"], entry["deleted"], entry["refused"]) == (
        "visits",
        "dataverse",
        5,
        5,
        0,
    )
    assert "prefer" not in org.batch_headers[0]  # one atomic change set

    again = dv.deliverer.run()
    assert (again.delivered, again.requests, org.batch_count()) == (0, 0, 1)
    assert len(org.rows[LEADS]) == 5


def test_link_visits_are_delivered_like_every_record(dv, world, azurite, tenant_id):
    from shared.links.tracked import LinkRequest, Visit

    mapping = {
        "mode": "dataverse",
        "table": LEADS,
        "key": RECORD_KEY,
        "columns": {"target_url": "pc_page", "contact_id": "pc_visitor"},
        "meta": {"captured_at": "pc_capturedat"},
    }
    org = world.orgs[0]
    connect(dv, world, org, tenant_id, {**LINKS, "delivery": mapping}, dataset="assets")
    target = dv.capture.resolve(tenant_id, "assets", "link")
    request = LinkRequest(target_url="https://assets.contoso.example/b.pdf?t=1", contact_id=CONTACT)
    link = dv.links.create(target, request)
    assert dv.links.record_visit(dv.links.open(tenant_id, link.id), Visit({"user-agent": "Mozilla/5.0 (X11)"}))
    settle(dv)

    report = dv.deliverer.run()

    assert (report.delivered, report.deleted) == (1, 1)
    (row,) = org.rows[LEADS].values()
    assert row["pc_page"] == "https://assets.contoso.example/b.pdf" and row["pc_visitor"] == CONTACT
    assert set(row) == {"id", RECORD_KEY, "pc_page", "pc_visitor", "pc_capturedat"}  # mapped columns only
    assert held_records(azurite, tenant_id) == set()


def test_the_deleted_record_is_gone_for_the_pull_feed_and_export_too(dv, world, tenant_id):
    connect(dv, world, world.orgs[0], tenant_id)
    capture_pixels(dv, tenant_id, 2)
    settle(dv)
    dv.deliverer.run()
    from shared.lifecycle.generations import Generations

    tenant = dv.registry.get_tenant(tenant_id, fresh=True)
    dataset = dv.registry.get_dataset(tenant_id, "visits", fresh=True)
    page = dv.delivery.page(tenant_id, "visits", None, 100, Generations(dv.registry, tenant, [dataset]))
    assert page.records == []


def test_records_wait_for_the_settling_time(dv, world, azurite, tenant_id):
    connect(dv, world, world.orgs[0], tenant_id)
    ids = capture_pixels(dv, tenant_id, 2)
    assert dv.deliverer.run().delivered == 0
    assert held_records(azurite, tenant_id) == set(ids)
    settle(dv)
    assert dv.deliverer.run().delivered == 2


def test_pull_datasets_and_other_tenants_are_not_touched(dv, world, azurite, tenant_id):
    connect(dv, world, world.orgs[0], tenant_id)
    dv.registry.put_dataset(tenant_id, "pulled", Dataset.model_validate(variant()))
    pulled = capture_pixels(dv, tenant_id, 3, dataset="pulled")
    delivered = capture_pixels(dv, tenant_id, 1)
    settle(dv)
    report = dv.deliverer.run()
    assert report.delivered == 1 and set(world.orgs[0].rows[LEADS]) == set(delivered)
    assert held_records(azurite, tenant_id) == set(pulled)


def test_a_record_of_a_deleted_dataset_generation_is_never_delivered(dv, world, azurite, tenant_id, settings):
    connect(dv, world, world.orgs[0], tenant_id)
    # Another instance still has the dataset in its registry cache when it is deleted and declared again.
    stale = Services.build(settings.model_copy(update={"registry_cache_ttl_seconds": 300}), dv.clock)
    target = stale.capture.resolve(tenant_id, "visits", "pixel")
    assert dv.registry.delete_dataset(tenant_id, "visits")
    dv.registry.put_dataset(tenant_id, "visits", Dataset.model_validate(PIXEL_DELIVERED))
    old = stale.capture.capture(target, {"page_url": "https://www.contoso.example/old"}).record.id
    new = capture_pixels(dv, tenant_id, 1)
    settle(dv)

    report = dv.deliverer.run()

    assert set(world.orgs[0].rows[LEADS]) == set(new)
    assert old not in world.orgs[0].rows[LEADS]
    assert report.tenants[tenant_id].datasets["visits"].stale == 1
    assert held_records(azurite, tenant_id) == set()  # deleted, not delivered
    assert [e["deleted"] for e in dv.audit.entries(tenant_id) if e["kind"] == "stale_generation"] == [1]


def test_full_batches_follow_the_dop_hint(dv, world, azurite, tenant_id, settings, tmp_path):
    services = Services.build(
        delivery_settings(settings, world, tmp_path / "secrets.json").model_copy(update={"delivery_batch_size": 100}),
        dv.clock,
    )
    org = world.orgs[0]
    org.dop_hint, org.op_seconds = 2, 0.002  # each batch takes a while: the next ones wait for a slot
    connect(services, world, org, tenant_id)
    ids = capture_pixels(services, tenant_id, 450)
    settle(services)

    report = services.deliverer.run()

    assert report.delivered == 450 and set(org.rows[LEADS]) == set(ids)
    assert report.requests == org.batch_count() == 5  # 4 full batches and the rest
    assert org.most_in_flight == 2  # as many at once as Dataverse advised, no more
    assert held_records(azurite, tenant_id) == set()


def test_a_certificate_signs_the_token_request(dv, world, tenant_id):
    org = world.orgs[1]
    connect(dv, world, org, tenant_id, certificate=application_certificate())
    ids = capture_pixels(dv, tenant_id, 2)
    settle(dv)
    assert dv.deliverer.run().delivered == 2
    assert set(org.rows[LEADS]) == set(ids)


# ------------------------------------------------------------------------------------------------ failures


def test_a_429_storm_on_one_tenant_leaves_the_other_unaffected(dv, world, azurite, tenant_id):
    stormy, calm = world.orgs
    connect(dv, world, stormy, tenant_id)
    other = tenant_id + "-calm"
    connect(dv, world, calm, other)
    stormy_ids = capture_pixels(dv, tenant_id, 3)
    calm_ids = capture_pixels(dv, other, 3)
    settle(dv)
    stormy.fail_next(429, count=1000, retry_after=120)

    report = dv.deliverer.run()

    assert report.tenants[other].state == "ok" and set(calm.rows[LEADS]) == set(calm_ids)
    assert held_records(azurite, other) == set()
    assert report.tenants[tenant_id].state == "paused"
    assert held_records(azurite, tenant_id) == set(stormy_ids) and stormy.rows[LEADS] == {}
    target = dv.delivery_targets.get(dv.registry.get_tenant(tenant_id, fresh=True))
    status = dv.delivery_targets.status(target)
    assert status.paused_until == dv.clock.now() + timedelta(seconds=120)
    assert status.state == "ok"

    asked = stormy.batch_count()
    dv.deliverer.run()
    assert stormy.batch_count() == asked  # still paused: not one request

    stormy.scripted.clear()
    dv.clock.advance(timedelta(seconds=121))
    assert dv.deliverer.run().tenants[tenant_id].state == "ok"
    assert set(stormy.rows[LEADS]) == set(stormy_ids)


def test_a_short_retry_after_is_waited_out_in_the_run(dv, world, tenant_id):
    org = world.orgs[0]
    connect(dv, world, org, tenant_id)
    capture_pixels(dv, tenant_id, 2)
    settle(dv)
    org.fail_next(429, retry_after=1)
    report = dv.deliverer.run()
    assert (report.delivered, report.requests) == (2, 2)


def two_records_and_a_recorded_sleep(dv, world, tenant_id) -> tuple[FakeDataverse, Deliverer, list[float]]:
    """A connected organisation with two records settled, and a deliverer whose waits are recorded, not slept."""
    org = world.orgs[0]
    connect(dv, world, org, tenant_id)
    capture_pixels(dv, tenant_id, 2)
    settle(dv)
    pauses: list[float] = []
    return org, dv.push_deliverer(session=dv.dataverse_session, sleep=pauses.append), pauses


def test_transient_failures_are_retried_with_back_off(dv, world, azurite, tenant_id):
    org, deliverer, pauses = two_records_and_a_recorded_sleep(dv, world, tenant_id)

    org.fail_next(503, count=2)
    report = deliverer.run()
    assert (report.delivered, report.requests, pauses) == (2, 3, [1.0, 2.0])

    more = capture_pixels(dv, tenant_id, 1)
    settle(dv)
    org.fail_next(503, count=10)
    report = deliverer.run()
    assert report.tenants[tenant_id].state == "failing" and report.tenants[tenant_id].error == "dataverse_503"
    assert held_records(azurite, tenant_id) == set(more)
    target = dv.delivery_targets.get(dv.registry.get_tenant(tenant_id, fresh=True))
    status = dv.delivery_targets.status(target)
    assert (status.state, status.error, status.error_at) == ("failing", "dataverse_503", dv.clock.now())

    org.scripted.clear()
    assert deliverer.run().tenants[tenant_id].state == "ok"
    assert held_records(azurite, tenant_id) == set()
    assert dv.delivery_targets.status(target).state == "ok"


def test_throttling_and_failures_each_have_their_own_retries(dv, world, azurite, tenant_id):
    """A batch goes again after each of five short 429s and after each back-off step, counted apart: the 429s
    between two failures do not use up the back-off, nor the failures the 429s; a sixth 429 pauses the tenant."""
    org, deliverer, pauses = two_records_and_a_recorded_sleep(dv, world, tenant_id)

    org.fail_next(503, count=len(BACKOFF_S) - 1)
    org.fail_next(429, count=MAX_THROTTLED_RETRIES, retry_after=1)
    org.fail_next(503)
    report = deliverer.run()
    assert (report.delivered, report.requests) == (2, len(BACKOFF_S) + MAX_THROTTLED_RETRIES + 1)
    assert [pause for pause in pauses if pause > 1] == list(BACKOFF_S[1:])  # the back-off steps, in order

    more = capture_pixels(dv, tenant_id, 1)
    settle(dv)
    org.fail_next(429, count=MAX_THROTTLED_RETRIES + 1, retry_after=1)
    report = deliverer.run()
    assert (report.tenants[tenant_id].state, report.requests) == ("paused", MAX_THROTTLED_RETRIES + 1)
    assert held_records(azurite, tenant_id) == set(more)


def test_an_expired_token_gets_one_fresh_token(dv, world, tenant_id):
    org = world.orgs[0]
    connect(dv, world, org, tenant_id)
    capture_pixels(dv, tenant_id, 1)
    settle(dv)
    dv.deliverer.run()
    issued = world.entra.issued

    capture_pixels(dv, tenant_id, 1)
    settle(dv)
    dv.deliverer.run()
    assert world.entra.issued == issued  # cached until it expires

    world.entra.expire_all()
    capture_pixels(dv, tenant_id, 1)
    settle(dv)
    report = dv.deliverer.run()
    assert report.delivered == 1 and report.tenants[tenant_id].state == "ok"
    assert world.entra.issued == issued + 1
    assert [status for method, _, status in org.requests if method == "POST"][-2:] == [401, 200]


def test_refused_credentials_stop_the_tenant_until_its_target_changes(dv, world, azurite, tenant_id):
    org = world.orgs[0]
    connected = connect(dv, world, org, tenant_id)
    ids = capture_pixels(dv, tenant_id, 2)
    settle(dv)
    org.users.discard(connected.client_id)  # the application user was removed: 403

    report = dv.deliverer.run()
    assert (report.tenants[tenant_id].state, report.tenants[tenant_id].error) == ("stopped", "forbidden")
    assert held_records(azurite, tenant_id) == set(ids)
    stops = [e for e in dv.audit.entries(tenant_id) if e["kind"] == "delivery_stopped"]
    assert len(stops) == 1 and stops[0]["reason"] == "forbidden"

    asked = len(org.requests)
    dv.deliverer.run()
    assert len(org.requests) == asked  # stopped: nothing sent, no second audit entry
    assert len([e for e in dv.audit.entries(tenant_id) if e["kind"] == "delivery_stopped"]) == 1

    org.users.add(connected.client_id)
    tenant = dv.registry.get_tenant(tenant_id, fresh=True)
    target = dv.delivery_targets.get(tenant)
    body = target_body(org.url, str(target.entra_tenant_id), connected.client_id)
    dv.delivery_targets.put(tenant, TargetIn.model_validate(body))
    assert dv.deliverer.run().delivered == 2


def test_a_401_after_a_fresh_token_stops_the_tenant(dv, world, tenant_id):
    org = world.orgs[0]
    connect(dv, world, org, tenant_id)
    capture_pixels(dv, tenant_id, 1)
    settle(dv)
    issued = world.entra.issued
    org.fail_next(401, count=2)
    report = dv.deliverer.run()
    assert (report.tenants[tenant_id].state, report.tenants[tenant_id].error) == ("stopped", "unauthorized")
    assert world.entra.issued == issued + 2  # the first token, then one fresh one


def test_a_wrong_secret_stops_the_tenant(dv, world, tenant_id):
    org = world.orgs[0]
    connect(dv, world, org, tenant_id)
    tenant = dv.registry.get_tenant(tenant_id, fresh=True)
    target = dv.delivery_targets.get(tenant)
    body = target_body(org.url, str(target.entra_tenant_id), str(target.client_id), client_secret="wrong")
    dv.delivery_targets.put(tenant, TargetIn.model_validate(body))
    capture_pixels(dv, tenant_id, 1)
    settle(dv)
    report = dv.deliverer.run()
    assert (report.tenants[tenant_id].state, report.tenants[tenant_id].error) == ("stopped", "credentials_refused")
    assert org.batch_count() == 0


# ------------------------------------------------------------------------------------------------ dead letters


def capture_forms(dv: Services, tenant: str, names: list[str], employees: object = 5) -> list[str]:
    target = dv.capture.resolve(tenant, "contact", "webform")
    ids = []
    for n, name in enumerate(names):
        values = {"email": f"person{n}@example.com", "name": name, "employees": employees}
        meta = {"consent": {"given": True, "text_version": "contact-2026-11", "at": dv.clock.now().isoformat()}}
        ids.append(dv.capture.capture(target, values, meta=meta).record.id)
    return ids


def test_a_refused_record_is_dead_lettered_the_others_delivered(dv, world, azurite, tenant_id, monkeypatch):
    org = world.orgs[0]
    connect(dv, world, org, tenant_id, FORM_DELIVERED, dataset="contact")
    good = capture_forms(dv, tenant_id, ["Ada", "Grace"])
    (bad,) = capture_forms(dv, tenant_id, ["Bartholomew-X"])  # 13 characters: the fake lastname column takes 10
    settle(dv)

    report = dv.deliverer.run()

    counts = report.tenants[tenant_id].datasets["contact"]
    assert (counts.delivered, counts.refused, counts.requests) == (2, 1, 2)  # atomic, then the rest isolated
    assert set(org.rows[LEADS]) == set(good)
    assert held_records(azurite, tenant_id) == {bad}
    letters, more = dead_letters.page(dv.storage, tenant_id, "contact", 100, None)
    assert more is None and [letter.record_id for letter in letters] == [bad]
    letter = letters[0]
    assert (letter.status, letter.code) == (400, "0x80044331")
    assert "'lastname' attribute of the 'lead' entity" in letter.message
    assert "Bartholomew" not in letter.message

    assert dv.deliverer.run().requests == 0  # a dead letter is not sent again by itself

    monkeypatch.setitem(org.tables[LEADS].columns, "lastname", Column("string", 100))
    assert dead_letters.clear(dv.storage, tenant_id, "contact", bad)
    assert dv.deliverer.run().delivered == 1
    assert held_records(azurite, tenant_id) == set()
    assert org.rows[LEADS][bad]["lastname"] == "Bartholomew-X"


def test_a_refusal_quoting_the_value_is_kept_without_it(dv, world, tenant_id):
    mapping = {**FORM_DELIVERED["delivery"], "columns": {"email": "emailaddress1", "name": "numberofemployees"}}
    connect(dv, world, world.orgs[0], tenant_id, {**FORM_DELIVERED, "delivery": mapping}, dataset="contact")
    (record,) = capture_forms(dv, tenant_id, ["Jane Q. Doe"])
    settle(dv)
    dv.deliverer.run()
    (letter,) = dead_letters.page(dv.storage, tenant_id, "contact", 100, None)[0]
    assert letter.record_id == record
    assert letter.message == "Cannot convert the literal '[removed]' to the expected type '[removed]'."


def test_a_dead_letter_still_expires_at_retention(dv, world, azurite, tenant_id):
    connect(dv, world, world.orgs[0], tenant_id, FORM_DELIVERED, dataset="contact")
    capture_forms(dv, tenant_id, ["Bartholomew-X"])
    settle(dv)
    assert dv.deliverer.run().refused == 1
    dv.clock.advance(timedelta(days=FORM_DELIVERED["retention_days"], hours=1))  # type: ignore[attr-defined]
    dv.purger().run()
    assert held_records(azurite, tenant_id) == set()


# ------------------------------------------------------------------------------------------------ interruptions


def cli_env(azurite, world: World, secrets: Path) -> dict[str, str]:
    return {
        **os.environ,
        **settings_env(azurite),
        "PACKCLOUD_DYNAMICS_HOST_PATTERNS": ",".join(org.host for org in world.orgs),
        "PACKCLOUD_ENTRA_AUTHORITY": world.entra.url,
        "PACKCLOUD_LOCAL_SECRETS_PATH": str(secrets),
        "REQUESTS_CA_BUNDLE": str(world.ca.bundle),
    }


def test_a_deliverer_killed_mid_batch_then_run_again_makes_no_row_twice_and_loses_none(
    dv, world, azurite, tenant_id, tmp_path
):
    org = world.orgs[0]
    connect(dv, world, org, tenant_id)
    ids = capture_pixels(dv, tenant_id, 30)
    settle(dv)
    held = org.hold_next()
    command = [sys.executable, "-m", "shared.cli", "deliver"]
    env = cli_env(azurite, world, tmp_path / "secrets.json")
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert held.committed.wait(60), "the deliverer never sent its batch"
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    finally:
        held.release.set()
        if process.poll() is None:
            process.kill()
    assert set(org.rows[LEADS]) == set(ids)  # Dataverse has them all ...
    assert held_records(azurite, tenant_id) == set(ids)  # ... and PackCloud, never told, still holds them all

    again = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, timeout=120)
    assert again.returncode == 0, again.stderr.decode()
    assert held_records(azurite, tenant_id) == set()
    assert len(org.rows[LEADS]) == len(ids)  # no row twice
    upserts = Counter(key for _, key in org.upserts)
    assert set(upserts) == set(ids) and set(upserts.values()) == {2}  # each sent twice, one row each
    assert set(receipts_of(azurite, tenant_id)) == set(ids)


def test_azurite_stopped_mid_run_deletes_nothing_that_was_not_delivered(world, settings, clock, tmp_path, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(world.ca.bundle))
    org = world.orgs[1]
    org.reset()
    storage = start_azurite(location=tmp_path / "azurite")
    try:
        own = settings.model_copy(update={"storage_connection_string": SecretStr(storage.connection_string)})
        services = Services.build(delivery_settings(own, world, tmp_path / "secrets.json"), clock)
        tenant_id = "t-" + uuid.uuid4().hex[:12]
        connect(services, world, org, tenant_id)
        ids = capture_pixels(services, tenant_id, 20)
        settle(services)
        held = org.hold_next()
        outcome = {}
        run = threading.Thread(target=lambda: outcome.update(report=services.deliverer.run()))
        run.start()
        assert held.committed.wait(60)
        storage.stop()
        held.release.set()
        run.join(120)
        assert outcome["report"].tenants[tenant_id].state == "storage_unavailable"

        storage = start_azurite(port=storage.port, location=tmp_path / "azurite")
        assert held_records(storage, tenant_id) == set(ids)  # Dataverse has them; not one deleted unconfirmed
        assert set(org.rows[LEADS]) == set(ids)
        assert services.deliverer.run().deleted == len(ids)
        assert held_records(storage, tenant_id) == set() and len(org.rows[LEADS]) == len(ids)
    finally:
        storage.stop()


# ------------------------------------------------------------------------------------------------ what is kept


def test_the_check_names_the_step_that_fails(dv, world, tenant_id):
    org = world.orgs[0]
    connected = connect(dv, world, org, tenant_id)
    tenant = dv.registry.get_tenant(tenant_id, fresh=True)
    target = dv.delivery_targets.get(tenant)
    ok = check_target(dv.delivery_targets, target, dv.dataverse_session)
    assert ok["ok"] is True and ok["steps"] == {"token": "ok", "organization_url": "ok", "permission": "ok"}

    org.users.discard(connected.client_id)
    refused = check_target(dv.delivery_targets, target, dv.dataverse_session)
    assert (refused["ok"], refused["failed_step"]) == (False, "permission")

    wrong = target_body(org.url, str(target.entra_tenant_id), connected.client_id, client_secret="wrong")
    target, _ = dv.delivery_targets.put(tenant, TargetIn.model_validate(wrong))
    token = check_target(dv.delivery_targets, target, dv.dataverse_session)
    assert (token["failed_step"], token["code"]) == ("token", "credentials_refused")
    assert token["steps"] == {"token": "failed", "organization_url": "not_tried", "permission": "not_tried"}


def test_the_secret_is_in_the_secret_store_only_and_replaced_under_a_new_name(dv, world, azurite, tenant_id, tmp_path):
    connect(dv, world, world.orgs[0], tenant_id)
    stored = json.loads((tmp_path / "secrets.json").read_text())
    (first,) = [name for name in stored if name.startswith(f"pc-{tenant_id}--dataverse-")]
    assert stored[first] == CLIENT_SECRET
    for container in ("registry", "audit", "records", "state"):
        assert all(CLIENT_SECRET.encode() not in body for body in all_blobs(azurite, container).values())

    tenant = dv.registry.get_tenant(tenant_id, fresh=True)
    target = dv.delivery_targets.get(tenant)
    body = target_body(world.orgs[0].url, str(target.entra_tenant_id), str(target.client_id), client_secret="new-1")
    dv.delivery_targets.put(tenant, TargetIn.model_validate(body))
    stored = json.loads((tmp_path / "secrets.json").read_text())
    names = [name for name in stored if name.startswith(f"pc-{tenant_id}--")]
    assert len(names) == 1 and names[0] != first and stored[names[0]] == "new-1"


def test_a_target_that_outlived_its_tenant_is_removed_with_its_secret(dv, world, tenant_id, tmp_path):
    connect(dv, world, world.orgs[0], tenant_id)
    dv.registry.delete_tenant(tenant_id)
    dv.registry.put_tenant(tenant_id, TenantIn())  # another generation: the old target is not its own
    assert dv.delivery_targets.get(dv.registry.get_tenant(tenant_id, fresh=True)) is None
    dv.deliverer.run()
    assert all(target.tenant != tenant_id for target in dv.delivery_targets.all())
    assert not any(name.startswith(f"pc-{tenant_id}--") for name in json.loads((tmp_path / "secrets.json").read_text()))


def test_no_secret_token_or_captured_value_in_logs_audit_or_errors(dv, world, azurite, tenant_id, caplog):
    quiet_request_logs()  # as function_app does at start-up
    caplog.set_level(logging.DEBUG)
    org = world.orgs[0]
    answers = []
    connected = connect(dv, world, org, tenant_id, FORM_DELIVERED, dataset="contact")
    values = ["Bartholomew-X", "Ada-Lovelace-Value"]
    capture_forms(dv, tenant_id, values)
    settle(dv)
    org.fail_next(503)
    org.fail_next(429, retry_after=1)
    dv.deliverer.run()  # one delivered, one refused (its value quoted nowhere)
    tenant = dv.registry.get_tenant(tenant_id, fresh=True)
    target = dv.delivery_targets.get(tenant)
    answers.append(check_target(dv.delivery_targets, target, dv.dataverse_session))
    org.users.discard(connected.client_id)
    answers.append(check_target(dv.delivery_targets, target, dv.dataverse_session))
    capture_forms(dv, tenant_id, ["Grace-Hopper-Value"])
    settle(dv)
    dv.deliverer.run()  # 403: stopped
    answers.append([letter.public() for letter in dead_letters.page(dv.storage, tenant_id, "contact", 100, None)[0]])

    secrets = [CLIENT_SECRET, *world.entra.tokens]
    personal = [*values, "Grace-Hopper-Value", "person0@example.com", "person1@example.com"]
    logged = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert f"delivery for tenant {tenant_id}: stopped (forbidden)" in logged  # the log was really read
    kept = b"".join(body for container in ("audit", "registry") for body in all_blobs(azurite, container).values())
    metadata = json.dumps(
        [letter.public() for letter in dead_letters.page(dv.storage, tenant_id, "contact", 100, None)[0]]
    )
    shown = json.dumps(answers)
    for text in (logged, kept.decode(), metadata, shown):
        for value in secrets + personal:
            assert value not in text


# ------------------------------------------------------------------------------------------------ registration


def test_a_registration_may_carry_the_target(dv, world, azurite, tmp_path):
    from shared.registration.engine import RegistrationIn
    from tests.factories import registration

    org = world.orgs[0]
    entra_tenant, client = str(uuid.uuid4()), str(uuid.uuid4())
    world.entra.register(entra_tenant, client, secret=CLIENT_SECRET)
    org.users.add(client)
    body = registration(
        str(uuid.uuid4()),
        region="eu",
        **{"organization.url": org.url},
        delivery={"entra_tenant_id": entra_tenant, "client_id": client, "client_secret": CLIENT_SECRET},
    )
    status, created = dv.registrations.register(RegistrationIn.model_validate(body))
    assert status == 201
    tenant = dv.registry.get_tenant(created["tenant"], fresh=True)
    target = dv.delivery_targets.get(tenant)
    assert (target.organization_url, str(target.client_id)) == (org.url, client)
    assert CLIENT_SECRET not in json.dumps(created)
    assert json.loads((tmp_path / "secrets.json").read_text())[target.secret_name] == CLIENT_SECRET
    (entry,) = [e for e in dv.audit.entries(tenant.id) if e["kind"] == "registration"]
    assert entry["delivery_target"] is True

    dv.registry.put_dataset(tenant.id, "visits", Dataset.model_validate(PIXEL_DELIVERED))
    ids = capture_pixels(dv, tenant.id, 1)
    settle(dv)
    assert dv.deliverer.run().delivered == 1 and set(org.rows[LEADS]) == set(ids)


def test_the_dry_run_prints_what_would_go_and_sends_nothing(dv, world, azurite, tenant_id, tmp_path):
    org = world.orgs[0]
    connect(dv, world, org, tenant_id)
    ids = capture_pixels(dv, tenant_id, 3)
    settle(dv)
    env = cli_env(azurite, world, tmp_path / "secrets.json")
    command = [sys.executable, "-m", "shared.cli", "deliver", "--dry-run"]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, timeout=120, text=True)
    assert done.returncode == 0, done.stderr
    printed = [line for line in done.stdout.splitlines() if line.startswith(f"{tenant_id}/")]
    assert sorted(printed) == sorted(
        f"{tenant_id}/visits -> leads(pc_recordid='{record}') [pc_recordid, pc_page, pc_visitor, pc_capturedat]"
        for record in ids
    )
    assert "visitor-" not in done.stdout  # ids and column names, never a value
    assert org.requests == []  # no token asked for, nothing sent
    assert held_records(azurite, tenant_id) == set(ids)
