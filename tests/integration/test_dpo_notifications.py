"""DPO notifications on a real Azurite, delivered to a local HTTPS receiver (tests/integration/dpo_receiver.py)
through the real client stack with TLS verification on: signatures, order, retries walked over 24 hours on the
clock, and server-side request forgery refused when the URL is set and at every delivery.

The receiver listens on 127.0.19.x, which the guard refuses like any loopback address: the deliveries here run
with the development-only setting PACKCLOUD_DPO_WEBHOOK_DEV_NETWORKS naming 127.0.19.0/24 alone, and every SSRF
test runs with the guard whole (no such setting), as in production."""

from __future__ import annotations

import ipaddress
import itertools
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from azure.storage.blob import BlobServiceClient

from devenv.azurite import free_port
from devenv.local_host import start_local_host, stop_local_host
from shared.core.errors import Unprocessable
from shared.core.events import (
    AUDIT_VERIFICATION_FAILED,
    DATASET_CHANGED,
    DATASET_DECLARED,
    DATASET_DELETED,
    DELIVERY_STOPPED,
    PURGE_FAILED,
    PURGE_PAST_RETENTION,
    SUBJECT_ERASED,
    SUBJECT_EXPORTED,
)
from shared.dataverse.targets import TargetIn
from shared.dpo.notifier import Notifier
from shared.dpo.outbox import GIVE_UP_AFTER
from shared.dpo.webhooks import WebhookIn, Webhooks
from shared.lifecycle.delivery import SETTLE
from shared.lifecycle.purge import Purger
from shared.lifecycle.report import dpo_notifications, processing_record
from shared.lifecycle.report_page import render_html
from shared.registry.datasets import delete_dataset, put_dataset
from shared.registry.models import Dataset, TenantIn
from shared.services import Services
from shared.storage.audit import AuditLog
from shared.storage.blobs import REGISTRY, Storage
from tests.factories import (
    CLIENT_SECRET,
    FUNCTION_KEY,
    HOST_MASTER_KEY,
    PIXEL_DELIVERED,
    ROOT,
    UNREACHABLE_STORAGE,
    all_blobs,
    settings_env,
    settings_from,
    settings_values,
    target_body,
    variant,
)
from tests.integration.dpo_receiver import Receiver, start_receiver
from tests.integration.fake_dataverse import TrustedCA, fakes

RECEIVER_ADDRESS = "127.0.19.1"
TRAP_ADDRESS = "127.0.19.2"  # where redirects point: it must never be reached
RECEIVER_NAME = "dpo-receiver.test"
DEV_NETWORKS = "127.0.19.0/24"
VISITOR = "visitor-4f1c-personal-value"
CONTROLLER_EMAIL = "privacy@contoso.example"
DPO_NAME = "Jane Roe"


@pytest.fixture(scope="module")
def ca(tmp_path_factory) -> TrustedCA:
    return TrustedCA.create(tmp_path_factory.mktemp("dpo-ca"))


@pytest.fixture(scope="module")
def receiver(ca) -> Iterator[Receiver]:
    instance = start_receiver(ca, RECEIVER_ADDRESS, RECEIVER_NAME)
    yield instance
    instance.stop()


@pytest.fixture(scope="module")
def trap(ca) -> Iterator[Receiver]:
    instance = start_receiver(ca, TRAP_ADDRESS)
    yield instance
    instance.stop()


PERSONAL = (VISITOR, CONTROLLER_EMAIL, DPO_NAME, "dpo@contoso.example", "Contoso Ltd")


@pytest.fixture
def fresh(receiver, trap, azurite) -> Iterator[None]:
    """Empty receivers; after the test, every event body any of them got, and every stored event, is searched for
    the personal values the tests capture and declare."""
    for each in (receiver, trap):
        with each.lock:
            each.received.clear()
            each.answers.clear()
    yield
    stored = list(all_blobs(azurite, REGISTRY, "dpo/").values())
    for body in [item.body for each in (receiver, trap) for item in each.received] + stored:
        for value in PERSONAL:
            assert value.encode() not in body


