"""The registration engine in the home deployment: register, re-register, deregister; secrets only in the
secret store (the local file, and Key Vault through the real SDK against the fake, which behaves as a vault with
purge protection); bad input refused with nothing stored; no secret, key or contact detail in any log line; the
registration route's own key; updates only with the tenant's key; and no redirect followed with a key."""

from __future__ import annotations

import functools
import json
import logging
import secrets
import threading
import uuid
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import httpx
import pytest

from shared.core.errors import Conflict, PackCloudError, StorageUnavailable, Unauthorized, Unprocessable
from shared.registration.engine import REGISTRATION_KEY_SECRETS, RegistrationIn
from shared.storage.secrets import KeyVaultSecrets, LocalSecrets
from tests.factories import (
    FUNCTION_KEY,
    REGISTRATION_KEY,
    SENDGRID,
    TWILIO,
    US_URL,
    all_blobs,
    blob_states,
    registration,
)
from tests.integration.fake_keyvault import FakeCredential, start_fake_keyvault


def bearer(key: str | None) -> str | None:
    return f"Bearer {key}" if key is not None else None


@pytest.fixture
def org() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def home(settings, clock, tmp_path):
    """The home deployment (us) in process, with the local secret store in a private file."""
    from shared.services import Services

    changed = settings.model_copy(
        update={
            "region": "us",
            "role": frozenset({"regional", "registration"}),
            "local_secrets_path": tmp_path / ".state" / "secrets.json",
        }
    )
    return Services.build(changed, clock)


def register(services, body, tenant_key: str | None = None):
    return services.registrations.register(RegistrationIn.model_validate(body), bearer(tenant_key))


def secrets_file(services):
    path = services.settings.local_secrets_path
    return json.loads(path.read_text()) if path.exists() else {}


def blobs_text(azurite):
    return json.dumps(
        {c: {k: v.decode() for k, v in all_blobs(azurite, c).items()} for c in ("registry", "records", "state")}
    )


# Its own Azurite: it reads every blob of three containers, on the session's every blob the other tests left (51 s).
@pytest.mark.own_azurite
def test_register_reregister_and_deregister(home, org, services_azurite, clock):
    status, created = register(home, registration(org))
    assert status == 201
    tenant = created["tenant"]
    assert tenant.startswith("r-") and created["base_url"] == US_URL and created["region"] == "us"
    assert created["api_key"].startswith("pck_") and len(created["signing_key"]) == 64
    assert created["credentials"] == ["sendgrid", "twilio"]
    assert created["organization"]["url"] == "https://contoso.crm4.dynamics.com/"
    assert created["contact"]["phone"] == "+4722334455"
    assert home.registry.get_tenant(tenant).region == "us"
    # The secrets are in the secret store, and nowhere in storage.
    assert sorted(secrets_file(home).values()) == sorted([SENDGRID, TWILIO])
    stored = blobs_text(services_azurite)
    assert SENDGRID not in stored and TWILIO not in stored
    assert created["api_key"] not in stored and created["signing_key"] not in stored

    shown = home.registrations.get(tenant)
    assert shown["credentials"] == ["sendgrid", "twilio"] and "api_key" not in shown
    assert SENDGRID not in json.dumps(shown)

    clock.advance(timedelta(hours=1))
    changed = registration(org, credentials={"sendgrid": "SG.rotated-value-42"}, **{"contact.name": "Bo Admin"})
    status, updated = register(home, changed, created["api_key"])
    assert status == 200 and updated["tenant"] == tenant and "api_key" not in updated
    assert updated["contact"]["name"] == "Bo Admin" and updated["credentials"] == ["sendgrid"]
    assert list(secrets_file(home).values()) == ["SG.rotated-value-42"]  # twilio's secret was deleted
    assert list(secrets_file(home)) == [f"pc-{tenant}--cred-sendgrid-{name[-8:]}" for name in secrets_file(home)]
    # Re-registering without credentials keeps the stored ones.
    assert register(home, registration(org, credentials=None), created["api_key"])[1]["credentials"] == ["sendgrid"]
    # Another pack of the same organisation is another tenant.
    other_status, other = register(home, registration(org, pack="geolog", credentials=None))
    assert other_status == 201 and other["tenant"] != tenant

    home.registrations.deregister(tenant)
    assert home.registry.get_tenant(tenant) is None
    assert all(name.startswith(f"pc-{other['tenant']}") for name in secrets_file(home))
    assert f"registrations/{tenant}.json" not in all_blobs(services_azurite, "registry")
    kinds = [json.loads(line)["kind"] for body in all_blobs(services_azurite, "audit", f"{tenant}/").values()
             for line in body.decode().splitlines()]  # fmt: skip
    assert kinds.count("registration") == 4 and "tenant" in kinds  # the audit entries stay
    from shared.core.errors import NotFound

    with pytest.raises(NotFound):
        home.registrations.get(tenant)
    with pytest.raises(NotFound):
        home.registrations.deregister(tenant)


