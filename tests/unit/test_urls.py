"""Hostile URLs: every place that trusts a host reads it as a browser does, or refuses the URL.

The browser's reading is ada (`ada-url`), a WHATWG URL parser: whatever PackCloud accepts, ada reads on the
same host, port and origin. The tables hold the shapes on which Python's `urlsplit` and a browser disagree
(backslash, user info, percent-escapes, tabs, Unicode, numeric IPv4 forms, trailing dots, extra slashes).
"""

from __future__ import annotations

import json

import ada_url
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.core.settings import DYNAMICS_HOST_PATTERNS, SettingsError, load_settings
from shared.core.urls import parse_web_url
from shared.registration.engine import dynamics_url
from shared.registry.models import Dataset, origin_of_url
from tests.factories import EXAMPLE, FORM

# Each is refused as an organisation URL. The comment says what a browser reads and what urlsplit read.
HOSTILE_ORGANISATION_URLS = [
    "https://evil.example\\.crm.dynamics.com/",  # browser: evil.example; urlsplit: the whole, a Dynamics host
    "https://evil.example\\@contoso.crm.dynamics.com/",  # browser: evil.example; urlsplit: contoso.crm...
    "https:\\\\evil.example\\.crm.dynamics.com/",
    "https://evil.example%5c.crm.dynamics.com/",  # an escaped backslash in the host
    "https://evil.example%2f.crm.dynamics.com/",
    "https://evil%2eexample.crm4.dynamics.com/",  # a browser decodes %2e to a dot
    "https://evil.example%00.crm.dynamics.com/",
    "https://evil.example .crm.dynamics.com/",
    "https://evil.example\t.crm.dynamics.com/",  # tabs and newlines vanish in a browser
    "https://evil.example\n.crm.dynamics.com/",
    " https://contoso.crm.dynamics.com/\x00",
    "https://contoso.crm.dynamics.com@evil.example/",
    "https://user:pass@contoso.crm.dynamics.com/",
    "https://@contoso.crm.dynamics.com/",
    "https://contoso.crm.dynamics.com./",  # trailing dot
    "https://contoso..crm.dynamics.com/",
    "https://-contoso.crm.dynamics.com/",
    "https://contoso-.crm.dynamics.com/",
    "https://con_toso.crm.dynamics.com/",
    "https://con;toso.crm.dynamics.com/",
    "https://\uff43\uff4f\uff4e\uff54\uff4f\uff53\uff4f.crm.dynamics.com/",  # fullwidth; IDNA maps them
    "https://contoso\u3002crm.dynamics.com/",  # an ideographic full stop, which IDNA maps to a dot
    "https://contoso\u200b.crm.dynamics.com/",  # a zero-width space, which IDNA drops
    "https://xn--.crm.dynamics.com/",  # invalid punycode
    "https://xn--zz-zzzzzz.crm.dynamics.com/",
    "https:/contoso.crm.dynamics.com/",  # one slash: a browser still finds the host
    "https:///contoso.crm.dynamics.com/",
    "https:contoso.crm.dynamics.com/",
    "https://contoso.crm.dynamics.com:/",
    "https://contoso.crm.dynamics.com:99999/",
    "javascript://contoso.crm.dynamics.com/%0aalert(1)",
    "https://0x7f.1/",
    "https://a.b.c.crm.dynamics.com" + "x" * 300 + "/",
]
# Read alike by both, and still not an organisation's Dynamics 365 URL.
NOT_DYNAMICS = [
    "https://contoso.crm.dynamics.com:8443/",
    "http://contoso.crm.dynamics.com/",
    "https://contoso.crm.dynamics.com.evil.example/",
    "https://[::1]/",
]

# Each is refused wherever an origin is compared (allowed_origins, Origin and Referer, page_url, redirects).
HOSTILE_SITE_URLS = [
    "https://evil.example\\@www.contoso.example/",  # browser: evil.example; urlsplit: www.contoso.example
    "https://evil.example\\.www.contoso.example/",
    "https://www.contoso.example\\@evil.example/",
    "https://evil.example\\\\www.contoso.example/",
    "https:\\\\www.contoso.example/",
    "https://www.contoso.example@evil.example/",
    "https://www.contoso%2eexample/",
    "https://www.contoso.example./",
    "https://www.contoso.example\t/",
    "https://www.contoso.exam\nple/",
    "https://\uff57\uff57\uff57.contoso.example/",
    "https://0x7f.0.0.1/",  # a browser reads 127.0.0.1
    "https://2130706433/",
    "https://017.0.0.1/",
    "https://127.1/",
    "https://1.2.3.4.5/",
    "https:///www.contoso.example/",
    "https://[fe80::1%25eth0]/",
    "https://[::1/",
    "http://www.contoso.example/",
    "ftp://www.contoso.example/",
]


@pytest.mark.parametrize("url", HOSTILE_ORGANISATION_URLS + NOT_DYNAMICS)
def test_hostile_organisation_urls_are_refused(url):
    with pytest.raises(ValueError, match=r"^must") as refused:
        dynamics_url(url, DYNAMICS_HOST_PATTERNS)
    assert "evil" not in str(refused.value)  # the reason never quotes the URL