@pytest.fixture
def dpo_settings(azurite, tmp_path):
    env = {
        **settings_env(azurite),
        "PACKCLOUD_DPO_WEBHOOK_DEV_NETWORKS": DEV_NETWORKS,
        "PACKCLOUD_LOCAL_SECRETS_PATH": str(tmp_path / "secrets.json"),
    }
    return settings_from(env)


@pytest.fixture
def world(dpo_settings, clock, ca, monkeypatch, fresh) -> Services:
    # The CA bundle the HTTP clients trust, as the Dataverse fake does.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca.bundle))
    return Services.build(dpo_settings, clock)


def with_webhook(services: Services, tenant_id: str, url: str) -> str:
    services.registry.put_tenant(tenant_id, TenantIn())
    tenant = services.registry.get_tenant(tenant_id, fresh=True)
    _, secret, created = services.dpo.webhooks.put(tenant, WebhookIn(url=url))
    assert created
    return secret


def declare(services: Services, tenant, declaration: dict) -> None:
    dataset = Dataset.model_validate(declaration)
    put_dataset(services.registry, services.residency, services.audit, tenant, "visits", dataset, services.dpo)


def walk(services: Services, tenant_id: str, until: timedelta) -> None:
    """Drain at each event's next attempt, moving the clock there, for `until` (no sleeping)."""
    services.dpo.settle()
    end = services.clock.now() + until
    while services.clock.now() < end:
        services.dpo.drain(tenant_id)
        pending = services.dpo.outbox.pending(tenant_id)
        if not pending:
            return
        services.clock.set(max(pending[0].next_attempt_at, services.clock.now()))


# ---------------------------------------------------------------- events, signatures, order, no personal value


def test_every_event_is_signed_in_order_and_holds_no_personal_value(world, tenant_id, receiver, azurite):
    secret = with_webhook(world, tenant_id, receiver.url())
    tenant = world.registry.get_tenant(tenant_id, fresh=True)
    declaration = variant(retention_days=14)
    declare(world, tenant, declaration)
    target = world.capture.resolve(tenant_id, "visits", "pixel")
    world.capture.capture(target, {"visitor": VISITOR, "page_url": "https://www.contoso.example/pricing"})
    changed = variant(
        retention_days=7,
        legal_basis="legitimate_interest",
        fields=[*declaration["fields"], {"name": "title", "type": "string", "personal": False, "max_length": 80}],
    )
    declare(world, tenant, changed)
    # The same declaration again changes nothing a DPO is told about.
    declare(world, tenant, changed)
    requests = world.subject_requests()
    exported = requests.export(tenant_id, VISITOR)
    erased = requests.erase(tenant_id, VISITOR)
    delete_dataset(world.registry, world.audit, tenant_id, "visits", world.dpo)
    world.dpo.settle()

    kinds = [event["type"] for event in receiver.events()]
    assert kinds == [DATASET_DECLARED, DATASET_CHANGED, SUBJECT_EXPORTED, SUBJECT_ERASED, DATASET_DELETED]
    for item in receiver.received:
        assert item.verified(secret)
        assert not item.verified(secret + "x")
        assert item.path == "/hooks/dpo"
        assert item.headers["x-packcloud-event"] == item.event["type"]
        assert item.headers["x-packcloud-event-id"] == item.event["id"]
        assert abs(int(item.headers["x-packcloud-timestamp"]) - world.clock.now().timestamp()) < 5
    events = receiver.events()
    assert events[1]["data"]["changes"] == {
        "retention_days": {"before": 14, "after": 7},
        "legal_basis": {"before": "consent", "after": "legitimate_interest"},
        "fields": {"added": ["title"], "removed": [], "changed": []},
    }
    assert events[2]["data"]["request_id"] == exported["request_id"]
    assert events[2]["data"]["records"] == 1
    assert events[3]["data"]["request_id"] == erased.request_id
    assert (events[3]["data"]["records"], events[3]["data"]["more"]) == (1, False)
    assert len(events[3]["data"]["subject_hashes"]) == 1
    assert len({event["id"] for event in events}) == len(events)
    assert {event["tenant"] for event in events} == {tenant_id}
    # No personal value in any event body, nor in the outbox, nor in the audit.
    stored = b"".join(all_blobs(azurite, REGISTRY, "dpo/").values())
    for text in [item.body for item in receiver.received] + [stored]:
        for value in PERSONAL:
            assert value.encode() not in text
    assert secret.encode() not in stored + b"".join(all_blobs(azurite, "audit", f"{tenant_id}/").values())