def test_the_region_of_a_registration_never_changes(home, org):
    created = register(home, registration(org))[1]
    tenant = created["tenant"]
    with pytest.raises(Conflict) as refused:
        register(home, registration(org, region="eu"), created["api_key"])
    assert refused.value.code == "region_change"
    assert home.registry.get_tenant(tenant).region == "us"


def test_a_region_without_a_deployment_or_unreachable_stores_nothing(home, org, azurite):
    before = all_blobs(azurite, "registry", "registrations/")
    with pytest.raises(Unprocessable) as refused:
        register(home, registration(org, region="br"))  # no URL for br in the settings
    assert refused.value.extra["errors"][0]["field"] == "region"
    with pytest.raises(StorageUnavailable):  # eu has a URL, but no function key in the secret store
        register(home, registration(org, region="eu"))
    assert all_blobs(azurite, "registry", "registrations/") == before
    assert secrets_file(home) == {}


def test_a_half_done_registration_is_taken_over_after_a_minute(home, org, clock):
    from shared.registration.engine import Registration, RegistrationStore, registration_tenant_id
    from shared.registry.models import TenantIn

    body = registration(org)
    request = RegistrationIn.model_validate(body)
    tenant = registration_tenant_id(home.settings.master_key.get_secret_value(), request.organization.id, "email")
    # An instance claimed the registration and created the tenant, then stopped.
    claim = Registration(
        tenant=tenant, status="provisioning", pack="email", contact=request.contact,
        organization=request.organization, region="us", created_at=clock.now(), updated_at=clock.now(),
    )  # fmt: skip
    RegistrationStore(home.storage, home.registry).put(claim, None)
    home.registry.put_tenant(tenant, TenantIn(region="us"))
    with pytest.raises(Conflict) as busy:
        register(home, body)
    assert busy.value.code == "registration_in_progress" and busy.value.headers["Retry-After"] == "2"
    clock.advance(timedelta(seconds=61))
    status, created = register(home, body)
    assert status == 201 and created["tenant"] == tenant
    # The keys answered are the tenant's keys: the leftover tenant was replaced, not reused without keys.
    from shared.registry.auth import authenticate_tenant

    assert authenticate_tenant(home.registry, tenant, f"Bearer {created['api_key']}").id == tenant


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"contact.email": "not-an-email"}, "contact.email"),
        ({"contact.phone": "call me"}, "contact.phone"),
        ({"organization.id": "not-a-guid"}, "organization.id"),
        ({"organization.url": "https://contoso.example.com/"}, "organization.url"),
        ({"organization.url": "http://contoso.crm4.dynamics.com/"}, "organization.url"),
        ({"organization.url": "https://contoso.crm4.dynamics.com.evil.example/"}, "organization.url"),
        ({"organization.users": 0}, "organization.users"),
        ({"organization.users": "many"}, "organization.users"),
        ({"region": "mars"}, "region"),
        ({"pack": "unknown-pack"}, "pack"),
        ({"credentials": {"sendgrid": "x" * 4097}}, "credentials"),
        ({"credentials": {"Bad Name": "x"}}, "credentials"),
        ({"credentials": {f"c{n}": "x" for n in range(21)}}, "credentials"),
        ({"contact": None}, "contact"),
        ({"extra": "field"}, "extra"),
        (
            {"delivery": {"entra_tenant_id": "contoso", "client_id": str(uuid.uuid4()), "client_secret": "s"}},
            "delivery",
        ),
        ({"delivery": {"entra_tenant_id": str(uuid.uuid4()), "client_id": str(uuid.uuid4())}}, "delivery"),
    ],
)
def test_bad_registrations_are_refused_with_nothing_stored(home_host, azurite, org, change, field, tmp_path):
    api, secrets_path = home_host
    before = blob_states(azurite, ("registry", "records", "state"))
    secrets_before = secrets_path.read_bytes()
    answer = httpx.post(
        f"{api}/registrations", json=registration(org, **change), headers={"x-registration-key": REGISTRATION_KEY}
    )
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["error"] == "invalid_registration"
    assert any(problem["field"].startswith(field) for problem in body["errors"]), body
    assert SENDGRID not in answer.text and "x" * 100 not in answer.text
    assert blob_states(azurite, ("registry", "records", "state")) == before
    assert secrets_path.read_bytes() == secrets_before


