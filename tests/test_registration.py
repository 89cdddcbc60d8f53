"""The registration engine in the home deployment: register, re-register, deregister; secrets only in the
secret store (the local file, and Key Vault through the real SDK against the fake); bad input refused with
nothing stored; and no secret, key or contact detail in any log line."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import timedelta

import httpx
import pytest

from shared.errors import Conflict, StorageUnavailable, Unprocessable
from shared.registration import RegistrationIn
from shared.secrets import KeyVaultSecrets, LocalSecrets
from tests.conftest import FUNCTION_KEY, US_URL, all_blobs, blob_states
from tests.fake_keyvault import FakeCredential, start_fake_keyvault

SENDGRID = "SG.sendgrid-secret-value-0123456789"
TWILIO = "twilio-token-abcdef-9876543210"


def registration(org: str, **changes):
    body = {
        "pack": "email",
        "contact": {"name": "Ada Admin", "email": "ada.admin@contoso.example", "phone": "+47 22 33 44 55"},
        "organization": {"name": "contoso", "id": org, "users": 25, "url": "https://contoso.crm4.dynamics.com/"},
        "region": "us",
        "credentials": {"sendgrid": SENDGRID, "twilio": TWILIO},
    }
    for key, value in changes.items():
        if "." in key:
            outer, inner = key.split(".")
            body[outer] = {**body[outer], inner: value}
        elif value is None:
            body.pop(key)
        else:
            body[key] = value
    return body


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


def register(services, body):
    return services.registrations.register(RegistrationIn.model_validate(body))


def secrets_file(services):
    path = services.settings.local_secrets_path
    return json.loads(path.read_text()) if path.exists() else {}


def blobs_text(azurite):
    return json.dumps(
        {c: {k: v.decode() for k, v in all_blobs(azurite, c).items()} for c in ("registry", "records", "state")}
    )


def test_register_reregister_and_deregister(home, org, azurite, clock):
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
    assert SENDGRID not in blobs_text(azurite) and TWILIO not in blobs_text(azurite)
    assert created["api_key"] not in blobs_text(azurite) and created["signing_key"] not in blobs_text(azurite)

    shown = home.registrations.get(tenant)
    assert shown["credentials"] == ["sendgrid", "twilio"] and "api_key" not in shown
    assert SENDGRID not in json.dumps(shown)

    clock.advance(timedelta(hours=1))
    changed = registration(org, credentials={"sendgrid": "SG.rotated-value-42"}, **{"contact.name": "Bo Admin"})
    status, updated = register(home, changed)
    assert status == 200 and updated["tenant"] == tenant and "api_key" not in updated
    assert updated["contact"]["name"] == "Bo Admin" and updated["credentials"] == ["sendgrid"]
    assert list(secrets_file(home).values()) == ["SG.rotated-value-42"]  # twilio's secret was deleted
    # Re-registering without credentials keeps the stored ones.
    assert register(home, registration(org, credentials=None))[1]["credentials"] == ["sendgrid"]
    # Another pack of the same organisation is another tenant.
    other_status, other = register(home, registration(org, pack="geolog", credentials=None))
    assert other_status == 201 and other["tenant"] != tenant

    home.registrations.deregister(tenant)
    assert home.registry.get_tenant(tenant) is None
    assert all(name.startswith(f"pc-{other['tenant']}") for name in secrets_file(home))
    assert f"registrations/{tenant}.json" not in all_blobs(azurite, "registry")
    kinds = [json.loads(line)["kind"] for body in all_blobs(azurite, "audit", f"{tenant}/").values()
             for line in body.decode().splitlines()]  # fmt: skip
    assert kinds.count("registration") == 4 and "tenant" in kinds  # the audit entries stay
    from shared.errors import NotFound

    with pytest.raises(NotFound):
        home.registrations.get(tenant)
    with pytest.raises(NotFound):
        home.registrations.deregister(tenant)


def test_the_region_of_a_registration_never_changes(home, org):
    tenant = register(home, registration(org))[1]["tenant"]
    with pytest.raises(Conflict) as refused:
        register(home, registration(org, region="eu"))
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
    from shared.models import TenantIn
    from shared.registration import Registration, RegistrationStore, registration_tenant_id

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
    from shared.auth import authenticate_tenant

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
    ],
)
def test_bad_registrations_are_refused_with_nothing_stored(home_host, azurite, org, change, field, tmp_path):
    api, secrets_path = home_host
    before = blob_states(azurite, ("registry", "records", "state"))
    answer = httpx.post(
        f"{api}/registrations", json=registration(org, **change), headers={"x-functions-key": FUNCTION_KEY}
    )
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["error"] == "invalid_registration"
    assert any(problem["field"].startswith(field) for problem in body["errors"]), body
    assert SENDGRID not in answer.text and "x" * 100 not in answer.text
    assert blob_states(azurite, ("registry", "records", "state")) == before
    assert not secrets_path.exists()


def test_registration_over_http_needs_the_function_key_and_is_served_by_the_home_only(home_host, host, org):
    api, _ = home_host
    assert httpx.post(f"{api}/registrations", json=registration(org)).status_code == 401
    created = httpx.post(f"{api}/registrations", json=registration(org), headers={"x-functions-key": FUNCTION_KEY})
    assert created.status_code == 201 and created.json()["base_url"] == US_URL
    tenant = created.json()["tenant"]
    shown = httpx.get(f"{api}/registrations/{tenant}", headers={"x-functions-key": FUNCTION_KEY})
    assert shown.status_code == 200 and SENDGRID not in shown.text and "api_key" not in shown.json()
    assert httpx.get(f"{api}/registrations/BAD..", headers={"x-functions-key": FUNCTION_KEY}).status_code == 400
    # The regional (eu) host has no registration routes at all.
    regional = httpx.post(f"{host}/registrations", json=registration(org), headers={"x-functions-key": FUNCTION_KEY})
    assert regional.status_code == 404
    deleted = httpx.delete(f"{api}/registrations/{tenant}", headers={"x-functions-key": FUNCTION_KEY})
    assert deleted.status_code == 204
    assert httpx.get(f"{api}/registrations/{tenant}", headers={"x-functions-key": FUNCTION_KEY}).status_code == 404


@pytest.fixture(scope="module")
def home_host(azurite, tmp_path_factory):
    """A home (us) local host on the session's Azurite, with its own secrets file."""
    import os

    from devenv.azurite import free_port
    from devenv.local_host import start_local_host, stop_local_host
    from tests.conftest import HOST_MASTER_KEY, settings_env

    secrets_path = tmp_path_factory.mktemp("home") / "secrets.json"
    port = free_port()
    env = {
        **os.environ,
        **settings_env(azurite, region="us"),
        "PACKCLOUD_ROLE": "regional,registration",
        "PACKCLOUD_LOCAL_SECRETS_PATH": str(secrets_path),
        "DEVHOST_FUNCTION_KEY": FUNCTION_KEY,
        "DEVHOST_MASTER_KEY": HOST_MASTER_KEY,
    }
    process = start_local_host(port, env)
    yield f"http://127.0.0.1:{port}/api", secrets_path
    stop_local_host(process)