def test_a_tenant_without_webhook_gets_no_event_and_nothing_is_stored(world, tenant_id, azurite, receiver):
    world.registry.put_tenant(tenant_id, TenantIn())
    tenant = world.registry.get_tenant(tenant_id, fresh=True)
    declare(world, tenant, variant())
    world.dpo.settle()
    assert receiver.received == []
    assert all_blobs(azurite, REGISTRY, f"dpo/outbox/{tenant_id}/") == {}


# ---------------------------------------------------------------- retries over 24 hours, on the clock


def test_retries_back_off_for_24_hours_then_the_event_fails_visibly_and_the_next_goes(world, tenant_id, receiver):
    secret = with_webhook(world, tenant_id, receiver.url())
    receiver.fail_next(1000, 503)
    world.dpo.emit(tenant_id, DATASET_DELETED, {"dataset": "first"})
    world.dpo.emit(tenant_id, DATASET_DELETED, {"dataset": "second"})
    started = world.clock.now()
    walk(world, tenant_id, GIVE_UP_AFTER + timedelta(hours=4))

    attempts = [item for item in receiver.received if item.event["data"]["dataset"] == "first"]
    times = [int(item.headers["x-packcloud-timestamp"]) for item in attempts]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert gaps[:4] == [60, 120, 240, 480]
    assert gaps == sorted(gaps) and max(gaps) == 3 * 3600
    assert times[-1] - started.timestamp() >= GIVE_UP_AFTER.total_seconds()
    assert all(item.verified(secret) for item in attempts)
    # The second waited behind the first the whole time, then was tried in its turn.
    first_of_second = next(i for i, item in enumerate(receiver.received) if item.event["data"]["dataset"] == "second")
    assert first_of_second == len(attempts)

    state = world.dpo.state(tenant_id)
    failed = [event for event in state["failed"]]
    assert [event["type"] for event in failed][:1] == [DATASET_DELETED]
    assert failed[0]["last_error"] == "http_503"
    assert failed[0]["attempts"] == len(attempts)
    tenant = world.registry.get_tenant(tenant_id, fresh=True)
    report = processing_record(tenant, world.registry, world.storage, world.audit, world.clock)
    report["dpo_notifications"] = dpo_notifications(state)
    html = render_html(report)
    assert "DPO notifications" in html and "http_503" in html and DATASET_DELETED in html


def test_an_event_that_fails_twice_is_delivered_before_the_ones_after_it(world, tenant_id, receiver):
    secret = with_webhook(world, tenant_id, receiver.url())
    receiver.fail_next(2, 500)
    for name in ("one", "two", "three"):
        world.dpo.emit(tenant_id, DATASET_DELETED, {"dataset": name})
    walk(world, tenant_id, timedelta(hours=1))
    delivered = [item.event["data"]["dataset"] for item in receiver.received]
    assert delivered == ["one", "one", "one", "two", "three"]
    assert all(item.verified(secret) for item in receiver.received)
    assert world.dpo.state(tenant_id) == {"pending": [], "pending_more": False, "failed": [], "failed_more": False}


# ---------------------------------------------------------------- what else tells the DPO