def test_registration_over_http_takes_its_own_key_and_is_served_by_the_home_only(home_host, host, org):
    api, _ = home_host
    assert httpx.post(f"{api}/registrations", json=registration(org)).status_code == 401
    # The function key (in Azure, a host key is accepted wherever a function key is) opens no registration.
    for headers in ({"x-functions-key": FUNCTION_KEY}, {"x-registration-key": FUNCTION_KEY}):
        refused = httpx.post(f"{api}/registrations", json=registration(org), headers=headers)
        assert refused.status_code == 401 and refused.json()["error"] in ("missing_key", "unauthorized")
    created = httpx.post(
        f"{api}/registrations", json=registration(org), headers={"x-registration-key": REGISTRATION_KEY}
    )
    assert created.status_code == 201 and created.json()["base_url"] == US_URL
    tenant = created.json()["tenant"]
    # Showing and deregistering stay the operator's, with the function key; the registration key opens neither.
    assert (
        httpx.get(f"{api}/registrations/{tenant}", headers={"x-registration-key": REGISTRATION_KEY}).status_code == 401
    )
    shown = httpx.get(f"{api}/registrations/{tenant}", headers={"x-functions-key": FUNCTION_KEY})
    assert shown.status_code == 200 and SENDGRID not in shown.text and "api_key" not in shown.json()
    assert httpx.get(f"{api}/registrations/BAD..", headers={"x-functions-key": FUNCTION_KEY}).status_code == 400
    # The regional (eu) host has no registration routes at all.
    regional = httpx.post(
        f"{host}/registrations", json=registration(org), headers={"x-registration-key": REGISTRATION_KEY}
    )
    assert regional.status_code == 404
    deleted = httpx.delete(f"{api}/registrations/{tenant}", headers={"x-functions-key": FUNCTION_KEY})
    assert deleted.status_code == 204
    assert httpx.get(f"{api}/registrations/{tenant}", headers={"x-functions-key": FUNCTION_KEY}).status_code == 404


