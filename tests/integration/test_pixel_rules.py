"""The pixel's recording rules, called in process against a real Azurite."""

from __future__ import annotations

import json
import re

import pytest

from shared.core.keys import signing_key_text
from shared.pixel.hits import Hit, record_hit, render_snippet, sign_query
from shared.registry.models import Dataset, TenantIn
from shared.storage.blobs import RECORDS
from tests.factories import BROWSER_UA, MASTER_KEY, all_blobs, variant

PAGE = "https://www.contoso.example/pricing"
SITE_HEADERS = {
    "user-agent": BROWSER_UA,
    "referer": "https://www.contoso.example/",
    "x-forwarded-for": "203.0.113.77:51000",
}


@pytest.fixture
def tenant(services, tenant_id):
    services.registry.put_tenant(tenant_id, TenantIn())
    services.registry.put_dataset(tenant_id, "pricing", Dataset.model_validate(variant()))
    services.registry.put_dataset(
        tenant_id,
        "mail-opens",
        Dataset.model_validate(
            variant(
                require_signature=True,
                allowed_origins=[],
                subject_field="contact",
                fields=[
                    {"name": "contact", "type": "string", "personal": True},
                    {"name": "campaign", "type": "string", "personal": False},
                ],
            )
        ),
    )
    return tenant_id


def hit(tenant, dataset="pricing", query=None, headers=None, now=1_800_000_000):
    return Hit(
        tenant, dataset, query if query is not None else {"page_url": PAGE}, {**SITE_HEADERS, **(headers or {})}, now
    )


def stored(azurite, tenant):
    return [json.loads(body) for body in all_blobs(azurite, RECORDS, f"{tenant}/").values()]


def test_a_page_view_is_recorded_with_declared_fields(azurite, services, settings, tenant):
    query = {"page_url": PAGE, "visitor": "abc", "email": "jane@example.com", "_": "123"}
    assert record_hit(services.capture, settings, hit(tenant, query=query))
    (record,) = stored(azurite, tenant)
    assert record["fields"] == {"page_url": PAGE, "visitor": "abc", "ip": "203.0.113.0"}
    assert record["dropped_fields"] == 1  # email; the cache buster `_` is not data


def test_ip_comes_from_the_request_never_from_the_query(azurite, services, settings, tenant):
    assert record_hit(services.capture, settings, hit(tenant, query={"page_url": PAGE, "ip": "198.51.100.1"}))
    (record,) = stored(azurite, tenant)
    assert record["fields"]["ip"] == "203.0.113.0"


def test_page_url_falls_back_to_the_referer(azurite, services, settings, tenant):
    assert record_hit(services.capture, settings, hit(tenant, query={}, headers={"referer": PAGE}))
    assert stored(azurite, tenant)[0]["fields"]["page_url"] == PAGE


