"""Tracked links on a real Azurite with a settable clock: the stored link and its tags, who counts as a visit,
expiry, data-subject requests, the purge, dataset deletion, and a redirect that survives a failed write. The
rules alone are in tests/unit/test_link_rules.py; over HTTP in test_http_links.py."""

from __future__ import annotations

import json
from datetime import timedelta

import azure.functions as func
import pytest

from shared.capture.store import CaptureStore, Target
from shared.core.errors import StorageUnavailable, Unprocessable
from shared.links.tracked import Link, LinkRequest, Links, Visit
from shared.storage.blobs import Storage
from tests.factories import ASSETS_ORIGIN, BROWSER_UA, CONTACT, LINKS, UNREACHABLE_STORAGE, all_blobs, settings_from
from tests.factories import settings_values as values_of

BROCHURE = f"{ASSETS_ORIGIN}/brochure.pdf?token=abc#page=2"
PERSON = {"user-agent": BROWSER_UA, "x-forwarded-for": "203.0.113.77", "referer": "https://mail.example/inbox?u=9"}


@pytest.fixture
def assets(services, tenant_id):
    from shared.registry.models import Dataset, TenantIn

    services.registry.put_tenant(tenant_id, TenantIn(region="eu"))
    services.registry.put_dataset(tenant_id, "assets", Dataset.model_validate(LINKS))
    return services.capture.resolve(tenant_id, "assets", "link")


def make(services, target: Target, **body) -> Link:
    return services.links.create(target, LinkRequest.model_validate({"target_url": BROCHURE, **body}))


def stored(azurite, tenant, container):
    return {name: json.loads(body) for name, body in all_blobs(azurite, container, f"{tenant}/").items()}


def tags(azurite, container, name):
    from azure.storage.blob import BlobServiceClient

    client = BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client(container)
    return client.get_blob_client(name).get_blob_tags()


def test_a_contact_link_is_stored_tagged_and_expires_with_the_retention(services, assets, azurite, clock):
    link = make(services, assets, contact_id=CONTACT)
    assert link.expires_at == clock.now() + timedelta(days=LINKS["retention_days"])
    ((name, body),) = stored(azurite, assets.tenant.id, "state").items()
    assert name == f"{assets.tenant.id}/links/{link.id}.json" and CONTACT not in name
    assert body["target_url"] == BROCHURE and body["contact_id"] == CONTACT and body["dataset"] == "assets"
    tagged = tags(azurite, "state", name)
    assert tagged["t"] == assets.tenant.id and tagged["d"] == "assets" and tagged["exp"] == "20261203T100000Z"
    assert len(tagged["sub"]) >= 32 and CONTACT not in tagged.values()


def test_a_link_without_a_contact_is_not_personal_and_lives_30_days_at_most(services, assets, azurite, clock):
    link = make(services, assets, expires_at=(clock.now() + timedelta(days=90)).isoformat())
    assert link.personal is False and link.expires_at == clock.now() + timedelta(days=30)
    assert "sub" not in tags(azurite, "state", f"{assets.tenant.id}/links/{link.id}.json")
    shorter = make(services, assets, expires_at=(clock.now() + timedelta(hours=2)).isoformat())
    assert shorter.expires_at == clock.now() + timedelta(hours=2)


def test_an_expiry_in_the_past_or_a_foreign_target_is_refused_and_nothing_is_stored(services, assets, azurite, clock):
    with pytest.raises(Unprocessable):
        make(services, assets, expires_at=(clock.now() - timedelta(seconds=1)).isoformat())
    with pytest.raises(Unprocessable):
        make(services, assets, target_url="https://evil.example/")
    assert stored(azurite, assets.tenant.id, "state") == {}


def test_a_visit_is_recorded_with_declared_fields_only(services, assets, azurite, clock):
    link = make(services, assets, contact_id=CONTACT)
    opened = services.links.open(assets.tenant.id, link.id)
    assert opened is not None and opened.link.target_url == BROCHURE
    assert services.links.record_visit(opened, Visit(PERSON)) is True
    (record,) = stored(azurite, assets.tenant.id, "records").values()
    assert record["fields"] == {
        "link_id": link.id,
        "contact_id": CONTACT,
        "visited_at": "2026-11-23T10:00:00Z",
        "target_url": f"{ASSETS_ORIGIN}/brochure.pdf",  # the asset's query and fragment stay out
        "referrer": "https://mail.example/inbox",
        "ip": "203.0.113.0",
        "user_agent": BROWSER_UA,
    }