def test_a_takeover_needs_the_tenant_key_and_without_it_changes_nothing(home_host, azurite, org):
    """Whoever holds the registration key (every installer) names an organisation already registered: refused
    unless the tenant's own API key comes along, and nothing is changed."""
    api, secrets_path = home_host
    post = functools.partial(httpx.post, f"{api}/registrations", timeout=30)
    created = post(json=registration(org), headers={"x-registration-key": REGISTRATION_KEY})
    assert created.status_code == 201
    key = created.json()["api_key"]
    other = post(json=registration(str(uuid.uuid4())), headers={"x-registration-key": REGISTRATION_KEY}).json()
    hostile = registration(org, credentials={"sendgrid": "SG.attacker"}, **{"contact.email": "mallory@evil.example"})
    before = blob_states(azurite, ("registry", "records", "state", "audit"))
    secrets_before = secrets_path.read_bytes()
    attempts = {
        "host key only": ({"x-functions-key": FUNCTION_KEY}, 401),
        "host key and a wrong tenant key": (
            {"x-functions-key": FUNCTION_KEY, "authorization": "Bearer pck_wrong"}, 401
        ),
        "registration key, no tenant key": ({"x-registration-key": REGISTRATION_KEY}, 401),
        "registration key, not a bearer": ({"x-registration-key": REGISTRATION_KEY, "authorization": key}, 401),
        "registration key, wrong tenant key": (
            {"x-registration-key": REGISTRATION_KEY, "authorization": "Bearer pck_wrong"}, 403
        ),
        "registration key, another tenant's key": (
            {"x-registration-key": REGISTRATION_KEY, "authorization": f"Bearer {other['api_key']}"}, 403
        ),
    }  # fmt: skip
    for what, (headers, status) in attempts.items():
        answer = post(json=hostile, headers=headers)
        assert answer.status_code == status, what
        assert "mallory" not in answer.text and "SG.attacker" not in answer.text
    assert blob_states(azurite, ("registry", "records", "state", "audit")) == before
    assert secrets_path.read_bytes() == secrets_before
    # The tenant itself may change its registration.
    owner = {"x-registration-key": REGISTRATION_KEY, "authorization": f"Bearer {key}"}
    updated = post(json=hostile, headers=owner)
    assert updated.status_code == 200 and updated.json()["contact"]["email"] == "mallory@evil.example"


@pytest.fixture(scope="module")
def home_host(azurite, tmp_path_factory):
    """A home (us) local host on the session's Azurite, with its own secrets file holding the registration key."""
    from devenv.azurite import free_port
    from devenv.local_host import start_local_host, stop_local_host
    from tests.factories import home_host_env

    secrets_path = tmp_path_factory.mktemp("home") / "secrets.json"
    port = free_port()
    env = home_host_env(azurite, secrets_path)
    process = start_local_host(port, env)
    yield f"http://127.0.0.1:{port}/api", secrets_path
    stop_local_host(process)


@pytest.fixture
def key_vault_engine(home, tmp_path):
    """The registration engine of the home deployment with Key Vault (the fake, through the real SDK)."""
    from shared.registration.engine import Registrations, RegistrationStore
    from shared.registration.provisioning import Provisioner

    vault, server = start_fake_keyvault(tmp_path)
    secrets_store = KeyVaultSecrets(vault.url, FakeCredential(), poll_interval_s=0.01, **vault.client_options())
    engine = Registrations(
        RegistrationStore(home.storage, home.registry),
        secrets_store,
        Provisioner(home.settings, home.registry, home.audit, secrets_store),
        home.audit,
        home.settings,
        home.clock,
    )
    yield engine, vault, secrets_store
    server.shutdown()


def kv_register(engine, body, tenant_key: str | None = None):
    return engine.register(RegistrationIn.model_validate(body), bearer(tenant_key))


def test_with_key_vault_secrets_live_in_the_vault_only_and_no_log_line_holds_any(
    key_vault_engine, home, org, azurite, caplog
):
    engine, vault, _ = key_vault_engine
    # Every logger at DEBUG, the client libraries too (the app holds them at WARNING: shared/core/logs.py), so the
    # check below holds even for what the SDKs would say at their most talkative.
    with caplog.at_level(logging.DEBUG), caplog.at_level(logging.DEBUG, logger="azure"):
        logging.getLogger().setLevel(logging.DEBUG)
        status, created = kv_register(engine, registration(org))
        kv_register(engine, registration(org, credentials={"sendgrid": "SG.new-99"}), created["api_key"])
        shown = engine.get(created["tenant"])
        engine.deregister(created["tenant"])
    assert status == 201 and shown["credentials"] == ["sendgrid"]
    prefix = f"pc-{created['tenant']}--cred-"
    assert sorted(name[len(prefix) :][:-9] for name in vault.deleted) == ["sendgrid", "twilio"]
    assert vault.secrets == {}
    assert any(m == "PUT" and p.startswith(f"/secrets/{prefix}sendgrid-") and c == 200 for m, p, c in vault.requests)
    assert LocalSecrets(home.settings.local_secrets_path).get(REGISTRATION_KEY_SECRETS[0]) is None
    logged = caplog.text + "".join(str(record.__dict__) for record in caplog.records)
    assert len(caplog.records) > 0  # the SDKs did log (their requests): the check below means something
    for value in (SENDGRID, TWILIO, "SG.new-99", created["api_key"], created["signing_key"],
                  "ada.admin@contoso.example", "Ada Admin", "+4722334455"):  # fmt: skip
        assert value not in logged
    assert SENDGRID not in blobs_text(azurite)


