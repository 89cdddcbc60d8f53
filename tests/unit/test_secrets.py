"""The secret store without Key Vault: the local 0600 file, secret names, and which store the settings choose.
Key Vault through the real SDK against a local HTTPS fake is in tests/integration/test_secrets.py."""

from __future__ import annotations

import stat

import pytest

from shared.storage.secrets import (
    KeyVaultSecrets,
    LocalSecrets,
    region_key_secret_name,
    secret_store,
    tenant_secret_name,
)
from tests.factories import SECRET_VALUE as VALUE


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
