"""DPO notifications' rules without storage or network: which addresses a webhook may reach, the signature the
documentation tells receivers to check, the back-off schedule, what a dataset change says, the settings' guard."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import time
from datetime import UTC, datetime, timedelta

import pytest

from shared.core.settings import SettingsError, load_settings
from shared.dpo.guard import Refused, is_allowed, resolve, webhook_url
from shared.dpo.outbox import FIRST_RETRY, GIVE_UP_AFTER, MAX_RETRY, new_event, retry_delay
from shared.dpo.sender import signature
from shared.registry.datasets import declaration_changes, declared
from shared.registry.models import DatasetDoc
from tests.factories import ROOT, variant
from tests.unit.conftest import VALID

REFUSED = [
    "127.0.0.1",
    "127.255.0.9",
    "10.0.0.1",
    "10.200.3.4",
    "172.16.0.1",
    "172.31.255.254",
    "192.168.0.1",
    "169.254.169.254",
    "100.64.0.1",
    "0.0.0.0",  # noqa: S104  # an address to refuse, not to bind
    "192.0.2.1",
    "198.18.0.1",
    "240.0.0.1",
    "255.255.255.255",
    "224.0.0.251",
    "239.255.255.250",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "fd12:3456::1",
    "ff02::1",
    "ff0e::1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "2001:db8::1",
    "100::1",
    "64:ff9b::7f00:1",
    "64:ff9b::a00:1",
    "2002:7f00:1::1",
    "2002:a00:1::1",
    "2001:0:5db8:1:0:ffff:80ff:fffe",
]
ALLOWED = ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111", "::ffff:93.184.215.14", "64:ff9b::5db8:d70e"]


@pytest.mark.parametrize("address", REFUSED)
def test_non_public_addresses_are_refused(address):
    assert not is_allowed(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_are_allowed(address):
    assert is_allowed(ipaddress.ip_address(address))


def test_development_networks_open_only_what_they_name():
    dev = (ipaddress.ip_network("127.0.19.0/24"),)
    assert is_allowed(ipaddress.ip_address("127.0.19.1"), dev)
    assert is_allowed(ipaddress.ip_address("::ffff:127.0.19.1"), dev)
    assert not is_allowed(ipaddress.ip_address("127.0.0.1"), dev)
    assert not is_allowed(ipaddress.ip_address("::1"), dev)


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/",
        "ftp://example.com/",
        "https://u:p@example.com/",
        "https://example.com/#x",
        "https://exa mple.com/",
        "https://example.com\\x/",
        "https://0x7f000001/",
        "//example.com/",
        "example.com",
    ],
)
def test_only_plain_https_urls_are_taken(url):
    with pytest.raises(Refused) as refused:
        webhook_url(url)
    assert url not in str(refused.value)


def answers(*addresses: str):
    def resolver(host: str, port: int) -> list[str]:
        if not addresses:
            raise OSError("no such name")
        return list(addresses)

    return resolver


def test_a_name_is_refused_when_any_of_its_addresses_is_not_public():
    url = webhook_url("https://hooks.example/dpo")
    assert resolve(url, resolver=answers("93.184.215.14")).address == "93.184.215.14"
    for internal in ("127.0.0.1", "10.0.0.5", "::1", "::ffff:192.168.1.1", "fe80::1%eth0"):
        with pytest.raises(Refused):
            resolve(url, resolver=answers("93.184.215.14", internal))
    with pytest.raises(Refused):
        resolve(url, resolver=answers())
    with pytest.raises(Refused):
        resolve(url, resolver=answers(*["93.184.215.14"] * 33))


def test_a_literal_address_is_judged_without_any_lookup():
    def no_lookup(host: str, port: int) -> list[str]:
        raise AssertionError("a literal address needs no lookup")

    assert resolve(webhook_url("https://93.184.215.14:8443/x"), resolver=no_lookup).port == 8443
    for url in ("https://127.0.0.1/", "https://[::1]/", "https://[::ffff:7f00:1]/", "https://10.0.0.1/"):
        with pytest.raises(Refused):
            resolve(webhook_url(url), resolver=no_lookup)


def test_the_signature_is_the_documented_hmac_of_timestamp_dot_body():
    body = b'{"id":"evt_1","type":"webhook.test"}'
    expected = hmac.new(b"whsec_abc", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature("whsec_abc", 1700000000, body) == expected
    assert signature("whsec_abc", 1700000001, body) != expected


def test_back_off_doubles_to_a_cap_and_keeps_trying_for_a_day():
    delays = [retry_delay(n) for n in range(1, 30)]
    assert delays[:3] == [FIRST_RETRY, 2 * FIRST_RETRY, 4 * FIRST_RETRY]
    assert delays == sorted(delays) and max(delays) == MAX_RETRY
    elapsed, attempts = timedelta(0), 1
    while elapsed < GIVE_UP_AFTER:
        elapsed += retry_delay(attempts)
        attempts += 1
    assert 10 <= attempts <= 20
    assert timedelta(hours=24) <= GIVE_UP_AFTER


def test_an_event_body_is_the_same_bytes_on_every_attempt():
    now = datetime(2026, 11, 23, tzinfo=UTC)
    event = new_event("t-1", "eu", "dataset.deleted", {"dataset": "d-1"}, now)
    first = event.body()
    event.attempts, event.last_error = 3, "http_500"
    assert event.body() == first
    assert b"attempts" not in first


def doc(**changes) -> DatasetDoc:
    now = datetime(2026, 11, 23, tzinfo=UTC)
    return DatasetDoc.model_validate(
        {**variant(**changes), "tenant": "t-1", "id": "visits", "created_at": now, "updated_at": now}
    )


def test_a_change_names_retention_legal_basis_and_fields_only():
    before = doc()
    fields = [f for f in variant()["fields"] if f["name"] != "ip"] + [{"name": "title", "type": "string"}]
    fields[1] = {**fields[1], "max_length": 32}
    after = doc(retention_days=3, legal_basis="contract", fields=fields, purpose="Another purpose")
    assert declaration_changes(before, after) == {
        "retention_days": {"before": 14, "after": 3},
        "legal_basis": {"before": "consent", "after": "contract"},
        "fields": {"added": ["title"], "removed": ["ip"], "changed": ["visitor"]},
    }
    assert declaration_changes(before, doc(purpose="Another purpose")) == {}
    shown = str(declared(after))
    for contact in ("Contoso Ltd", "privacy@contoso.example", "Jane Roe", "dpo@contoso.example"):
        assert contact not in shown


@pytest.mark.parametrize(
    "azure",
    [
        {"PACKCLOUD_KEY_VAULT_URL": "https://kv.vault.azure.net"},
        {"PACKCLOUD_STORAGE_ACCOUNT_URL": "https://a.blob.core.windows.net", "PACKCLOUD_STORAGE_CONNECTION_STRING": ""},
    ],
)
def test_development_networks_are_refused_in_azure(monkeypatch, azure):
    for name, value in {**VALID, "PACKCLOUD_DPO_WEBHOOK_DEV_NETWORKS": "127.0.19.0/24", **azure}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match="PACKCLOUD_DPO_WEBHOOK_DEV_NETWORKS") as error:
        load_settings()
    assert "127.0.19" not in str(error.value)
    monkeypatch.delenv("PACKCLOUD_DPO_WEBHOOK_DEV_NETWORKS")
    assert load_settings().dpo_webhook_dev_networks == ()


def test_the_documented_verification_accepts_a_signed_event_and_refuses_a_changed_one():
    """The Python example of docs/dpo-notifications.md, run as written, against what the sender signs."""
    text = (ROOT / "docs" / "dpo-notifications.md").read_text()
    section = text[text.index("## Verifying the signature") :]
    example = section[
        section.index("```python\n") + len("```python\n") : section.index("```\n", section.index("```python"))
    ]
    scope: dict = {}
    exec(compile(example, "dpo-notifications.md", "exec"), scope)  # noqa: S102  # the documentation's own code
    event = new_event("t-1", "eu", "webhook.test", {"message": "test event"}, datetime.now(UTC))
    body, now = event.body(), int(time.time())
    headers = {"X-PackCloud-Timestamp": str(now), "X-PackCloud-Signature": signature("whsec_k", now, body)}
    assert scope["verified_event"]("whsec_k", headers, body)["id"] == event.id
    with pytest.raises(ValueError, match="bad signature"):
        scope["verified_event"]("whsec_k", headers, body.replace(b"test event", b"tost event"))
    with pytest.raises(ValueError, match="bad signature"):
        scope["verified_event"]("whsec_other", headers, body)
    old = now - 3600
    stale = {"X-PackCloud-Timestamp": str(old), "X-PackCloud-Signature": signature("whsec_k", old, body)}
    with pytest.raises(ValueError, match="too old"):
        scope["verified_event"]("whsec_k", stale, body)