def test_organisation_urls_are_normalised_to_the_browsers_host():
    for url in ("https://contoso.crm4.dynamics.com/", "HTTPS://Contoso.CRM4.Dynamics.com:443/main.aspx?x=1#y"):
        assert dynamics_url(url, DYNAMICS_HOST_PATTERNS) == "https://contoso.crm4.dynamics.com/"
        assert ada_url.URL(url).hostname == "contoso.crm4.dynamics.com"


@pytest.mark.parametrize("url", HOSTILE_ORGANISATION_URLS + HOSTILE_SITE_URLS[:-2])
def test_the_parser_refuses_every_url_a_browser_could_read_otherwise(url):
    with pytest.raises(ValueError, match=r"^(may|must|has)") as refused:
        parse_web_url(url)
    assert "evil" not in str(refused.value) and "contoso" not in str(refused.value)
    assert origin_of_url(url) is None


@pytest.mark.parametrize("url", HOSTILE_SITE_URLS)
def test_hostile_origins_are_refused_in_declarations_and_in_requests(url):
    with pytest.raises(ValidationError):
        Dataset.model_validate({**EXAMPLE, "allowed_origins": [url]})
    form = {**FORM, "redirect_url": url}
    with pytest.raises(ValidationError):
        Dataset.model_validate(form)
    assert origin_of_url(url) is None  # as an Origin, Referer or page_url: matches no allowed origin


def test_origins_are_compared_as_a_browser_sends_them():
    assert origin_of_url("https://WWW.Contoso.Example:443/pricing?x=1") == "https://www.contoso.example"
    assert origin_of_url("http://127.0.0.1:8080/") == "http://127.0.0.1:8080"
    assert origin_of_url("http://[0:0::1]:8080/") == "http://[::1]:8080"
    assert ada_url.URL("http://[0:0::1]:8080/").origin == "http://[::1]:8080"
    assert origin_of_url("http://evil.example/") is None  # http only for this machine
    assert origin_of_url("null") is None and origin_of_url("") is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PACKCLOUD_REGION_URLS", json.dumps({"eu": "https://evil.example\\@packcloud-eu.example.net/api"})),
        ("PACKCLOUD_REGION_URLS", json.dumps({"eu": "https://user:secret@packcloud-eu.example.net/api"})),
        ("PACKCLOUD_REGION_URLS", json.dumps({"eu": "http://packcloud-eu.example.net/api"})),
        ("PACKCLOUD_REGION_URLS", json.dumps({"eu": "https://packcloud-eu.example.net/api?code=x"})),
        ("PACKCLOUD_KEY_VAULT_URL", "https://evil.example\\.vault.azure.net/"),
        ("PACKCLOUD_KEY_VAULT_URL", "http://pc-eu.vault.azure.net/"),
        ("PACKCLOUD_DYNAMICS_HOST_PATTERNS", "*"),
        ("PACKCLOUD_DYNAMICS_HOST_PATTERNS", "*.com"),
        ("PACKCLOUD_DYNAMICS_HOST_PATTERNS", "*.crm[0-9].dynamics.com"),
    ],
)
def test_settings_refuse_urls_and_patterns_a_key_could_leak_through(env, name, value):
    env.setenv(name, value)
    with pytest.raises(SettingsError, match=name) as refused:
        load_settings()
    assert len(value) < 6 or value not in str(refused.value)
    assert "evil" not in str(refused.value)


def test_settings_keep_good_service_urls(env):
    env.setenv(
        "PACKCLOUD_REGION_URLS",
        json.dumps({"eu": "https://packcloud-eu.example.net/api", "us": "http://127.0.0.1:7071/api"}),
    )
    env.setenv("PACKCLOUD_KEY_VAULT_URL", "https://pc-eu.vault.azure.net/")
    loaded = load_settings()
    assert str(loaded.region_urls["eu"]) == "https://packcloud-eu.example.net/api"
    assert str(loaded.key_vault_url) == "https://pc-eu.vault.azure.net/"


_SCHEMES = st.sampled_from(["https://", "http://", "HTTPS://", "https:", "https:/", "https:///", "https:\\\\"])
_HOST_PIECES = st.sampled_from(
    ["a", "B", "crm", ".", "a.", "b.", "c-d.", ".", "..", "-", "0", "1", "127", "0x7f", "0X", "xn--",
     "xn--bcher-kva", "evil", "[::1]", "[0:0::1]", ":", ":443", ":80", ":08080", "%2e", "%5c", "\\", "@",
     "\t", " ", "\uff45", "\u3002", "\u200b", "_"]
)  # fmt: skip
_RESTS = st.sampled_from(["", "/", "/p", "?q", "#f", "\\x", "/@x", "?a\\b", "/..%2f"])
_URLS = st.tuples(_SCHEMES, st.lists(_HOST_PIECES, min_size=1, max_size=5).map("".join), _RESTS).map("".join)


@settings(max_examples=3000, deadline=None, derandomize=True)
@given(_URLS)
def test_whatever_is_accepted_a_browser_reads_on_the_same_host_and_port(text):
    """Generated URLs from the pieces that confuse parsers: an accepted one means the same to ada."""
    try:
        ours = parse_web_url(text)
    except ValueError:
        return
    browser = ada_url.URL(text)
    assert browser.hostname == ours.host.strip("[]") or browser.hostname == ours.host
    assert browser.origin == ours.origin
    assert browser.protocol == ours.scheme + ":"
