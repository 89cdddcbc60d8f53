"""PowerEmail delivery events in process, against the real Azurite: a storage failure part-way through a batch is a
503 and SendGrid's retry stores every event exactly once; events delivered into Dataverse (the fake Web API over
HTTPS, through the real clients); the `email` pack's registration gives the verification key to the tenant's region.
The HTTP route itself: test_http_email_events.py."""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from devenv.azurite import free_port
from devenv.sendgrid_events import WebhookKey, batch, sendgrid_event
from shared.core.clock import ManualClock
from shared.core.errors import StorageUnavailable, Unprocessable
from shared.dataverse.targets import TargetIn
from shared.lifecycle.delivery import SETTLE
from shared.registration.engine import RegistrationIn
from shared.registry.models import Dataset, TenantIn
from shared.services import Services
from shared.storage.secrets import region_key_secret_name
from tests.factories import (
    CLIENT_SECRET,
    FUNCTION_KEY,
    HOST_MASTER_KEY,
    RECORD_KEY,
    US_URL,
    all_blobs,
    registration,
    settings_env,
    target_body,
)
from tests.integration.fake_dataverse import Column, fakes
from tests.integration.storage_proxy import Seen, settings_through

DATASET = {
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
    ],
}
EVENTS_TABLE = "pc_emailevents"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime.now(UTC).replace(microsecond=0))


def headers_of(key: WebhookKey, body: bytes, clock: ManualClock):
    lowered = {k.lower(): v for k, v in key.headers(body, int(clock.now().timestamp())).items()}
    return lowered.get


def events(count: int) -> list[dict]:
    return [sendgrid_event(n) for n in range(count)]


def make_tenant(services: Services, tenant_id: str, declaration: dict | None = None) -> WebhookKey:
    services.registry.put_tenant(tenant_id, TenantIn())
    services.registry.put_dataset(tenant_id, "mail", Dataset.model_validate(declaration or DATASET))
    key = WebhookKey.generate()
    services.email_keys.put(services.registry.get_tenant(tenant_id, fresh=True), key.public_base64)
    return key


# ------------------------------------------------------------------ a storage failure part-way through a batch


class FailingStorage:
    """At the proxy in front of Azurite: a 503 to every upload of the next `fail_records` records (the blob SDK's
    own retries included), or to everything while `down`; the rest passes through unchanged."""

    def __init__(self) -> None:
        self.fail_records = 0
        self.container = "records/"  # whose uploads fail_records counts
        self.down = False
        self.doomed: set[str] = set()
        self.lock = threading.Lock()

    def __call__(self, request: Seen) -> int | None:
        failed = request.method == "PUT" and request.blob.startswith(self.container) and self._take(request.blob)
        return 503 if self.down or failed else None

    def _take(self, blob: str) -> bool:
        with self.lock:
            if blob in self.doomed:
                return True
            if self.fail_records > 0:
                self.fail_records -= 1
                self.doomed.add(blob)
                return True
            return False


@pytest.fixture
def failing(proxy) -> Iterator[FailingStorage]:
    failing = FailingStorage()
    with proxy.acting(failing):
        yield failing


@pytest.fixture
def via_proxy(settings, proxy):
    return settings_through(settings, proxy)


def test_a_storage_failure_is_503_and_the_retry_stores_each_event_once(via_proxy, clock, failing, azurite, tenant_id):
    services = Services.build(via_proxy, clock)
    key = make_tenant(services, tenant_id)
    body = batch(events(30))
    failing.fail_records = 4  # four records fail, each after the SDK's two retries
    with pytest.raises(StorageUnavailable):
        services.email_events.receive(tenant_id, "mail", headers_of(key, body, clock), body)
    first = all_blobs(azurite, "records", f"{tenant_id}/")
    assert 0 < len(first) <= 26
    shards = [json.loads(b) for n, b in all_blobs(azurite, "state", f"{tenant_id}/").items() if "/sgev/" in n]
    assert sum(len(shard["events"]) for shard in shards) == len(first)  # the failed events were taken out again
    answer = services.email_events.receive(tenant_id, "mail", headers_of(key, body, clock), body)
    assert (answer.stored, answer.duplicates) == (30 - len(first), len(first))
    stored = [json.loads(b) for b in all_blobs(azurite, "records", f"{tenant_id}/").values()]
    assert len(stored) == 30
    assert len({r["fields"]["activity_id"] for r in stored}) == 30  # none twice