@pytest.mark.parametrize(
    "headers",
    [
        {"sec-gpc": "1"},
        {"dnt": "1"},
        {"user-agent": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"},
        {"user-agent": ""},
        {"referer": "https://evil.example/"},
        {"origin": "https://evil.example"},
    ],
)
def test_refused_hits_record_nothing(azurite, services, settings, tenant, headers):
    assert not record_hit(services.capture, settings, hit(tenant, headers=headers))
    assert stored(azurite, tenant) == []


def test_page_url_on_a_foreign_site_records_nothing(azurite, services, settings, tenant):
    assert not record_hit(services.capture, settings, hit(tenant, query={"page_url": "https://evil.example/x"}))
    assert stored(azurite, tenant) == []


@pytest.mark.parametrize(
    "headers",
    [
        {"referer": ""},  # what another site's page makes a browser send with Referrer-Policy: no-referrer
        {"referer": "", "origin": "null"},  # an opaque origin: a sandboxed frame on any site
        {"referer": "https://www.contoso.example.evil.example/"},
    ],
)
def test_an_unsigned_hit_needs_the_browser_to_name_an_allowed_site(azurite, services, settings, tenant, headers):
    # The page_url is on an allowed site, but it is only what the sending page claims.
    assert not record_hit(services.capture, settings, hit(tenant, headers=headers))
    assert stored(azurite, tenant) == []


@pytest.mark.parametrize(
    "headers", [{"referer": "https://www.contoso.example/"}, {"referer": "", "origin": "https://www.contoso.example"}]
)
def test_an_origin_or_referer_on_an_allowed_site_records(azurite, services, settings, tenant, headers):
    assert record_hit(services.capture, settings, hit(tenant, headers=headers))
    assert [record["fields"]["page_url"] for record in stored(azurite, tenant)] == [PAGE]


def test_a_signed_link_records_without_origin_or_referer(azurite, services, settings, tenant):
    key = signing_key_text(MASTER_KEY, tenant, services.registry.get_tenant(tenant).generation, 1)
    query = {"page_url": PAGE, "visitor": "v-9"}
    signed = {**query, "sig": sign_query(key, tenant, "pricing", query)}
    assert record_hit(services.capture, settings, hit(tenant, query=signed, headers={"referer": ""}))
    assert [record["fields"]["visitor"] for record in stored(azurite, tenant)] == ["v-9"]


@pytest.fixture
def with_referrer(services, tenant):
    """A pixel dataset that declares the referrer too, as a string, and an e-mail-like URL field."""
    fields = [
        {"name": "page_url", "type": "url", "personal": False},
        {"name": "referrer", "type": "string", "personal": False},
        {"name": "landing", "type": "url", "personal": False},
    ]
    for dataset, keep in (("cut", False), ("kept", True)):
        declaration = variant(subject_field=None, fields=fields, keep_url_query=keep)
        services.registry.put_dataset(tenant, dataset, Dataset.model_validate(declaration))
    return tenant


QUERIED = {
    "page_url": PAGE + "?email=jane%40example.com#top",
    "referrer": "https://search.example/?q=jane+roe",
    "landing": "https://www.contoso.example/l#token=abc",
}


def test_url_queries_and_fragments_are_cut_by_default(azurite, services, settings, with_referrer):
    assert record_hit(services.capture, settings, hit(with_referrer, "cut", QUERIED))
    (record,) = stored(azurite, with_referrer)
    assert record["fields"] == {
        "page_url": PAGE,
        "referrer": "https://search.example/",
        "landing": "https://www.contoso.example/l",
    }


def test_the_referer_fallback_loses_its_query_too(azurite, services, settings, tenant):
    assert record_hit(services.capture, settings, hit(tenant, query={}, headers={"referer": PAGE + "?a=1#b"}))
    assert stored(azurite, tenant)[0]["fields"]["page_url"] == PAGE


def test_a_dataset_may_keep_url_queries(azurite, services, settings, with_referrer):
    assert record_hit(services.capture, settings, hit(with_referrer, "kept", QUERIED))
    (record,) = stored(azurite, with_referrer)
    assert record["fields"] == QUERIED


@pytest.mark.parametrize(("tenant_id_", "dataset"), [("unknown-tenant", "pricing"), (None, "nope"), ("../x", "p")])
def test_unknown_or_bad_ids_leave_no_trace(azurite, services, settings, tenant, tenant_id_, dataset):
    assert not record_hit(services.capture, settings, hit(tenant_id_ or tenant, dataset))
    assert stored(azurite, tenant) == []


def test_signed_mail_open_is_recorded_and_forgeries_are_not(azurite, services, settings, tenant):
    key = signing_key_text(MASTER_KEY, tenant, services.registry.get_tenant(tenant).generation, 1)
    query = {"contact": "c-42", "campaign": "spring"}
    signed = {**query, "sig": sign_query(key, tenant, "mail-opens", query)}
    mail_client = {"referer": "", "user-agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"}
    assert record_hit(services.capture, settings, hit(tenant, "mail-opens", signed, mail_client))
    unsigned = hit(tenant, "mail-opens", query, mail_client)
    forged = hit(tenant, "mail-opens", {**signed, "contact": "c-43"}, mail_client)
    other_key = hit(
        tenant, "mail-opens", {**query, "sig": sign_query("0" * 64, tenant, "mail-opens", query)}, mail_client
    )
    for attempt in (unsigned, forged, other_key):
        assert not record_hit(services.capture, settings, attempt)
    records = stored(azurite, tenant)
    assert [r["fields"] for r in records] == [{"contact": "c-42", "campaign": "spring"}]


def test_expired_signature_is_ignored(services, settings, tenant):
    key = signing_key_text(MASTER_KEY, tenant, services.registry.get_tenant(tenant).generation, 1)
    query = {"contact": "c-1", "exp": "1700000000"}
    signed = {**query, "sig": sign_query(key, tenant, "mail-opens", query)}
    assert not record_hit(services.capture, settings, hit(tenant, "mail-opens", signed, {"referer": ""}))


def snippet_config(script):
    return json.loads(re.search(r"var config = (\{.*?\});", script).group(1))


def test_snippet_is_configured_from_the_declaration(services, tenant):
    doc = services.registry.get_dataset(tenant, "pricing")
    config = snippet_config(render_snippet(doc, "https://x.example/api/px/t1/pricing"))
    assert config == {
        "enabled": True,
        "endpoint": "https://x.example/api/px/t1/pricing",
        "send": ["page_url", "visitor"],
        "visitorDays": 14,
        "keepUrlQuery": False,
        "events": [],
        "notice": "https://x.example/api/notice/t1/pricing",
    }
    no_visitor = doc.model_copy(update={"fields": tuple(f for f in doc.fields if f.name != "visitor")})
    assert snippet_config(render_snippet(no_visitor, "https://x.example/p"))["send"] == ["page_url"]
    keeping = doc.model_copy(update={"keep_url_query": True})
    assert snippet_config(render_snippet(keeping, "https://x.example/p"))["keepUrlQuery"] is True
    assert snippet_config(render_snippet(None, "https://x.example/p")) == {"enabled": False}
    hostile = render_snippet(doc, "https://x.example/</script><script>alert(1)//")
    assert "</script>" not in re.search(r"var config = (\{.*?\});", hostile).group(1)


EVENT_DATASET = variant(
    fields=[
        {"name": "page_url", "type": "url", "required": True, "personal": False, "max_length": 2048},
        {"name": "event", "type": "string", "personal": False, "max_length": 40},
        {"name": "plan", "type": "choice", "options": ["free", "pro"], "personal": False},
        {"name": "url", "type": "url", "personal": False},
    ],
    subject_field=None,
    events=[{"name": "signup", "properties": ["plan"]}, {"name": "outbound", "properties": ["url"]}],
)


@pytest.fixture
def events_tenant(services, tenant_id):
    services.registry.put_tenant(tenant_id, TenantIn())
    services.registry.put_dataset(tenant_id, "site", Dataset.model_validate(EVENT_DATASET))
    return tenant_id


def test_a_declared_event_is_stored_with_its_declared_properties_and_the_others_counted(
    services, settings, azurite, events_tenant
):
    query = {
        "page_url": PAGE + "?step=2",
        "event": "signup",
        "p.plan": "pro",
        "p.colour": "crimson-value",
        "p.url": PAGE,
    }
    assert record_hit(services.capture, settings, hit(events_tenant, "site", query))
    (record,) = stored(azurite, events_tenant)
    assert record["fields"] == {"page_url": PAGE, "event": "signup", "plan": "pro"}  # page URL rules as for page views
    assert record["dropped_fields"] == 2
    assert "crimson-value" not in json.dumps(record)


def test_an_undeclared_event_or_one_from_another_site_stores_nothing(services, settings, azurite, events_tenant):
    assert not record_hit(services.capture, settings, hit(events_tenant, "site", {"page_url": PAGE, "event": "buy"}))
    foreign = {"page_url": "https://evil.example/", "event": "signup", "p.plan": "pro"}
    assert not record_hit(services.capture, settings, hit(events_tenant, "site", foreign))
    gpc = {"page_url": PAGE, "event": "signup"}
    assert not record_hit(services.capture, settings, hit(events_tenant, "site", gpc, {"sec-gpc": "1"}))
    assert stored(azurite, events_tenant) == []


def test_an_event_property_on_a_page_view_is_dropped(services, settings, azurite, events_tenant):
    assert record_hit(services.capture, settings, hit(events_tenant, "site", {"page_url": PAGE, "plan": "pro"}))
    (record,) = stored(azurite, events_tenant)
    assert record["fields"] == {"page_url": PAGE} and record["dropped_fields"] == 1


def test_an_outbound_link_loses_its_query_as_every_url_field(services, settings, azurite, events_tenant):
    query = {"page_url": PAGE, "event": "outbound", "p.url": "https://other.example/a?token=secret#x"}
    assert record_hit(services.capture, settings, hit(events_tenant, "site", query))
    (record,) = stored(azurite, events_tenant)
    assert record["fields"]["url"] == "https://other.example/a" and record["fields"]["event"] == "outbound"
