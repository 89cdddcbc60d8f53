"""A tenant's credentials kept as a document and a never-reused secret (shared/storage/tenant_credentials.py), in
real Azurite and the Key Vault fake through the real SDK; the Twilio account kept that way (it was one secret under a
fixed name); and every credential store going with its tenant (shared/services.py `forget_tenant_credentials`)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from azure.storage.blob import BlobServiceClient
from pydantic import SecretStr

from devenv.sendgrid_events import WebhookKey, batch, sendgrid_event
from shared.core.errors import NotFound, StorageUnavailable, Unauthorized
from shared.dataverse.targets import TargetIn
from shared.dpo.webhooks import WebhookIn
from shared.emailevents.keys import VerificationKeyIn
from shared.mailchimp.connection import ConnectionIn
from shared.registry.models import Dataset, TenantIn
from shared.registry.sms_account import SmsAccountIn, SmsAccounts, sms_secret_name
from shared.registry.tenants import delete_tenant
from shared.services import Services
from shared.storage.audit import AuditLog
from shared.storage.blobs import REGISTRY, Storage
from shared.storage.secrets import KeyVaultSecrets
from shared.storage.tenant_credentials import CredentialDocument, CredentialSpec, TenantCredentials
from tests.factories import EMAIL_EVENTS, all_blobs, settings_env, settings_from, target_body
from tests.integration.fake_keyvault import FakeCredential, FakeKeyVault, serving_fake_keyvault

SID = "AC" + "0" * 32
TOKEN_A = "auth-token-a-0123456789abcdef"
TOKEN_B = "auth-token-b-0123456789abcdef"
MAILCHIMP_KEY = "0123456789abcdef0123456789abcdef-us21"


class Thing(CredentialDocument):
    label: str


THINGS = CredentialSpec(Thing, "tests/things/", purpose="thing", audit="thing")


class Ref:
    def __init__(self, tenant_id: str, generation: str) -> None:
        self.id = tenant_id
        self.generation = generation


@pytest.fixture(scope="module")
def fake_vault(tmp_path_factory) -> Iterator[FakeKeyVault]:
    yield from serving_fake_keyvault(tmp_path_factory.mktemp("vault"))


@pytest.fixture
def key_vault(fake_vault: FakeKeyVault) -> KeyVaultSecrets:
    fake_vault.reset()  # each test starts with an empty vault and request log
    return KeyVaultSecrets(fake_vault.url, FakeCredential(), poll_interval_s=0.01, **fake_vault.client_options())


@pytest.fixture
def vault(fake_vault: FakeKeyVault, key_vault: KeyVaultSecrets) -> FakeKeyVault:
    return fake_vault


@pytest.fixture
def storage(settings) -> Storage:
    return Storage.from_settings(settings)


@pytest.fixture
def things(storage, key_vault, clock) -> TenantCredentials[Thing]:
    audit = AuditLog(storage, clock)
    return TenantCredentials(storage, key_vault, audit, clock, THINGS)


def audit_changes(storage: Storage, clock, tenant_id: str, kind: str) -> list[str]:
    return [entry["change"] for entry in AuditLog(storage, clock).entries(tenant_id) if entry["kind"] == kind]


def live_values(vault: FakeKeyVault) -> list[str]:
    """Every version of every secret that is not deleted: what anyone with read access to the vault can read."""
    return [value for name, versions in vault.versions.items() if name in vault.secrets for _, value in versions]


# ------------------------------------------------------------------ the piece


def test_put_keeps_the_secret_under_a_new_name_and_the_document_names_it_only(
    things, vault, storage, clock, azurite, tenant_id
):
    tenant = Ref(tenant_id, "g1")
    doc, created = things.put(tenant, "s3cret-one", {"label": "first"}, lambda d: {"label": d.label})
    assert created and doc.tenant == tenant_id and doc.tenant_generation == "g1"
    assert doc.secret_name.startswith(f"pc-{tenant_id}--thing-") and vault.secrets[doc.secret_name] == "s3cret-one"
    stored = all_blobs(azurite, REGISTRY, f"tests/things/{tenant_id}.json")
    assert list(stored) == [f"tests/things/{tenant_id}.json"]
    body = json.loads(stored[f"tests/things/{tenant_id}.json"])
    assert body["secret_name"] == doc.secret_name and b"s3cret-one" not in stored[f"tests/things/{tenant_id}.json"]
    assert things.get(tenant) == doc and things.secret(doc) == "s3cret-one"
    entries = [e for e in AuditLog(storage, clock).entries(tenant_id) if e["kind"] == "thing"]
    assert [(e["change"], e["label"]) for e in entries] == [("created", "first")]
    assert "s3cret-one" not in json.dumps(entries)


def test_replacing_writes_a_new_name_and_forgets_the_old_secret(things, vault, storage, clock, tenant_id):
    tenant = Ref(tenant_id, "g1")
    first, _ = things.put(tenant, "value-one", {"label": "a"})
    clock.advance(timedelta(seconds=60))
    second, created = things.put(tenant, "value-two", {"label": "b"})
    assert not created and second.secret_name != first.secret_name
    assert second.created_at == first.created_at and second.updated_at > first.updated_at
    assert first.secret_name in vault.deleted and "value-one" not in live_values(vault)
    assert audit_changes(storage, clock, tenant_id, "thing") == ["created", "replaced"]


def test_a_name_is_never_written_twice_so_nothing_deleted_comes_back(things, vault, tenant_id):
    tenant = Ref(tenant_id, "g1")
    names = []
    for value in ("v1", "v2"):
        doc, _ = things.put(tenant, value, {"label": value})
        names.append(doc.secret_name)
        assert things.delete(tenant_id, audited=True)
    doc, created = things.put(tenant, "v3", {"label": "v3"})
    names.append(doc.secret_name)
    assert created and len(set(names)) == 3
    assert not [path for _, path, _ in vault.requests if path.startswith("/deletedsecrets/")]  # no recovery
    assert live_values(vault) == ["v3"]


def test_an_earlier_generations_document_is_none_and_goes_with_the_next_put(things, vault, storage, clock, tenant_id):
    old, _ = things.put(Ref(tenant_id, "g1"), "old-value", {"label": "old"})
    again = Ref(tenant_id, "g2")
    assert things.get(again) is None and things.stored(tenant_id) == old
    doc, created = things.put(again, "new-value", {"label": "new"})
    assert created and doc.created_at == doc.updated_at
    assert old.secret_name in vault.deleted and live_values(vault) == ["new-value"]
    assert audit_changes(storage, clock, tenant_id, "thing") == ["created", "created"]


def test_delete_removes_the_document_the_blobs_named_and_the_secret(things, vault, storage, clock, azurite, tenant_id):
    tenant = Ref(tenant_id, "g1")
    things.put(tenant, "value", {"label": "x"})
    extra = f"tests/thing-status/{tenant_id}.json"
    storage.container(REGISTRY).upload_blob(extra, b"{}", overwrite=True)
    assert things.delete(tenant_id, audited=False, also=[extra])
    assert all_blobs(azurite, REGISTRY, f"tests/things/{tenant_id}") == {}
    assert all_blobs(azurite, REGISTRY, extra) == {}
    assert vault.secrets == {} and things.get(tenant) is None
    assert not things.delete(tenant_id, audited=True)  # nothing there: no entry either
    assert audit_changes(storage, clock, tenant_id, "thing") == ["created"]
    things.put(tenant, "value", {"label": "x"})
    assert things.delete(tenant_id, audited=True)
    assert audit_changes(storage, clock, tenant_id, "thing") == ["created", "created", "deleted"]


def test_a_document_that_cannot_be_written_takes_its_new_secret_with_it(things, vault, azurite, tenant_id):
    tenant = Ref(tenant_id, "g1")
    first, _ = things.put(tenant, "kept", {"label": "a"})
    blob = BlobServiceClient.from_connection_string(azurite.connection_string).get_blob_client(
        REGISTRY, things.blob(tenant_id)
    )
    lease = blob.acquire_lease(lease_duration=15)  # Azurite refuses a write without the lease: 412
    try:
        with pytest.raises(StorageUnavailable):  # a 503, retry later
            things.put(tenant, "refused", {"label": "b"})
    finally:
        lease.release()
    assert things.get(tenant) == first and things.secret(first) == "kept"
    assert "refused" not in live_values(vault) and list(vault.secrets) == [first.secret_name]


def test_tenants_and_all_list_every_document(things, tenant_id):
    others = [f"{tenant_id}-{n}" for n in range(3)]
    for each in others:
        things.put(Ref(each, "g"), "v", {"label": each})
    listed = [each for each in things.tenants() if each.startswith(tenant_id)]
    assert listed == others
    assert [doc.label for doc in things.all() if doc.tenant.startswith(tenant_id)] == others
    for each in others:
        things.delete(each, audited=False)


# ------------------------------------------------------------------ the Twilio account (was one fixed-name secret)


def sms_account(token: str) -> SmsAccountIn:
    return SmsAccountIn(account_sid=SID, auth_token=SecretStr(token), from_number="+4722334455")


@pytest.fixture
def sms(storage, key_vault, clock) -> SmsAccounts:
    return SmsAccounts(storage, key_vault, AuditLog(storage, clock), clock)


@pytest.fixture
def tenant(services, tenant_id):
    services.registry.put_tenant(tenant_id, TenantIn())
    return services.registry.get_tenant(tenant_id, fresh=True)


def test_replacing_a_twilio_account_leaves_the_old_auth_token_nowhere_readable(sms, vault, tenant):
    """The account used to be overwritten in place: Key Vault kept the old Auth Token as an older version."""
    assert sms.put(tenant, sms_account(TOKEN_A))
    assert not sms.put(tenant, sms_account(TOKEN_B))
    got = sms.get(tenant)
    assert got is not None and got.auth_token.get_secret_value() == TOKEN_B
    assert not [value for value in live_values(vault) if TOKEN_A in value]


def test_a_twilio_account_given_again_after_deletion_brings_no_deleted_token_back(sms, vault, tenant):
    """The fixed name used to be written again: Key Vault recovered the deleted secret, old token and all."""
    sms.put(tenant, sms_account(TOKEN_A))
    assert sms.delete(tenant.id)
    assert sms.get(tenant) is None
    assert sms.put(tenant, sms_account(TOKEN_B))
    assert not [path for _, path, _ in vault.requests if path.endswith("/recover")]
    assert not [value for value in live_values(vault) if TOKEN_A in value]


def test_a_twilio_account_is_a_document_without_secrets_and_a_secret(sms, vault, azurite, tenant):
    sms.put(tenant, SmsAccountIn(account_sid=SID, auth_token=SecretStr(TOKEN_A), messaging_service_sid="MG" + "1" * 32))
    stored = all_blobs(azurite, REGISTRY, f"sms/accounts/{tenant.id}.json")
    body = json.loads(next(iter(stored.values())))
    assert body["account_sid"] == SID and body["messaging_service_sid"] == "MG" + "1" * 32
    assert TOKEN_A.encode() not in next(iter(stored.values()))
    assert json.loads(vault.secrets[body["secret_name"]]) == {"auth_token": TOKEN_A}


def test_an_account_kept_as_one_secret_before_still_reads_and_is_replaced(
    sms, vault, key_vault, storage, clock, tenant
):
    legacy = {
        "generation": tenant.generation,
        "account": {"account_sid": SID, "auth_token": TOKEN_A, "from_number": "+4722334455"},
    }
    key_vault.set(sms_secret_name(tenant.id), json.dumps(legacy))
    got = sms.get(tenant)
    assert got is not None and got.auth_token.get_secret_value() == TOKEN_A
    assert sms.put(tenant, sms_account(TOKEN_B)) is False  # the tenant had one: replaced, 200
    assert sms_secret_name(tenant.id) in vault.deleted and not [v for v in live_values(vault) if TOKEN_A in v]
    assert audit_changes(storage, clock, tenant.id, "sms_account") == ["replaced"]


def test_an_account_kept_as_one_secret_for_an_earlier_generation_is_none_and_deleted(
    sms, key_vault, storage, clock, tenant
):
    legacy = {
        "generation": "0" * 32,
        "account": {"account_sid": SID, "auth_token": TOKEN_A, "from_number": "+4722334455"},
    }
    key_vault.set(sms_secret_name(tenant.id), json.dumps(legacy))
    assert sms.get(tenant) is None
    assert sms.delete(tenant.id)
    assert key_vault.get(sms_secret_name(tenant.id)) is None
    assert audit_changes(storage, clock, tenant.id, "sms_account") == ["deleted"]


# ------------------------------------------------------------------ the SendGrid key (was one fixed-name secret)


def with_vault(settings, clock, key_vault: KeyVaultSecrets) -> Services:
    """A deployment (one instance) whose secret store is the Key Vault fake, reached by the real SDK (Key Vault is
    otherwise reached with the app's managed identity, which a test has not)."""
    services = Services.build(settings, clock)
    services.__dict__["secrets"] = key_vault  # before first use: the cached accessor is never built
    return services


def created_tenant(services: Services, tenant_id: str):
    services.registry.put_tenant(tenant_id, TenantIn())
    services.registry.put_dataset(tenant_id, "mail", Dataset.model_validate(EMAIL_EVENTS))
    return services.registry.get_tenant(tenant_id, fresh=True)


def give_key(services: Services, tenant, key: WebhookKey) -> None:
    services.email_events.key_admin.put(tenant, VerificationKeyIn(verification_key=SecretStr(key.public_base64)))


def signed(services: Services, tenant_id: str, key: WebhookKey, clock) -> int:
    """The stored count of a one-event batch signed with `key`, or the 401's code."""
    body = batch([sendgrid_event(1)])
    headers = {k.lower(): v for k, v in key.headers(body, int(clock.now().timestamp())).items()}
    try:
        return services.email_events.receive(tenant_id, "mail", headers.get, body).stored
    except Unauthorized as refused:
        return refused.code


def earlier_layout(tenant_id: str) -> str:
    """The fixed name a key was kept under before keys had documents."""
    return f"pc-{tenant_id}--sendgrid-verification-key"


def test_replacing_an_email_key_leaves_the_old_key_nowhere_readable(settings, clock, key_vault, vault, tenant_id):
    """The key used to be overwritten in place: Key Vault kept the old key as an older version of the secret."""
    services = with_vault(settings, clock, key_vault)
    tenant = created_tenant(services, tenant_id)
    old, new = WebhookKey.generate(), WebhookKey.generate()
    give_key(services, tenant, old)
    give_key(services, tenant, new)
    assert not [value for value in live_values(vault) if old.public_base64 in value]
    assert [value for value in live_values(vault) if new.public_base64 in value] == [new.public_base64]
    assert signed(services, tenant_id, new, clock) == 1
    assert signed(services, tenant_id, old, clock) == "invalid_signature"
    assert audit_changes(services.storage, clock, tenant_id, "email_events_key") == ["created", "replaced"]


def test_an_email_key_given_again_after_deletion_brings_no_deleted_key_back(
    settings, clock, key_vault, vault, tenant_id
):
    """The fixed name used to be written again: Key Vault recovered the deleted secret, old key and all."""
    services = with_vault(settings, clock, key_vault)
    tenant = created_tenant(services, tenant_id)
    old, new = WebhookKey.generate(), WebhookKey.generate()
    give_key(services, tenant, old)
    services.email_events.key_admin.delete(tenant)
    give_key(services, tenant, new)
    assert not [path for _, path, _ in vault.requests if path.endswith("/recover")]
    assert not [value for value in live_values(vault) if old.public_base64 in value]


def test_a_tenant_created_again_never_finds_the_old_tenants_key(settings, clock, key_vault, vault, tenant_id):
    """The key had no generation: a key left by the tenant before (its deletion in the registry alone, or a
    verifier another instance still held) was the new tenant's."""
    first = with_vault(settings, clock, key_vault)
    old = WebhookKey.generate()
    give_key(first, created_tenant(first, tenant_id), old)
    assert signed(first, tenant_id, old, clock) == 1
    # Deleted and created again through this instance: its verifier of the old tenant's key does not count.
    first.forget_tenant_credentials(tenant_id)
    delete_tenant(first.registry, first.audit, tenant_id)
    created_tenant(first, tenant_id)
    assert signed(first, tenant_id, old, clock) == "no_verification_key"
    # A key the old tenant left behind (its tenant deleted in the registry only) is not the new tenant's either.
    give_key(first, first.registry.get_tenant(tenant_id, fresh=True), old)
    delete_tenant(first.registry, first.audit, tenant_id)
    other = with_vault(settings, clock, key_vault)  # another instance: nothing cached
    tenant = created_tenant(other, tenant_id)
    assert signed(other, tenant_id, old, clock) == "no_verification_key"
    with pytest.raises(NotFound):
        other.email_events.key_admin.require(tenant)
    # Its own key replaces it, and the old tenant's key goes from the vault.
    new = WebhookKey.generate()
    give_key(other, tenant, new)
    assert signed(other, tenant_id, new, clock) == 1
    assert not [value for value in live_values(vault) if old.public_base64 in value]


def test_a_key_kept_as_one_secret_before_still_counts_and_moves_when_given_again(
    settings, clock, key_vault, vault, azurite, tenant_id
):
    services = with_vault(settings, clock, key_vault)
    tenant = created_tenant(services, tenant_id)
    old, new = WebhookKey.generate(), WebhookKey.generate()
    key_vault.set(earlier_layout(tenant_id), old.public_base64)
    services.email_events.key_admin.require(tenant)  # GET: configured
    assert signed(services, tenant_id, old, clock) == 1
    give_key(services, tenant, new)
    assert earlier_layout(tenant_id) in vault.deleted
    assert not [value for value in live_values(vault) if old.public_base64 in value]
    (name,) = all_blobs(azurite, REGISTRY, f"email/keys/{tenant_id}.json")
    body = json.loads(all_blobs(azurite, REGISTRY, name)[name])
    assert body["tenant_generation"] == tenant.generation and vault.secrets[body["secret_name"]] == new.public_base64
    assert audit_changes(services.storage, clock, tenant_id, "email_events_key") == ["replaced"]  # the tenant had one
    later = with_vault(settings, clock, key_vault)  # another instance: read from the store, not a cache
    assert signed(later, tenant_id, new, clock) == 1 and signed(later, tenant_id, old, clock) == "invalid_signature"


def test_a_key_kept_as_one_secret_before_goes_with_its_tenant_audited(settings, clock, key_vault, vault, tenant_id):
    services = with_vault(settings, clock, key_vault)
    created_tenant(services, tenant_id)
    key = WebhookKey.generate()
    key_vault.set(earlier_layout(tenant_id), key.public_base64)
    services.forget_tenant_credentials(tenant_id)
    assert key_vault.get(earlier_layout(tenant_id)) is None
    entries = [e for e in services.audit.entries(tenant_id) if e["kind"] == "email_events_key"]
    assert [e["change"] for e in entries] == ["deleted"] and key.public_base64 not in json.dumps(entries)


# ------------------------------------------------------------------ every store goes with its tenant


@pytest.fixture
def world(azurite, tmp_path, clock) -> Services:
    env = {
        **settings_env(azurite),
        "PACKCLOUD_DPO_WEBHOOK_DEV_NETWORKS": "127.0.0.0/8",
        "PACKCLOUD_LOCAL_SECRETS_PATH": str(tmp_path / "secrets.json"),
    }
    return Services.build(settings_from(env), clock)


def test_forgetting_a_tenant_takes_every_credential_and_its_secret(world, azurite, tenant_id):
    world.registry.put_tenant(tenant_id, TenantIn())
    tenant = world.registry.get_tenant(tenant_id, fresh=True)
    world.delivery_targets.put(
        tenant,
        TargetIn.model_validate(target_body("https://contoso.crm4.dynamics.com", str(uuid.uuid4()), str(uuid.uuid4()))),
    )
    world.sms_accounts.put(tenant, sms_account(TOKEN_A))
    world.email_keys.put(tenant, WebhookKey.generate().public_base64)
    world.mailchimp.connections.put(tenant, ConnectionIn(api_key=SecretStr(MAILCHIMP_KEY)))
    world.dpo.webhooks.put(tenant, WebhookIn(url="https://127.0.0.1:9/dpo"))
    assert len(json.loads(world.settings.local_secrets_path.read_text())) == 5

    world.forget_tenant_credentials(tenant_id)
    assert json.loads(world.settings.local_secrets_path.read_text()) == {}
    assert world.email_keys.get(tenant) is None
    for prefix in ("delivery/targets/", "sms/accounts/", "email/keys/", "mailchimp/connections/", "dpo/webhooks/"):
        assert all_blobs(azurite, REGISTRY, f"{prefix}{tenant_id}") == {}
    assert world.dpo.webhooks.get(tenant) is None  # at once, not at the DPO timer's next run
    # Every store's removal is in the tenant's audit trail (only the SMS and Mailchimp ones were).
    kinds = ("delivery_target", "sms_account", "email_events_key", "mailchimp_connection", "dpo_webhook")
    deleted = [e["kind"] for e in world.audit.entries(tenant_id) if e.get("change") == "deleted"]
    assert sorted(deleted) == sorted(kinds)
    world.forget_tenant_credentials(tenant_id)  # nothing left: nothing more to tell
    assert len([e for e in world.audit.entries(tenant_id) if e.get("change") == "deleted"]) == len(kinds)