def test_the_purge_tells_of_records_past_a_lowered_retention(world, tenant_id, receiver):
    with_webhook(world, tenant_id, receiver.url())
    tenant = world.registry.get_tenant(tenant_id, fresh=True)
    declare(world, tenant, variant())
    target = world.capture.resolve(tenant_id, "visits", "pixel")
    world.capture.capture(target, {"visitor": VISITOR, "page_url": "https://www.contoso.example/"})
    world.clock.advance(timedelta(days=5))
    lowered = variant(retention_days=2)
    declare(world, tenant, lowered)
    world.purger().run()
    world.dpo.settle()
    events = receiver.events()
    assert [event["type"] for event in events] == [DATASET_DECLARED, DATASET_CHANGED, PURGE_PAST_RETENTION]
    assert events[2]["data"]["datasets"] == [
        {"dataset": "visits", "retention_days": 2, "deleted_past_retention": 1, "oldest_remaining_age_s": None}
    ]


def test_a_failing_purge_tells_every_tenant_with_a_webhook(world, tenant_id, receiver, clock):
    with_webhook(world, tenant_id, receiver.url())
    broken = Storage.from_settings(settings_from(settings_values(UNREACHABLE_STORAGE)))
    purger = Purger(
        broken, world.registry, AuditLog(broken, clock), clock, region="eu", audit_retention_days=400, events=world.dpo
    )
    with pytest.raises(Exception):  # noqa: B017, PT011  # storage trouble, whichever class it surfaces as
        purger.run()
    world.dpo.settle()
    mine = [event for event in receiver.events() if event["tenant"] == tenant_id]
    assert [event["type"] for event in mine] == [PURGE_FAILED]
    assert set(mine[0]["data"]) == {"started_at", "error"}


