"""GET /api/notice/{tenant}/{dataset} through the local host, and in process where storage requests are counted."""

from __future__ import annotations

import re

import pytest

from shared.core.errors import Misdirected, NotFound
from shared.registry.models import Dataset, TenantIn
from shared.storage.blobs import JSON_CONTENT, REGISTRY
from tests.factories import CONTRACT_FORM, EXAMPLE, FORM, US_URL, variant

CSP = "default-src 'none'; style-src 'unsafe-inline'"
GERMAN = "Wir melden uns bei Interessenten, die die Preisseite besuchen"
WORDED = variant(notice={"languages": {"de": {"purpose": GERMAN}}})


@pytest.fixture
def notice_tenant(manage, tenant_id) -> str:
    assert manage.put(f"/manage/tenants/{tenant_id}", json={}).status_code == 201
    for dataset, declaration in (("visits", WORDED), ("contact", FORM), ("hostile", CONTRACT_FORM)):
        answer = manage.put(f"/manage/tenants/{tenant_id}/datasets/{dataset}", json=declaration)
        assert answer.status_code == 201, answer.text
    return tenant_id


def test_the_notice_is_an_html_page_by_default(anon, notice_tenant):
    answer = anon.get(f"/notice/{notice_tenant}/visits")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert answer.headers["content-security-policy"] == CSP
    assert re.search(r"\bmax-age=\d+", answer.headers["cache-control"])
    assert "accept-language" in answer.headers["vary"].lower()
    page = answer.text
    assert "<script" not in page.lower()
    for said in (EXAMPLE["purpose"], "Contoso Ltd", "privacy@contoso.example", "dpo@contoso.example", "14 days"):
        assert said in page
    assert "the European Union" in page  # the host's region, in words


def test_json_with_accept_or_format(anon, notice_tenant):
    by_header = anon.get(f"/notice/{notice_tenant}/contact", headers={"accept": "application/json"})
    by_query = anon.get(f"/notice/{notice_tenant}/contact?format=json")
    for answer in (by_header, by_query):
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("application/json")
        assert answer.headers["content-security-policy"] == CSP
        assert "max-age=" in answer.headers["cache-control"]
    body = by_header.json()
    assert body == by_query.json()
    assert (body["tenant"], body["dataset"], body["language"]) == (notice_tenant, "contact", "en")
    assert (body["legal_basis"], body["retention_days"], body["region"]) == ("consent", 7, "eu")
    assert body["controller"] == {"name": "Contoso Ltd", "email": "privacy@contoso.example"}
    assert body["dpo"] is None
    assert [item["name"] for item in body["collected"]] == [spec["name"] for spec in FORM["fields"]]
    assert {"access", "erasure", "objection", "withdraw_consent"} <= {right["right"] for right in body["rights"]}
    html = anon.get(f"/notice/{notice_tenant}/contact?format=html", headers={"accept": "application/json"})
    assert html.headers["content-type"].startswith("text/html")


def test_the_reader_language_is_chosen_by_accept_language(anon, notice_tenant):
    german = anon.get(f"/notice/{notice_tenant}/visits", headers={"accept-language": "de-AT, de;q=0.9, en;q=0.5"})
    assert f'<span lang="de">{GERMAN}</span>' in german.text
    assert EXAMPLE["purpose"] not in german.text
    english = anon.get(f"/notice/{notice_tenant}/visits", headers={"accept-language": "fr, en;q=0.8"})
    assert EXAMPLE["purpose"] in english.text
    body = anon.get(f"/notice/{notice_tenant}/visits?format=json", headers={"accept-language": "de"}).json()
    assert (body["language"], body["purpose"], body["languages"]) == ("de", GERMAN, ["en", "de"])


def test_a_purpose_with_markup_is_shown_as_text(anon, notice_tenant):
    page = anon.get(f"/notice/{notice_tenant}/hostile").text
    assert "<script>alert(1)</script>" not in page
    assert "Answer &lt;script&gt;alert(1)&lt;/script&gt; enquiries" in page