def test_a_marker_shard_that_cannot_be_written_takes_back_the_others(via_proxy, clock, failing, azurite, tenant_id):
    services = Services.build(via_proxy, clock)
    key = make_tenant(services, tenant_id)
    body = batch(events(200))  # in most of the 64 shards of the hour
    failing.container, failing.fail_records = "state/", 1
    with pytest.raises(StorageUnavailable):
        services.email_events.receive(tenant_id, "mail", headers_of(key, body, clock), body)
    assert all_blobs(azurite, "records", f"{tenant_id}/") == {}
    shards = [json.loads(b) for n, b in all_blobs(azurite, "state", f"{tenant_id}/").items() if "/sgev/" in n]
    assert shards and all(shard["events"] == [] for shard in shards)  # written, then emptied again
    failing.doomed.clear()  # storage is back
    answer = services.email_events.receive(tenant_id, "mail", headers_of(key, body, clock), body)
    assert (answer.stored, answer.duplicates) == (200, 0)


def test_storage_down_before_the_batch_is_503_and_nothing_is_stored(via_proxy, clock, failing, azurite, tenant_id):
    services = Services.build(via_proxy, clock)
    key = make_tenant(services, tenant_id)
    failing.down = True
    body = batch(events(3))
    with pytest.raises(StorageUnavailable):
        services.email_events.receive(tenant_id, "mail", headers_of(key, body, clock), body)
    assert all_blobs(azurite, "records", f"{tenant_id}/") == {}


# ------------------------------------------------------------------ delivery into Dataverse


def test_events_are_delivered_into_dataverse_and_then_deleted(
    settings, clock, azurite, tenant_id, tmp_path, monkeypatch
):
    (tmp_path / "dataverse").mkdir()
    with fakes(tmp_path / "dataverse") as (ca, entra, (org,)):
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca.bundle))
        org.table(EVENTS_TABLE, "pc_emailevent", RECORD_KEY, pc_event=Column(), pc_activity=Column(), pc_email=Column())
        changed = settings.model_copy(
            update={
                "dynamics_host_patterns": (org.host,),
                "entra_authority": entra.url,
                "local_secrets_path": tmp_path / "secrets.json",
            }
        )
        services = Services.build(changed, clock)
        mapping = {
            "mode": "dataverse",
            "table": EVENTS_TABLE,
            "key": RECORD_KEY,
            "columns": {"event": "pc_event", "activity_id": "pc_activity", "email": "pc_email"},
        }
        key = make_tenant(services, tenant_id, {**DATASET, "delivery": mapping})
        entra_tenant, client = str(uuid.uuid4()), str(uuid.uuid4())
        entra.register(entra_tenant, client, secret=CLIENT_SECRET)
        org.users.add(client)
        tenant = services.registry.get_tenant(tenant_id, fresh=True)
        services.delivery_targets.put(tenant, TargetIn.model_validate(target_body(org.url, entra_tenant, client)))
        sent = events(4)
        body = batch(sent)
        assert services.email_events.receive(tenant_id, "mail", headers_of(key, body, clock), body).stored == 4
        clock.advance(SETTLE + timedelta(seconds=1))
        try:
            report = services.deliverer.run()
        finally:
            services.delivery_targets.delete(tenant_id)
        assert report.delivered == 4
        rows = list(org.rows[EVENTS_TABLE].values())
        assert {row["pc_activity"] for row in rows} == {e["activity_id"] for e in sent}
        assert all(set(row) == {"id", RECORD_KEY, "pc_event", "pc_activity", "pc_email"} for row in rows)
        assert all_blobs(azurite, "records", f"{tenant_id}/") == {}


# ------------------------------------------------------------------ the email pack's registration


@pytest.fixture
def home(settings, clock, tmp_path) -> Services:
    changed = settings.model_copy(
        update={
            "region": "us",
            "role": frozenset({"regional", "registration"}),
            "local_secrets_path": tmp_path / ".state" / "secrets.json",
        }
    )
    return Services.build(changed, clock)