def test_a_failed_audit_verification_is_told(world, tenant_id, receiver, azurite, dpo_settings, ca):
    secret = with_webhook(world, tenant_id, receiver.url())
    world.audit.append(tenant_id, "test", count=1)
    client = BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client("audit")
    name = sorted(b.name for b in client.list_blobs(name_starts_with=f"{tenant_id}/"))[-1]
    lines = client.download_blob(name).readall().decode().splitlines()
    lines[-1] = lines[-1].replace('"count":1', '"count":2')
    blob = client.get_blob_client(name)
    blob.delete_blob()
    blob.create_append_blob()
    blob.append_block(("\n".join(lines) + "\n").encode())
    env = {
        **os.environ,
        **settings_env(azurite),
        "PACKCLOUD_DPO_WEBHOOK_DEV_NETWORKS": DEV_NETWORKS,
        "PACKCLOUD_LOCAL_SECRETS_PATH": str(dpo_settings.local_secrets_path),
        "REQUESTS_CA_BUNDLE": str(ca.bundle),
    }
    result = subprocess.run(
        [sys.executable, "-m", "shared.audit", "verify", tenant_id],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    events = [item for item in receiver.received if item.event["tenant"] == tenant_id]
    assert [item.event["type"] for item in events] == [AUDIT_VERIFICATION_FAILED]
    assert events[0].verified(secret)
    assert "entry was altered" in events[0].event["data"]["detail"]


# ---------------------------------------------------------------- server-side request forgery, the guard whole


@pytest.fixture
def guarded(settings, clock, tmp_path, monkeypatch, ca, fresh) -> Services:
    """PACKCLOUD_DPO_WEBHOOK_DEV_NETWORKS unset: the guard as in production."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca.bundle))
    services = Services.build(settings.model_copy(update={"local_secrets_path": tmp_path / "s.json"}), clock)
    assert services.settings.dpo_webhook_dev_networks == ()
    return services


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://127.0.19.1/hook",  # the receiver itself: loopback
        "https://10.0.0.1/hook",
        "https://10.255.1.2:8443/hook",
        "https://172.16.5.4/hook",
        "https://192.168.1.1/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://100.64.0.1/hook",
        "https://0.0.0.0/hook",
        "https://224.0.0.251/hook",
        "https://[::1]/hook",
        "https://[fe80::1]/hook",
        "https://[fc00::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://[::ffff:10.0.0.1]/hook",
        "https://[::]/hook",
        "https://localhost/hook",
        "https://localhost:8443/hook",
        "http://example.com/hook",
        "https://user@example.com/hook",
        "https://example.com/hook#frag",
        "https://2130706433/hook",
        "https://0x7f.0.0.1/hook",
        "https://example.com\\@127.0.0.1/hook",
    ],
)
def test_internal_addresses_and_other_urls_are_refused_when_set(guarded, tenant_id, url, azurite):
    guarded.registry.put_tenant(tenant_id, TenantIn())
    tenant = guarded.registry.get_tenant(tenant_id, fresh=True)
    with pytest.raises(Unprocessable) as refused:
        guarded.dpo.webhooks.put(tenant, WebhookIn(url=url))
    assert refused.value.code == "invalid_webhook"
    assert url not in refused.value.detail
    if "localhost" in url:  # refused for where it leads: the name resolves here, without the network
        assert "non-public address" in refused.value.detail
    assert guarded.dpo.webhooks.get(tenant) is None
    assert all_blobs(azurite, REGISTRY, f"dpo/webhooks/{tenant_id}") == {}


def resolver_of(answers: dict[str, list[list[str]]]):
    """A resolver that answers each name's lists in turn (the last one for ever): a DNS that changes its mind."""

    def resolve(host: str, port: int) -> list[str]:
        queue = answers[host]
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return resolve


def named(services: Services, resolver, dev_networks=()) -> Notifier:
    """A notifier whose names resolve through `resolver` (the address checks are the real ones)."""
    webhooks = Webhooks(
        services.storage, services.secrets, services.audit, services.clock, dev_networks=dev_networks, resolver=resolver
    )
    return Notifier(services.storage, services.registry, webhooks, services.clock, region="eu")


def test_a_name_that_resolves_to_an_internal_address_is_refused(guarded, tenant_id):
    guarded.registry.put_tenant(tenant_id, TenantIn())
    tenant = guarded.registry.get_tenant(tenant_id, fresh=True)
    mixed = named(guarded, resolver_of({"hooks.example": [["93.184.215.14", "10.1.2.3"]]}))
    with pytest.raises(Unprocessable):
        mixed.webhooks.put(tenant, WebhookIn(url="https://hooks.example/dpo"))
    mapped = named(guarded, resolver_of({"hooks.example": [["::ffff:192.168.0.1"]]}))
    with pytest.raises(Unprocessable):
        mapped.webhooks.put(tenant, WebhookIn(url="https://hooks.example/dpo"))


def test_a_name_rebound_to_loopback_after_it_was_set_is_not_reached(guarded, tenant_id, receiver):
    # Set while the name pointed at a public address; by the delivery it points at this machine.
    networks = (ipaddress.ip_network("93.184.215.0/24"),)
    rebinding = named(guarded, resolver_of({RECEIVER_NAME: [["93.184.215.14"], [RECEIVER_ADDRESS]]}), networks)
    guarded.registry.put_tenant(tenant_id, TenantIn())
    tenant = guarded.registry.get_tenant(tenant_id, fresh=True)
    rebinding.webhooks.put(tenant, WebhookIn(url=receiver.url(RECEIVER_NAME)))
    rebinding.emit(tenant_id, DATASET_DELETED, {"dataset": "visits"})
    rebinding.settle()
    assert receiver.received == []
    assert rebinding.outbox.pending(tenant_id)[0].last_error == "refused_address"
    _, outcome = rebinding.send_test(tenant, rebinding.webhooks.get(tenant))
    assert (outcome.delivered, outcome.error) == (False, "refused_address")
    assert receiver.received == []


def test_a_redirect_is_a_failed_delivery_and_never_followed(world, tenant_id, receiver, trap):
    with_webhook(world, tenant_id, receiver.url())
    for location in (trap.url(), "https://127.0.0.1/admin", "https://[::1]/", "https://10.0.0.1/"):
        receiver.redirect_next(location)
        tenant = world.registry.get_tenant(tenant_id, fresh=True)
        _, outcome = world.dpo.send_test(tenant, world.dpo.webhooks.get(tenant))
        assert (outcome.delivered, outcome.status, outcome.error) == (False, 302, "http_302")
    receiver.redirect_next(trap.url(), 307)
    world.dpo.emit(tenant_id, DATASET_DELETED, {"dataset": "visits"})
    world.dpo.settle()
    assert world.dpo.outbox.pending(tenant_id)[0].last_error == "http_307"
    assert trap.received == []


def test_tls_is_verified_against_the_host_name_not_the_address(world, tenant_id, receiver):
    networks = world.settings.dpo_webhook_dev_networks
    names = resolver_of({RECEIVER_NAME: [[RECEIVER_ADDRESS]], "elsewhere.test": [[RECEIVER_ADDRESS]]})
    notifier = named(world, names, networks)
    world.registry.put_tenant(tenant_id, TenantIn())
    tenant = world.registry.get_tenant(tenant_id, fresh=True)
    notifier.webhooks.put(tenant, WebhookIn(url=receiver.url(RECEIVER_NAME)))
    _, outcome = notifier.send_test(tenant, notifier.webhooks.get(tenant))
    assert outcome.delivered
    assert receiver.received[-1].headers["host"] == f"{RECEIVER_NAME}:{receiver.port}"
    # The same address under a name its certificate does not hold: refused by TLS, nothing sent.
    notifier.webhooks.put(tenant, WebhookIn(url=receiver.url("elsewhere.test")))
    count = len(receiver.received)
    _, outcome = notifier.send_test(tenant, notifier.webhooks.get(tenant))
    assert (outcome.delivered, outcome.error) == (False, "tls")
    assert len(receiver.received) == count


# ---------------------------------------------------------------- the manage API through the local host


def test_the_manage_api_refuses_internal_urls_with_the_guard_whole(manage):
    tenant = "dpo-" + os.urandom(4).hex()
    assert manage.put(f"/manage/tenants/{tenant}", json={}).status_code == 201
    for url in (
        "https://127.0.0.1/x",
        "https://[::1]/x",
        "https://10.0.0.8/x",
        "https://localhost/x",
        "http://a.example/",
    ):
        answer = manage.put(f"/manage/tenants/{tenant}/dpo-webhook", json={"url": url})
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"] == "invalid_webhook"
        assert url not in answer.text
    assert manage.get(f"/manage/tenants/{tenant}/dpo-webhook").json()["error"] == "no_dpo_webhook"
    assert manage.post(f"/manage/tenants/{tenant}/dpo-webhook/test").status_code == 404
    assert manage.put(f"/manage/tenants/{tenant}/dpo-webhook", json={"url": 5}).status_code == 422
    assert (
        manage.put(f"/manage/tenants/{tenant}/dpo-webhook", json={"url": "https://a.example/", "x": 1}).status_code
        == 422
    )
    assert manage.put("/manage/tenants/NOPE/dpo-webhook", json={"url": "https://a.example/"}).status_code == 400


@pytest.fixture(scope="module")
def dev_host(azurite, ca, tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """A local host of its own whose guard lets the receiver's network through (the development-only setting)."""
    secrets_path = tmp_path_factory.mktemp("dpo-host") / "secrets.json"
    port = free_port()
    env = {
        **os.environ,
        **settings_env(azurite),
        "DEVHOST_FUNCTION_KEY": FUNCTION_KEY,
        "DEVHOST_MASTER_KEY": HOST_MASTER_KEY,
        "PACKCLOUD_DPO_WEBHOOK_DEV_NETWORKS": DEV_NETWORKS,
        "PACKCLOUD_LOCAL_SECRETS_PATH": str(secrets_path),
        "REQUESTS_CA_BUNDLE": str(ca.bundle),
    }
    process = start_local_host(port, env)
    yield f"http://127.0.0.1:{port}/api", secrets_path
    stop_local_host(process)


def wait_for(condition, seconds: float = 60) -> None:
    """Until the host's background drain has delivered (a bound on waiting, not a timed assertion)."""
    end = time.monotonic() + seconds
    while not condition() and time.monotonic() < end:
        time.sleep(0.05)


def test_the_manage_api_sets_shows_tests_and_deletes_a_webhook(dev_host, receiver, fresh):
    base, secrets_path = dev_host
    tenant = "dpo-" + os.urandom(4).hex()
    with httpx.Client(base_url=base, headers={"x-functions-key": FUNCTION_KEY}, timeout=60) as manage:
        api_key = manage.put(f"/manage/tenants/{tenant}", json={}).json()["api_key"]
        report = manage.get(f"/privacy/{tenant}/report", headers={"authorization": f"Bearer {api_key}"})
        assert report.json()["dpo_notifications"] == {"webhook": False, "failed": [], "pending": []}
        created = manage.put(f"/manage/tenants/{tenant}/dpo-webhook", json={"url": receiver.url()})
        assert created.status_code == 201, created.text
        secret = created.json()["secret"]
        assert secret.startswith("whsec_") and len(secret) > 40
        assert secret in secrets_path.read_text()
        shown = manage.get(f"/manage/tenants/{tenant}/dpo-webhook")
        assert shown.status_code == 200
        assert secret not in shown.text
        assert shown.json()["url"] == receiver.url()
        assert shown.json()["events"] == {"pending": [], "pending_more": False, "failed": [], "failed_more": False}

        tested = manage.post(f"/manage/tenants/{tenant}/dpo-webhook/test").json()
        assert (tested["delivered"], tested["status"], tested["error"]) == (True, 200, None)
        assert receiver.received[-1].event["type"] == "webhook.test"
        assert receiver.received[-1].verified(secret)

        assert manage.put(f"/manage/tenants/{tenant}/datasets/visits", json=variant()).status_code == 201
        wait_for(lambda: len(receiver.received) >= 2)
        declared = receiver.received[1]
        assert (declared.event["type"], declared.event["data"]["dataset"]) == (DATASET_DECLARED, "visits")
        assert declared.verified(secret)

        report = manage.get(f"/privacy/{tenant}/report", headers={"authorization": f"Bearer {api_key}"})
        assert (report.json()["dpo_notifications"]["webhook"], report.json()["dpo_notifications"]["failed"]) == (
            True,
            [],
        )
        page = manage.get(f"/privacy/{tenant}/report?format=html", headers={"authorization": f"Bearer {api_key}"})
        assert "<h2>DPO notifications</h2>" in page.text

        # Set again: a new secret, and the old one is gone from the secret store.
        again = manage.put(f"/manage/tenants/{tenant}/dpo-webhook", json={"url": receiver.url()})
        assert again.status_code == 200
        assert again.json()["secret"] != secret
        assert secret not in secrets_path.read_text()
        receiver.fail_next(1, 500)
        failing = manage.post(f"/manage/tenants/{tenant}/dpo-webhook/test").json()
        assert (failing["delivered"], failing["status"], failing["error"]) == (False, 500, "http_500")

        assert manage.delete(f"/manage/tenants/{tenant}/dpo-webhook").status_code == 204
        assert again.json()["secret"] not in secrets_path.read_text()
        assert manage.get(f"/manage/tenants/{tenant}/dpo-webhook").status_code == 404
        assert manage.delete(f"/manage/tenants/{tenant}/dpo-webhook").status_code == 404


def test_delivery_stopping_for_a_tenant_is_told(dpo_settings, clock, tenant_id, monkeypatch, tmp_path):
    """Dynamics 365 refuses the application for good (a 403): delivery stops, and the DPO hears it once."""
    with fakes(tmp_path) as (ca, entra, (org,)):
        receiver = start_receiver(ca, "127.0.19.3")
        try:
            monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca.bundle))
            update = {"dynamics_host_patterns": (org.host,), "entra_authority": entra.url}
            services = Services.build(dpo_settings.model_copy(update=update), clock)
            secret = with_webhook(services, tenant_id, receiver.url())
            entra_tenant, client = str(uuid.uuid4()), str(uuid.uuid4())
            entra.register(entra_tenant, client, secret=CLIENT_SECRET)  # an application, but no user of the org
            tenant = services.registry.get_tenant(tenant_id, fresh=True)
            declare(services, tenant, PIXEL_DELIVERED)
            body = target_body(org.url, entra_tenant, client)
            services.delivery_targets.put(tenant, TargetIn.model_validate(body))
            target = services.capture.resolve(tenant_id, "visits", "pixel")
            services.capture.capture(target, {"page_url": "https://www.contoso.example/", "visitor": VISITOR})
            clock.advance(SETTLE + timedelta(seconds=1))
            services.deliverer.run()
            services.deliverer.run()  # still stopped: no second event
            services.dpo.settle()
            events = [item for item in receiver.received if item.event["type"] == DELIVERY_STOPPED]
            assert len(events) == 1
            assert events[0].verified(secret)
            assert events[0].event["data"]["reason"] == "forbidden"
            assert not [value for item in receiver.received for value in PERSONAL if value.encode() in item.body]
        finally:
            receiver.stop()
            for each in services.delivery_targets.all():
                services.delivery_targets.delete(each.tenant)