def test_with_key_vault_a_dropped_credential_can_be_added_again_and_a_deregistered_pack_registered_again(
    key_vault_engine, home, org
):
    """Key Vault keeps deleted secrets and refuses their names (409); neither step may run into that."""
    engine, vault, secrets_store = key_vault_engine
    status, created = kv_register(engine, registration(org))
    tenant, key = created["tenant"], created["api_key"]
    first = engine._store.get(tenant)[0].credentials
    # An update drops twilio; a later one adds it again.
    kv_register(engine, registration(org, credentials={"sendgrid": SENDGRID}), key)
    assert first["twilio"] in vault.deleted
    status, again = kv_register(engine, registration(org, credentials={"sendgrid": SENDGRID, "twilio": "tw-2"}), key)
    assert status == 200 and again["credentials"] == ["sendgrid", "twilio"]
    second = engine._store.get(tenant)[0].credentials
    assert second["sendgrid"] == first["sendgrid"] and second["twilio"] != first["twilio"]
    assert secrets_store.get(second["twilio"]) == "tw-2"
    # Deregister, then register the same organisation and pack: the same tenant id, new secrets.
    engine.deregister(tenant)
    status, renewed = kv_register(engine, registration(org, credentials={"sendgrid": "SG.new", "twilio": "tw-3"}))
    assert status == 201 and renewed["tenant"] == tenant
    third = engine._store.get(tenant)[0].credentials
    assert {secrets_store.get(name) for name in third.values()} == {"SG.new", "tw-3"}
    # The deleted values stay deleted: nothing was recovered, no name reused, no 409 met.
    assert not set(third.values()) & (set(first.values()) | set(second.values()))
    assert {first["twilio"], second["twilio"], second["sendgrid"]} <= set(vault.deleted)
    assert vault.deleted[first["twilio"]] == TWILIO
    assert not any(path.endswith("/recover") for _, path, _ in vault.requests)
    assert not any(status == 409 for _, _, status in vault.requests)


def test_secrets_of_a_failed_update_are_removed_and_the_named_ones_kept(key_vault_engine, home, org):
    engine, vault, secrets_store = key_vault_engine
    created = kv_register(engine, registration(org))[1]
    named = engine._store.get(created["tenant"])[0].credentials
    vault.puts_left = 1  # the vault fails half-way through the update: one write done, the next refused
    with pytest.raises(StorageUnavailable):
        kv_register(engine, registration(org, credentials={"new-one": "v1", "other": "v2"}), created["api_key"])
    vault.puts_left = None
    assert engine._store.get(created["tenant"])[0].credentials == named
    assert {secrets_store.get(name) for name in named.values()} == {SENDGRID, TWILIO}  # nothing named was deleted
    assert set(vault.secrets) == set(named.values())  # the one written for the failed update was removed
    assert [name.rsplit("-", 1)[0] for name in vault.deleted] == [f"pc-{created['tenant']}--cred-new-one"]