@pytest.mark.parametrize(
    "headers",
    [
        {"sec-gpc": "1"},
        {"dnt": "1"},
        {"user-agent": "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"},
        {"user-agent": "facebookexternalhit/1.1"},
        {"user-agent": ""},
        {"sec-purpose": "prefetch;prerender"},
        {"purpose": "prefetch"},
    ],
)
def test_objections_bots_previewers_and_prefetches_are_not_counted(services, assets, azurite, headers):
    link = make(services, assets, contact_id=CONTACT)
    opened = services.links.open(assets.tenant.id, link.id)
    assert services.links.record_visit(opened, Visit({**PERSON, **headers})) is False
    assert stored(azurite, assets.tenant.id, "records") == {}


def test_a_dataset_that_requires_what_a_visit_lacks_records_nothing_and_requires_the_contact(services, tenant_id):
    from shared.registry.models import Dataset, TenantIn

    fields = [
        {"name": "contact_id", "type": "string", "required": True},
        {"name": "referrer", "type": "url", "required": True},
    ]
    services.registry.put_tenant(tenant_id, TenantIn(region="eu"))
    services.registry.put_dataset(tenant_id, "strict", Dataset.model_validate({**LINKS, "fields": fields}))
    target = services.capture.resolve(tenant_id, "strict", "link")
    with pytest.raises(Unprocessable) as refused:
        make(services, target)
    assert refused.value.body()["errors"] == [{"field": "contact_id", "reason": "is required by the dataset"}]
    opened = services.links.open(tenant_id, make(services, target, contact_id=CONTACT).id)
    assert services.links.record_visit(opened, Visit({"user-agent": BROWSER_UA})) is False  # no referrer
    assert services.links.record_visit(opened, Visit(PERSON)) is True


def test_unknown_expired_and_malformed_links_do_not_open(services, assets, clock):
    link = make(services, assets, contact_id=CONTACT)
    tenant = assets.tenant.id
    wrong = [(tenant, "A" * 24), (tenant, link.id + "/"), ("Bad_Tenant", link.id), ("nobody", link.id)]
    assert [services.links.open(tenant_id, link_id) for tenant_id, link_id in wrong] == [None] * 4
    clock.advance(timedelta(days=LINKS["retention_days"]))
    assert services.links.open(tenant, link.id) is None


def test_a_lowered_retention_closes_a_contacts_link_at_once(services, assets, clock):
    from shared.registry.models import Dataset

    link = make(services, assets, contact_id=CONTACT)
    clock.advance(timedelta(days=3))
    services.registry.put_dataset(assets.tenant.id, "assets", Dataset.model_validate({**LINKS, "retention_days": 2}))
    assert services.links.open(assets.tenant.id, link.id) is None


def test_a_deleted_dataset_takes_its_links_and_a_recreated_one_does_not_inherit_them(services, assets, azurite):
    from shared.registry.models import Dataset

    link = make(services, assets, contact_id=CONTACT)
    tenant = assets.tenant.id
    assert services.registry.delete_dataset(tenant, "assets")
    assert stored(azurite, tenant, "state") == {}
    services.registry.put_dataset(tenant, "assets", Dataset.model_validate(LINKS))
    assert services.links.open(tenant, link.id) is None


def test_export_and_erasure_find_the_contacts_links_and_visits(services, assets, azurite):
    tenant = assets.tenant.id
    mine = make(services, assets, contact_id=CONTACT)
    services.links.record_visit(services.links.open(tenant, mine.id), Visit(PERSON))
    other = make(services, assets, contact_id="someone-else")
    anonymous = make(services, assets)
    requests = services.subject_requests()
    exported = requests.export(tenant, CONTACT)
    entry = exported["datasets"]["assets"]
    assert [item["kind"] for item in entry["state"]] == ["tracked_link"]
    assert entry["state"][0]["content"]["id"] == mine.id
    assert [record["fields"]["link_id"] for record in entry["records"]] == [mine.id]
    erased = requests.erase(tenant, CONTACT)
    assert (erased.records, erased.state) == (1, 1)
    assert f"{tenant}/links/{mine.id}.json" not in stored(azurite, tenant, "state")
    # Another instance reads storage; this one has the link cached until it forgets the tenant's links, as the
    # erasure route makes it do.
    elsewhere = Links(services.capture, services.storage, services.registry, services.settings, services.clock)
    assert elsewhere.open(tenant, mine.id) is None
    assert services.links.open(tenant, mine.id) is not None
    services.links.forget(tenant)
    assert services.links.open(tenant, mine.id) is None
    assert {services.links.open(tenant, link.id) is not None for link in (other, anonymous)} == {True}


