"""The secret store: Key Vault through the real SDK against a local HTTPS fake, and the local 0600 file."""

from __future__ import annotations

import stat

import pytest

from shared.errors import StorageUnavailable
from shared.secrets import KeyVaultSecrets, LocalSecrets, region_key_secret_name, secret_store, tenant_secret_name
from tests.fake_keyvault import SCOPE, FakeCredential, start_fake_keyvault

VALUE = "sk_live_0123456789abcdefSECRET"


@pytest.fixture(scope="module")
def fake_vault(tmp_path_factory):
    vault, server = start_fake_keyvault(tmp_path_factory.mktemp("vault"))
    yield vault
    server.shutdown()


@pytest.fixture
def vault(fake_vault):
    fake_vault.secrets.clear()
    fake_vault.deleted.clear()
    fake_vault.requests.clear()
    fake_vault.down = False
    return fake_vault


def key_vault(vault, credential=None):
    return KeyVaultSecrets(vault.url, credential or FakeCredential(), **vault.client_options())


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


def test_local_secrets_are_a_private_file(tmp_path):
    path = tmp_path / ".state" / "secrets.json"
    store = LocalSecrets(path)
    store.set("pc-t-1--api", VALUE)
    store.set("pc-t-1--sms", "other")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert LocalSecrets(path).get("pc-t-1--api") == VALUE
    assert store.delete("pc-t-1--api") is True and store.delete("pc-t-1--api") is False
    assert store.get("pc-t-1--api") is None and store.get("pc-t-1--sms") == "other"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["secrets.json"]  # no temporary file left behind


def test_secret_names_are_checked():
    assert tenant_secret_name("t-abc", "email-api") == "pc-t-abc--email-api"
    assert region_key_secret_name("eu") == "packcloud-region-eu-function-key"
    for bad in ("with space", "x" * 128, "dot.name"):
        with pytest.raises(ValueError, match="secret name"):
            tenant_secret_name("t", bad)


def test_the_store_is_key_vault_when_its_url_is_set(settings, tmp_path):
    local = settings.model_copy(update={"local_secrets_path": tmp_path / "s.json"})
    assert isinstance(secret_store(local), LocalSecrets)
    in_azure = settings.model_copy(update={"key_vault_url": "https://pc-eu.vault.azure.net/"})
    assert isinstance(secret_store(in_azure), KeyVaultSecrets)