def test_unknown_tenant_unknown_dataset_and_bad_ids_are_one_404_that_reveals_nothing(anon, notice_tenant):
    paths = [
        f"/notice/{notice_tenant}/nothing-here",  # a tenant that exists, a dataset that does not
        "/notice/t-no-such-tenant/visits",
        "/notice/NOT_AN_ID/visits",
        f"/notice/{notice_tenant}/x",
        f"/notice/{notice_tenant}/{'a' * 80}",
    ]
    pages = [anon.get(path) for path in paths]
    assert {answer.status_code for answer in pages} == {404}
    assert len({answer.text for answer in pages}) == 1
    assert pages[0].headers["content-type"].startswith("text/html")
    assert pages[0].headers["content-security-policy"] == CSP
    assert notice_tenant not in pages[0].text
    bodies = [anon.get(path, headers={"accept": "application/json"}) for path in paths]
    assert {answer.status_code for answer in bodies} == {404}
    assert [answer.json() for answer in bodies] == [bodies[0].json()] * len(paths)
    assert bodies[0].json()["error"] == "not_found"


def test_an_unknown_format_is_a_400(anon, notice_tenant):
    answer = anon.get(f"/notice/{notice_tenant}/visits?format=xml")
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_format"


def test_a_tenant_homed_in_another_region_is_a_421_pointing_there(anon, manage, tenant_id):
    # A tenant document of another region (no dataset can be declared for it here): the notice is there.
    assert manage.put(f"/manage/tenants/{tenant_id}", json={"region": "us"}).status_code == 201
    page = anon.get(f"/notice/{tenant_id}/visits")
    assert page.status_code == 421
    assert page.headers["content-type"].startswith("text/html")
    assert f'href="{US_URL}/notice/{tenant_id}/visits"' in page.text
    body = anon.get(f"/notice/{tenant_id}/visits?format=json").json()
    assert (body["error"], body["region"], body["base_url"]) == ("misdirected", "us", US_URL)


# ---------------------------------------------------------------- in process: what a view reads


def test_a_view_reads_no_storage_beyond_the_cached_registry(services, tenant_id):
    services.registry.put_tenant(tenant_id, TenantIn())
    services.registry.put_dataset(tenant_id, "visits", Dataset.model_validate(WORDED))
    services.registry.forget()  # a cold instance: the first view reads the tenant and the dataset, nothing more
    notices = services.notices
    before = services.storage.transport.sent
    notices.find(tenant_id, "visits", None)
    assert services.storage.transport.sent - before == 2
    with pytest.raises(NotFound):
        notices.find(tenant_id, "nothing-here", None)
    warm = services.storage.transport.sent
    for language in ("de", "en", "fr", None) * 25:
        assert notices.find(tenant_id, "visits", language).tenant == tenant_id
        with pytest.raises(NotFound):
            notices.find(tenant_id, "nothing-here", language)
        with pytest.raises(NotFound):
            notices.find("BAD ID", "visits", language)
    assert services.storage.transport.sent == warm  # every later view: the cache only


def test_the_home_deployment_points_a_registered_tenant_to_its_region(services, settings, tenant_id):
    from shared.services import Services

    home = Services.build(settings.model_copy(update={"role": frozenset({"regional", "registration"})}))
    container = home.storage.container(REGISTRY)
    container.upload_blob(f"registrations/{tenant_id}.json", b'{"region": "us"}', content_settings=JSON_CONTENT)
    with pytest.raises(Misdirected) as caught:
        home.notices.find(tenant_id, "visits", None)
    assert caught.value.body()["base_url"] == US_URL
    with pytest.raises(NotFound):  # a regional deployment knows no registrations: an unknown tenant
        services.notices.find(tenant_id, "visits", None)