def test_a_followed_link_costs_one_storage_request_the_visit(services, assets):
    link = make(services, assets, contact_id=CONTACT)
    services.links.open(assets.tenant.id, link.id)
    before = services.storage.transport.sent
    for _ in range(5):
        assert services.links.record_visit(services.links.open(assets.tenant.id, link.id), Visit(PERSON))
    assert services.storage.transport.sent - before == 5


def test_visits_are_delivered_through_the_sync_feed_and_deleted_on_acknowledgement(services, assets, azurite, clock):
    from shared.lifecycle.generations import Generations

    link = make(services, assets, contact_id=CONTACT)
    services.links.record_visit(services.links.open(assets.tenant.id, link.id), Visit(PERSON))
    clock.advance(timedelta(minutes=1))  # past the feed's settle time
    generations = Generations.read(services.registry, assets.tenant.id)
    (record,) = services.delivery.page(assets.tenant.id, "assets", None, 10, generations).records
    assert record["fields"]["link_id"] == link.id and record["fields"]["contact_id"] == CONTACT
    assert services.delivery.acknowledge(assets.tenant.id, "assets", [record["id"]]) == (1, 0)
    assert stored(azurite, assets.tenant.id, "records") == {}
    assert services.links.open(assets.tenant.id, link.id) is not None  # the link stays until it expires


def test_the_purge_deletes_expired_links(services, assets, azurite, clock):
    make(services, assets, contact_id=CONTACT)
    kept = make(services, assets, expires_at=(clock.now() + timedelta(days=20)).isoformat())
    clock.advance(timedelta(days=LINKS["retention_days"], minutes=1))
    services.purger().run()
    assert list(stored(azurite, assets.tenant.id, "state")) == [f"{assets.tenant.id}/links/{kept.id}.json"]


def test_the_report_counts_the_links_each_dataset_holds(services, assets):
    from shared.lifecycle.report import processing_record

    make(services, assets, contact_id=CONTACT)
    make(services, assets)
    tenant = services.registry.get_tenant(assets.tenant.id)
    report = processing_record(tenant, services.registry, services.storage, services.audit, services.clock)
    (dataset,) = report["datasets"]
    assert [(k["kind"], k["held"]) for k in dataset["personal_state"]] == [("tracked_link", 2)]


def follow_in_process(services, links: Links, link: Link, monkeypatch) -> func.HttpResponse:
    """The registered function itself, with the composition root handing it these links."""
    import shared.services
    from devhost.routes import _functions
    from function_app import app

    monkeypatch.setattr(shared.services, "_services", services)
    monkeypatch.setitem(services.__dict__, "links", links)  # what the cached property holds
    (go,) = [f for f in _functions(app) if f.get_function_name() == "links_go"]
    request = func.HttpRequest(
        "GET",
        f"http://127.0.0.1/api/go/{link.tenant}/{link.id}",
        headers=PERSON,
        route_params={"tenant": link.tenant, "link": link.id},
        body=b"",
    )
    return go.get_user_function()(request)


def unreachable_storage() -> Storage:
    return Storage.from_settings(settings_from(values_of(UNREACHABLE_STORAGE)))


def test_a_link_that_was_read_redirects_even_when_its_visit_cannot_be_stored(
    services, assets, azurite, settings, clock, monkeypatch
):
    link = make(services, assets, contact_id=CONTACT)
    broken = CaptureStore(unreachable_storage(), services.registry, settings, clock)
    links = Links(broken, services.storage, services.registry, settings, clock)
    with pytest.raises(StorageUnavailable):
        links.record_visit(links.open(assets.tenant.id, link.id), Visit(PERSON))

    answer = follow_in_process(services, links, link, monkeypatch)
    assert answer.status_code == 302 and answer.headers["Location"] == BROCHURE
    assert stored(azurite, assets.tenant.id, "records") == {}


def test_a_link_that_cannot_be_read_is_a_503_page(services, assets, settings, clock, monkeypatch):
    link = make(services, assets, contact_id=CONTACT)
    # The registry is warm (as on a running instance); the link itself must be read from storage, which is away.
    links = Links(services.capture, unreachable_storage(), services.registry, settings, clock)
    with pytest.raises(StorageUnavailable):
        links.open(assets.tenant.id, link.id)

    answer = follow_in_process(services, links, link, monkeypatch)
    assert answer.status_code == 503 and answer.mimetype == "text/html"
    assert answer.headers["Retry-After"].isdigit() and "Location" not in answer.headers
    assert link.id not in answer.get_body().decode()