def test_the_timer_drains_every_outbox_and_forgets_a_deleted_tenants_webhook(world, tenant_id, receiver, azurite):
    secret = with_webhook(world, tenant_id, receiver.url())
    timer_only = Notifier(
        world.storage, world.registry, world.dpo.webhooks, world.clock, region="eu", drain_on_emit=False
    )
    timer_only.emit(tenant_id, DATASET_DELETED, {"dataset": "visits"})
    assert receiver.received == []
    drained = timer_only.drain_all()
    assert drained[tenant_id].delivered == 1
    assert receiver.received[0].verified(secret)

    timer_only.emit(tenant_id, DATASET_DELETED, {"dataset": "other"})
    world.registry.delete_tenant(tenant_id)
    timer_only.drain_all()
    assert len(receiver.received) == 1  # nobody to tell any more
    assert all_blobs(azurite, REGISTRY, f"dpo/webhooks/{tenant_id}") == {}
    assert all_blobs(azurite, REGISTRY, f"dpo/outbox/{tenant_id}/") == {}
    assert secret not in Path(world.settings.local_secrets_path).read_text()


def test_one_drain_at_a_time_per_tenant_across_instances(world, tenant_id, receiver, azurite):
    """Another instance holding the tenant's lease: this one skips the tenant and sends nothing twice."""
    with_webhook(world, tenant_id, receiver.url())
    other = Notifier(world.storage, world.registry, world.dpo.webhooks, world.clock, region="eu", drain_on_emit=False)
    other.emit(tenant_id, DATASET_DELETED, {"dataset": "visits"})
    lock = BlobServiceClient.from_connection_string(azurite.connection_string).get_blob_client(
        REGISTRY, f"dpo/locks/{tenant_id}"
    )
    lock.upload_blob(b"", overwrite=True)
    lease = lock.acquire_lease(lease_duration=15)
    try:
        assert other.drain(tenant_id).skipped
        assert receiver.received == []
    finally:
        lease.release()
    assert other.drain(tenant_id).delivered == 1
    assert len(receiver.received) == 1
