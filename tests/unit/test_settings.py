import json
import os

import pytest

from shared.core.settings import SettingsError, load_settings, setting_names
from tests.factories import ROOT


def test_valid_settings_load(env):
    settings = load_settings()
    assert settings.region == "eu"
    assert settings.role == {"regional"}


@pytest.mark.parametrize(
    ("name", "value", "named"),
    [
        ("PACKCLOUD_REGION", None, "PACKCLOUD_REGION"),
        ("PACKCLOUD_REGION", "mars", "PACKCLOUD_REGION"),
        ("PACKCLOUD_MASTER_KEY", "short", "PACKCLOUD_MASTER_KEY"),
        ("PACKCLOUD_MASTER_KEY", "@Microsoft.KeyVault(VaultName=pc-eu;SecretName=packcloud-master-key)", "Key Vault"),
        ("PACKCLOUD_MASTER_KEY", None, "PACKCLOUD_MASTER_KEY"),
        ("PACKCLOUD_REGISTRY_CACHE_TTL_SECONDS", "-1", "PACKCLOUD_REGISTRY_CACHE_TTL_SECONDS"),
        ("PACKCLOUD_ROLE", "regional,janitor", "PACKCLOUD_ROLE"),
        ("PACKCLOUD_GEO_CITY_DB_PATH", "/nonexistent/GeoCity.mmdb", "PACKCLOUD_GEO_CITY_DB_PATH"),
        ("PACKCLOUD_TRAVEL_SPEED_KMH", "5", "PACKCLOUD_TRAVEL_SPEED_KMH"),
        ("PACKCLOUD_STORAGE_CONNECTION_STRING", None, "PACKCLOUD_STORAGE_ACCOUNT_URL"),
        ("PACKCLOUD_GRAPH_URL", "http://graph.example.com/v1.0", "PACKCLOUD_GRAPH_URL"),
        ("PACKCLOUD_GRAPH_URL", "https://graph.example.com\\@evil.example/v1.0", "PACKCLOUD_GRAPH_URL"),
        ("PACKCLOUD_GRAPH_URL", "https://graph.microsoft.com/v1.0?x=1", "PACKCLOUD_GRAPH_URL"),
    ],
)
def test_missing_or_invalid_setting_is_named(env, name, value, named):
    if value is None:
        env.delenv(name)
    else:
        env.setenv(name, value)
    with pytest.raises(SettingsError, match=named) as caught:
        load_settings()
    if value:
        assert value not in str(caught.value)


def test_graph_url_defaults_to_the_public_cloud_and_takes_a_loopback_fake(env):
    assert load_settings().graph_url == "https://graph.microsoft.com/v1.0"
    env.setenv("PACKCLOUD_GRAPH_URL", "http://127.0.0.1:8443/v1.0/")
    assert load_settings().graph_url == "http://127.0.0.1:8443/v1.0"


def test_both_storage_settings_are_refused(env):
    env.setenv("PACKCLOUD_STORAGE_ACCOUNT_URL", "https://example.blob.core.windows.net")
    with pytest.raises(SettingsError, match="exactly one"):
        load_settings()


def test_sample_settings_name_every_setting_and_load():
    sample = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    packcloud = {name for name in sample if name.startswith("PACKCLOUD_")}
    assert packcloud == setting_names() - {"PACKCLOUD_STORAGE_ACCOUNT_URL", "PACKCLOUD_MANAGED_IDENTITY_CLIENT_ID"}
    devhost = {name for name in sample if name.startswith("DEVHOST_")}
    assert devhost == {"DEVHOST_FUNCTION_KEY", "DEVHOST_MASTER_KEY"}


def test_sample_values_form_valid_settings(monkeypatch):
    sample = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    for name in list(os.environ):
        if name.startswith("PACKCLOUD_"):
            monkeypatch.delenv(name)
    for name, value in sample.items():
        if name.startswith("PACKCLOUD_"):
            monkeypatch.setenv(name, value)
    assert load_settings().region == sample["PACKCLOUD_REGION"]