class _Recorder(BaseHTTPRequestHandler):
    """Serves one role in the redirect test: `redirect_to` set, it answers 307 there; else it records."""

    redirect_to: str | None = None
    seen: ClassVar[list[dict[str, str]]] = []

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _any(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        type(self).seen.append({k.lower(): v for k, v in self.headers.items()})
        if type(self).redirect_to:
            self.send_response(307)
            self.send_header("location", f"{type(self).redirect_to}{self.path}")
        else:
            self.send_response(204)
        self.send_header("content-length", "0")
        self.end_headers()

    do_GET = do_PUT = do_DELETE = do_POST = _any


@pytest.fixture
def redirecting_region():
    """A fake EU deployment that answers 307 to a second server, which records what reaches it."""
    target = type("Target", (_Recorder,), {"redirect_to": None, "seen": []})
    target_server = ThreadingHTTPServer(("127.0.0.1", 0), target)
    target_url = f"http://127.0.0.1:{target_server.server_address[1]}"
    region = type("Region", (_Recorder,), {"redirect_to": target_url, "seen": []})
    region_server = ThreadingHTTPServer(("127.0.0.1", 0), region)
    for server in (target_server, region_server):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{region_server.server_address[1]}/api", region, target
    for server in (target_server, region_server):
        server.shutdown()


def test_a_region_that_redirects_is_never_followed_with_a_key(home, org, redirecting_region, azurite):
    from shared.registration.engine import Registrations, RegistrationStore
    from shared.registration.provisioning import Provisioner

    region_url, region, target = redirecting_region
    settings = home.settings.model_copy(update={"region_urls": {**home.settings.region_urls, "eu": region_url}})
    eu_key = secrets.token_urlsafe(24)
    LocalSecrets(settings.local_secrets_path).set("packcloud-region-eu-function-key", eu_key)
    store = LocalSecrets(settings.local_secrets_path)
    provisioner = Provisioner(settings, home.registry, home.audit, store)
    engine = Registrations(
        RegistrationStore(home.storage, home.registry), store, provisioner, home.audit, settings, home.clock
    )
    before = blob_states(azurite, ("registry",))
    with pytest.raises(PackCloudError) as refused:
        kv_register(engine, registration(org, region="eu"))
    assert refused.value.status == 502 and refused.value.code == "region_redirect"
    assert eu_key not in json.dumps(refused.value.body())
    assert [seen.get("x-functions-key") for seen in region.seen] == [eu_key]  # it went to the region only
    assert target.seen == []  # and was never sent on to where the redirect pointed
    assert blob_states(azurite, ("registry",)) == before
    # The tenant key check of an update is not followed either.
    with pytest.raises(PackCloudError) as refused:
        provisioner.check_tenant_key("eu", "r-0123456789abcdef0123", "Bearer pck_the-tenants-key")
    assert refused.value.status == 502 and target.seen == []
    assert region.seen[-1]["authorization"] == "Bearer pck_the-tenants-key"
    assert "x-functions-key" not in region.seen[-1]  # a key check carries the tenant's key only


def test_the_registration_key_is_its_own_secret_rotated_with_a_previous_one(home, clock):
    from shared.registration.engine import REGISTRATION_KEY_TTL, RegistrationKey

    store = LocalSecrets(home.settings.local_secrets_path)
    gate = RegistrationKey(store, clock)
    with pytest.raises(Unauthorized):  # none configured: registration is closed
        gate.require(REGISTRATION_KEY)
    clock.advance(REGISTRATION_KEY_TTL)
    store.set(REGISTRATION_KEY_SECRETS[0], "too-short")
    with pytest.raises(Unauthorized):
        gate.require("too-short")
    clock.advance(REGISTRATION_KEY_TTL)
    old, new = REGISTRATION_KEY, secrets.token_urlsafe(32)
    store.set(REGISTRATION_KEY_SECRETS[0], old)
    gate.require(old)
    # Rotation: the new key becomes current, the old one previous; both open until the previous is deleted.
    store.set(REGISTRATION_KEY_SECRETS[0], new)
    store.set(REGISTRATION_KEY_SECRETS[1], old)
    gate.require(old)  # cached: the change is read within the TTL
    clock.advance(REGISTRATION_KEY_TTL)
    gate.require(new)
    gate.require(old)
    store.delete(REGISTRATION_KEY_SECRETS[1])
    clock.advance(REGISTRATION_KEY_TTL)
    gate.require(new)
    for wrong in (old, "", None, new[:-1], new + "x", FUNCTION_KEY):
        with pytest.raises(Unauthorized):
            gate.require(wrong)
