"""The secret store: Key Vault through the real SDK against a local HTTPS fake (the local 0600 file, secret names
and the choice of store are in tests/unit/test_secrets.py)."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.keyvault.secrets import SecretClient

from shared.core.errors import StorageUnavailable
from shared.storage.secrets import KeyVaultSecrets, LocalSecrets, tenant_secret_name
from tests.factories import SECRET_VALUE as VALUE
from tests.integration.fake_keyvault import SCOPE, FakeCredential, start_fake_keyvault


@pytest.fixture(scope="module")
def fake_vault(tmp_path_factory):
    vault, server = start_fake_keyvault(tmp_path_factory.mktemp("vault"))
    yield vault
    server.shutdown()


@pytest.fixture
def vault(fake_vault):
    fake_vault.reset()
    return fake_vault


def key_vault(vault, credential=None):
    # Polls and pauses of 10 ms: the fake counts requests, not time, so this only shortens the test.
    return KeyVaultSecrets(vault.url, credential or FakeCredential(), poll_interval_s=0.01, **vault.client_options())


def sdk(vault):
    return SecretClient(vault.url, FakeCredential(), **vault.client_options())


def test_key_vault_set_get_delete_through_the_sdk_with_the_bearer_challenge(vault):
    credential = FakeCredential()
    store = key_vault(vault, credential)
    name = tenant_secret_name("t-0123", "sendgrid")
    store.set(name, VALUE)
    assert vault.secrets == {name: VALUE}
    # The first request was answered with the challenge; the token was then asked for the vault's scope.
    assert vault.requests[0] == ("PUT", f"/secrets/{name}", 401) and vault.requests[1][2] == 200
    assert credential.scopes == [(SCOPE,)]
    assert store.get(name) == VALUE
    assert store.get("pc-unknown--x") is None
    assert store.delete(name) is True
    assert name not in vault.secrets and name in vault.deleted  # soft-deleted, as with purge protection
    assert store.get(name) is None
    assert store.delete(name) is False


def test_key_vault_down_is_a_503_that_names_no_secret(vault):
    vault.down = True
    store = key_vault(vault)
    with pytest.raises(StorageUnavailable) as failed:
        store.set(tenant_secret_name("t-0123", "sms"), VALUE)
    assert failed.value.status == 503 and VALUE not in str(failed.value.body())
    with pytest.raises(StorageUnavailable):
        store.get(tenant_secret_name("t-0123", "sms"))


def test_the_fake_refuses_a_deleted_name_with_409_as_key_vault_does(vault):
    client = sdk(vault)
    client.set_secret("pc-t-1--cred-a", "first")
    client.begin_delete_secret("pc-t-1--cred-a")
    with pytest.raises(HttpResponseError) as refused:  # the deletion still under way
        client.set_secret("pc-t-1--cred-a", "second")
    assert refused.value.status_code == 409
    assert refused.value.response.json()["error"]["innererror"]["code"] == "ObjectIsBeingDeleted"
    with pytest.raises(ResourceNotFoundError):
        client.get_deleted_secret("pc-t-1--cred-a")  # the last request of the deletion's lag
    assert client.get_deleted_secret("pc-t-1--cred-a").name == "pc-t-1--cred-a"
    with pytest.raises(HttpResponseError) as refused:
        client.set_secret("pc-t-1--cred-a", "second")
    assert refused.value.status_code == 409
    body = refused.value.response.json()["error"]
    assert body["code"] == "Conflict" and body["innererror"]["code"] == "ObjectIsDeletedButRecoverable"
    assert "deleted but recoverable" in body["message"]
    assert [s.name for s in client.list_deleted_secrets()] == ["pc-t-1--cred-a"]
    with pytest.raises(ResourceNotFoundError):
        client.get_secret("pc-t-1--cred-a")


def test_the_fake_refuses_purge_under_purge_protection_and_recovers_asynchronously(vault):
    client = sdk(vault)
    client.set_secret("pc-t-1--cred-a", "first")
    client.set_secret("pc-t-1--cred-a", "second")
    vault.lag = 0
    client.begin_delete_secret("pc-t-1--cred-a")
    with pytest.raises(HttpResponseError) as refused:
        client.purge_deleted_secret("pc-t-1--cred-a")
    assert refused.value.status_code == 403 and "purge protection" in refused.value.message
    assert "pc-t-1--cred-a" in vault.deleted  # still there, as Key Vault keeps it to the end of its retention
    vault.lag = 2
    poller = client.begin_recover_deleted_secret("pc-t-1--cred-a", _polling_interval=0.01)
    with pytest.raises(ResourceNotFoundError):  # recovery is asynchronous: the secret is not readable yet
        client.get_secret("pc-t-1--cred-a")
    poller.wait()
    assert poller.done() and client.get_secret("pc-t-1--cred-a").value == "second"
    first = vault.versions["pc-t-1--cred-a"][0][0]
    assert client.get_secret("pc-t-1--cred-a", first).value == "first"  # recovery brings every version back
    assert list(client.list_deleted_secrets()) == []


def test_the_fake_purges_without_purge_protection(vault):
    client = sdk(vault)
    vault.purge_protection, vault.lag = False, 0
    client.set_secret("pc-t-1--cred-a", "first")
    client.begin_delete_secret("pc-t-1--cred-a")
    client.purge_deleted_secret("pc-t-1--cred-a")
    client.set_secret("pc-t-1--cred-a", "again")
    assert [value for _, value in vault.versions["pc-t-1--cred-a"]] == ["again"]


@pytest.mark.parametrize("lag", [0, 1, 3])
def test_key_vault_store_writes_a_deleted_name_again(vault, lag):
    """Set, delete, set: the store recovers the deleted secret and writes a new version, as the file does."""
    vault.lag = lag
    store = key_vault(vault)
    name = tenant_secret_name("t-0123", "sms")
    store.set(name, VALUE)
    assert store.delete(name) is True
    store.set(name, "new value")  # at once: the deletion may still be under way
    assert store.get(name) == "new value"
    assert vault.secrets == {name: "new value"} and vault.deleted == {}
    statuses = [status for method, path, status in vault.requests if path == f"/secrets/{name}" and method == "PUT"]
    assert 409 in statuses and statuses[-1] == 200
    assert ("POST", f"/deletedsecrets/{name}/recover", 200) in vault.requests


def test_key_vault_store_gives_up_with_a_503_when_the_vault_never_settles(vault):
    vault.lag = 1000
    store = key_vault(vault)
    name = tenant_secret_name("t-0123", "sms")
    store.set(name, VALUE)
    store.delete(name)
    with pytest.raises(StorageUnavailable) as failed:
        store.set(name, "new value")
    assert VALUE not in str(failed.value.body()) and name not in str(failed.value.body())


@pytest.mark.parametrize("kind", ["file", "vault"])
def test_both_stores_mean_the_same_to_their_caller(vault, tmp_path, kind):
    store = key_vault(vault) if kind == "vault" else LocalSecrets(tmp_path / "secrets.json")
    store.set("pc-t-1--a", "one")
    store.set("pc-t-1--a", "two")
    assert store.get("pc-t-1--a") == "two"
    assert store.delete("pc-t-1--a") is True and store.get("pc-t-1--a") is None
    assert store.delete("pc-t-1--a") is False
    store.set("pc-t-1--a", "three")
    assert store.get("pc-t-1--a") == "three"
