"""Acceptance of the DPO report view, written from README.md, openapi.yaml and docs/privacy.md alone: the JSON of
the documented shape for every capability of the day (with the links a link dataset holds and the DPO
notifications section), the page's promises (CSP, no script, a link to each notice), and refusals by name."""

from __future__ import annotations

import pytest

from tests.factories import ASSETS_ORIGIN, CONTACT, EMAIL_EVENTS, EXAMPLE, LINKS, documented_errors

ROUTE = "/privacy/{tenant}/report"


@pytest.fixture
def tenant(manage, anon, tenant_id) -> tuple[str, dict[str, str]]:
    created = manage.put(f"/manage/tenants/{tenant_id}", json={})
    assert created.status_code == 201
    auth = {"authorization": f"Bearer {created.json()['api_key']}"}
    for dataset, declaration in (("visits", EXAMPLE), ("assets", LINKS), ("mail", EMAIL_EVENTS)):
        assert manage.put(f"/manage/tenants/{tenant_id}/datasets/{dataset}", json=declaration).status_code == 201
    for body in ({"target_url": f"{ASSETS_ORIGIN}/a.pdf", "contact_id": CONTACT}, {"target_url": f"{ASSETS_ORIGIN}/b"}):
        assert anon.post(f"/links/{tenant_id}/assets", json=body, headers=auth).status_code == 201
    return tenant_id, auth


def test_the_json_report_has_the_documented_shape(anon, tenant):
    tenant_id, auth = tenant
    for query in ("", "?format=json"):
        report = anon.get(f"/privacy/{tenant_id}/report{query}", headers=auth)
        assert report.status_code == 200 and report.headers["content-type"].startswith("application/json")
        assert documented_errors(report, ROUTE, "get") == []
    body = report.json()
    assert body["dpo_notifications"] == {"webhook": False, "failed": [], "pending": []}
    datasets = {dataset["dataset"]: dataset for dataset in body["datasets"]}
    assert set(datasets) == {"visits", "assets", "mail"}
    # docs/links.md: the record of processing counts the links each link dataset holds.
    (links,) = [state for state in datasets["assets"]["personal_state"] if state["kind"] == "tracked_link"]
    assert (links["held"], links["held_more"]) == (2, False)
    for name, dataset in datasets.items():
        assert dataset["notice"].endswith(f"/notice/{tenant_id}/{name}")


def test_the_page_is_self_contained_and_links_each_notice(anon, tenant):
    tenant_id, auth = tenant
    page = anon.get(f"/privacy/{tenant_id}/report?format=html", headers=auth)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == "default-src 'none'; style-src 'unsafe-inline'"
    assert "<script" not in page.text.lower()
    for dataset in ("visits", "assets", "mail"):
        assert f'href="/api/notice/{tenant_id}/{dataset}"' in page.text


@pytest.mark.parametrize(
    ("query", "key", "status", "code"),
    [
        ("?format=pdf", "KEY", 400, "invalid_format"),
        ("?format=HTML", "KEY", 400, "invalid_format"),
        ("?format=", "KEY", 400, "invalid_format"),
        ("", None, 401, "missing_key"),
        ("", "pck_not-the-key", 403, "forbidden"),
    ],
)
def test_refusals_are_documented_errors(anon, tenant, query, key, status, code):
    tenant_id, auth = tenant
    headers = auth if key == "KEY" else ({"authorization": f"Bearer {key}"} if key else {})
    answer = anon.get(f"/privacy/{tenant_id}/report{query}", headers=headers)
    assert (answer.status_code, answer.json()["error"]) == (status, code)
    assert documented_errors(answer, ROUTE, "get") == []
    assert "pck_not-the-key" not in answer.text