def test_with_key_vault_secrets_live_in_the_vault_only_and_no_log_line_holds_any(home, org, azurite, tmp_path, caplog):
    from shared.provisioning import Provisioner
    from shared.registration import Registrations, RegistrationStore

    vault, server = start_fake_keyvault(tmp_path)
    try:
        secrets = KeyVaultSecrets(vault.url, FakeCredential(), **vault.client_options())
        engine = Registrations(
            RegistrationStore(home.storage, home.registry),
            secrets,
            Provisioner(home.settings, home.registry, home.audit, secrets),
            home.audit,
            home.settings,
            home.clock,
        )
        body = registration(org)
        with caplog.at_level(logging.DEBUG):
            logging.getLogger().setLevel(logging.DEBUG)
            status, created = engine.register(RegistrationIn.model_validate(body))
            engine.register(RegistrationIn.model_validate(registration(org, credentials={"sendgrid": "SG.new-99"})))
            shown = engine.get(created["tenant"])
            engine.deregister(created["tenant"])
    finally:
        server.shutdown()
    assert status == 201 and shown["credentials"] == ["sendgrid"]
    assert sorted(vault.deleted) == sorted(f"pc-{created['tenant']}--cred-{n}" for n in ("sendgrid", "twilio"))
    assert vault.secrets == {}
    assert ("PUT", f"/secrets/pc-{created['tenant']}--cred-sendgrid", 200) in vault.requests
    assert not LocalSecrets(home.settings.local_secrets_path).get(f"pc-{created['tenant']}--cred-sendgrid")
    logged = caplog.text + "".join(str(record.__dict__) for record in caplog.records)
    assert len(caplog.records) > 0  # the SDKs did log (their requests): the check below means something
    for value in (SENDGRID, TWILIO, "SG.new-99", created["api_key"], created["signing_key"],
                  "ada.admin@contoso.example", "Ada Admin", "+4722334455"):  # fmt: skip
        assert value not in logged
    assert SENDGRID not in blobs_text(azurite)