def test_the_email_pack_gives_the_verification_key_to_the_tenants_region(home, clock, azurite):
    key = WebhookKey.generate()
    org = str(uuid.uuid4())
    body = registration(org, credentials={"sendgrid-verification-key": key.public_base64})
    status, created = home.registrations.register(RegistrationIn.model_validate(body))
    assert status == 201 and created["credentials"] == ["sendgrid-verification-key"]
    tenant = created["tenant"]
    given = home.registry.get_tenant(tenant, fresh=True)
    assert home.email_keys.get(given) == key.public_base64
    home.registry.put_dataset(tenant, "mail", Dataset.model_validate(DATASET))
    events_body = batch(events(2))
    assert home.email_events.receive(tenant, "mail", headers_of(key, events_body, clock), events_body).stored == 2
    # Another pack's credential of that name is just a credential; a key that is not one is refused.
    bad = registration(str(uuid.uuid4()), credentials={"sendgrid-verification-key": "bm90IGEga2V5"})
    with pytest.raises(Unprocessable) as caught:
        home.registrations.register(RegistrationIn.model_validate(bad))
    assert caught.value.extra["errors"][0]["field"] == "credentials.sendgrid-verification-key"
    # Deregistration takes the key with the tenant.
    home.registrations.deregister(tenant)
    assert home.email_keys.get(given) is None
    assert key_secrets(home.settings.local_secrets_path, tenant) == []  # no secret of its key is left
    home.email_events.keys.forget(given)
    assert home.email_events.keys.verifier(given) is None


def test_the_email_pack_audits_the_key_it_gives_as_the_manage_api_does(home):
    """Every credential a registration gives is in the tenant's audit trail; the e-mail key was the one left out."""
    key = WebhookKey.generate()
    body = registration(str(uuid.uuid4()), credentials={"sendgrid-verification-key": key.public_base64})
    _, created = home.registrations.register(RegistrationIn.model_validate(body))
    entries = [e for e in home.audit.entries(created["tenant"]) if e["kind"] == "email_events_key"]
    assert [e["change"] for e in entries] == ["created"]
    assert key.public_base64 not in json.dumps(entries)
    home.registrations.deregister(created["tenant"])
    entries = [e for e in home.audit.entries(created["tenant"]) if e["kind"] == "email_events_key"]
    assert [e["change"] for e in entries] == ["created", "deleted"]


def key_secrets(secrets: Path, tenant: str) -> list[str]:
    """The values of the tenant's verification key secrets in a local secret store (`pc-<tenant>--sendgrid-key-*`)."""
    values = json.loads(secrets.read_text()) if secrets.exists() else {}
    return [value for name, value in values.items() if name.startswith(f"pc-{tenant}--sendgrid-key-")]


@pytest.fixture(scope="module")
def eu_host(azurite, tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """The EU region's deployment (same storage account here, its own secret store), reached over its manage API."""
    from devenv.local_host import start_local_host, stop_local_host

    port = free_port()
    secrets = tmp_path_factory.mktemp("eu") / "secrets.json"
    env = {
        **os.environ,
        **settings_env(azurite, region="eu"),
        "PACKCLOUD_LOCAL_SECRETS_PATH": str(secrets),
        "DEVHOST_FUNCTION_KEY": FUNCTION_KEY,
        "DEVHOST_MASTER_KEY": HOST_MASTER_KEY,
    }
    process = start_local_host(port, env)
    yield f"http://127.0.0.1:{port}/api", secrets
    stop_local_host(process)


def test_the_email_pack_in_another_region_gives_its_key_to_that_region(home, eu_host, clock):
    eu_api, eu_secrets = eu_host
    services = Services.build(home.settings.model_copy(update={"region_urls": {"us": US_URL, "eu": eu_api}}), clock)
    services.secrets.set(region_key_secret_name("eu"), FUNCTION_KEY)
    key = WebhookKey.generate()
    body = registration(str(uuid.uuid4()), region="eu", credentials={"sendgrid-verification-key": key.public_base64})
    status, created = services.registrations.register(RegistrationIn.model_validate(body))
    assert status == 201 and created["base_url"] == eu_api
    tenant = created["tenant"]
    # The home keeps the registration's credential; the key that verifies events is in the EU secret store.
    assert key_secrets(services.settings.local_secrets_path, tenant) == []
    assert key_secrets(eu_secrets, tenant) == [key.public_base64]
    with httpx.Client(base_url=eu_api, timeout=30) as eu:
        manage = {"x-functions-key": FUNCTION_KEY}
        assert eu.get(f"/manage/tenants/{tenant}/email-events/key", headers=manage).json() == {"configured": True}
        assert eu.put(f"/manage/tenants/{tenant}/datasets/mail", json=DATASET, headers=manage).status_code == 201
        sent = batch(events(3))
        answer = eu.post(f"/email/events/{tenant}/mail", content=sent, headers=key.headers(sent))
        assert answer.status_code == 200 and answer.json()["stored"] == 3
    services.registrations.deregister(tenant)
    assert key_secrets(eu_secrets, tenant) == []  # the key went with the tenant
