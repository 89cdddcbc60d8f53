"""Acceptance of the public privacy notice, written from README.md, openapi.yaml and docs/transparency.md alone:
every answer (notice, 404, 400, 421) has the shape openapi.yaml declares, odd requests are never a 5xx, the
rights follow the legal basis as the docs list them, and a refused `notice` option stores nothing."""

from __future__ import annotations

import pytest

from tests.factories import (
    EMAIL_EVENTS,
    EXAMPLE,
    FORM,
    LINKS,
    SIGNINS,
    SMS_TEXTS,
    all_blobs,
    blob_states,
    documented_errors,
    variant,
)

ROUTE = "/notice/{tenant}/{dataset}"
GERMAN = "Wir melden uns bei Interessenten, die die Preisseite besuchen"
MARK = "QzV7mark"


@pytest.fixture
def tenant(manage, tenant_id) -> str:
    assert manage.put(f"/manage/tenants/{tenant_id}", json={}).status_code == 201
    worded = variant(notice={"languages": {"de": {"purpose": GERMAN, "fields": {"ip": "Ihre gekürzte IP-Adresse"}}}})
    assert manage.put(f"/manage/tenants/{tenant_id}/datasets/visits", json=worded).status_code == 201
    return tenant_id


def test_every_json_answer_has_the_documented_shape(anon, manage, tenant, tenant_id):
    notice = anon.get(f"/notice/{tenant}/visits?format=json", headers={"accept-language": "de-CH, en;q=0.5"})
    assert notice.status_code == 200 and documented_errors(notice, ROUTE, "get") == []
    body = notice.json()
    assert (body["language"], body["purpose"], sorted(body["languages"])) == ("de", GERMAN, ["de", "en"])
    assert notice.headers["access-control-allow-origin"] == "*"
    for path in (f"/notice/{tenant}/nope?format=json", f"/notice/{tenant}/visits?format=xml"):
        refused = anon.get(path)
        assert refused.status_code in (400, 404) and documented_errors(refused, ROUTE, "get") == []
        assert refused.headers["cache-control"] == "no-store"
    other = f"{tenant_id}-us"
    assert manage.put(f"/manage/tenants/{other}", json={"region": "us"}).status_code == 201
    misdirected = anon.get(f"/notice/{other}/visits", headers={"accept": "application/json"})
    assert misdirected.status_code == 421 and documented_errors(misdirected, ROUTE, "get") == []


def test_the_page_carries_every_promised_header(anon, tenant):
    page = anon.get(f"/notice/{tenant}/visits", headers={"accept-language": "de"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == "default-src 'none'; style-src 'unsafe-inline'"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "public, max-age=300"
    assert {part.strip() for part in page.headers["vary"].split(",")} >= {"Accept", "Accept-Language"}
    assert {part.strip() for part in page.headers["content-language"].split(",")} == {"en", "de"}
    assert '<html lang="en">' in page.text and "<script" not in page.text


@pytest.mark.parametrize(
    "headers",
    [
        {"accept-language": ", ".join(["de;q=abc"] * 400)},
        {"accept-language": "*;q=0, de;q=1.0000, x-" + "a" * 3000},
        {"accept-language": "de;q=0"},
        {"accept": "application/json;q=abc, */*"},
        {"accept": ",,,;;;"},
    ],
)
def test_hostile_headers_are_never_an_error(anon, tenant, headers):
    answer = anon.get(f"/notice/{tenant}/visits", headers=headers)
    assert answer.status_code == 200
    if headers.get("accept-language") == "de;q=0":
        assert answer.headers["content-language"] == "en"  # q=0 is never chosen


@pytest.mark.parametrize(
    ("legal_basis", "withdraw", "portability"),
    [
        ("consent", True, True),
        ("contract", False, True),
        ("legal_obligation", False, False),
        ("vital_interests", False, False),
        ("public_task", False, False),
        ("legitimate_interest", False, False),
    ],
)
def test_the_rights_follow_the_legal_basis(anon, manage, tenant, legal_basis, withdraw, portability):
    assert manage.put(f"/manage/tenants/{tenant}/datasets/basis", json=variant(legal_basis=legal_basis)).is_success
    body = anon.get(f"/notice/{tenant}/basis?format=json").json()
    rights = {right["right"] for right in body["rights"]}
    assert {"access", "rectification", "erasure", "objection", "complaint"} <= rights
    assert ("withdraw_consent" in rights, "portability" in rights) == (withdraw, portability)
    assert body["legal_basis"] == legal_basis


@pytest.mark.parametrize(
    "notice",
    [
        {"languages": {}},
        {"languages": {"de": {"purpose": "ok purpose"}, "DE": {"purpose": "ok purpose"}}},
        {"languages": {"x-" + MARK.lower(): {"purpose": "ok purpose"}}},
        {"languages": {"de": {"purpose": "no"}}},
        {"languages": {"de": {"purpose": "ok purpose", "fields": {"undeclared": "text"}}}},
        {"languages": {"de": {"purpose": "ok purpose", "fields": {"ip": ""}}}},
        {"languages": {"de": {"purpose": "ok purpose", MARK: 1}}},
        {
            "languages": {
                f"de-{chr(65 + index // 26)}{chr(65 + index % 26)}": {"purpose": "ok purpose"} for index in range(21)
            }
        },
        {"languages": {"de": {"purpose": 5}}},
        {"languages": ["de"]},
    ],
)
def test_a_refused_notice_option_is_a_422_and_stores_nothing(manage, azurite, tenant, notice):
    before = blob_states(azurite, ("registry",), within=(tenant,))
    answer = manage.put(f"/manage/tenants/{tenant}/datasets/visits", json=variant(notice=notice))
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["error"] == "invalid_dataset" and body["detail"] and body["errors"]
    assert "ok purpose" not in answer.text and "text" not in body["detail"]
    assert blob_states(azurite, ("registry",), within=(tenant,)) == before
    assert all_blobs(azurite, "records", f"{tenant}/") == {}


def test_the_english_notice_needs_no_option(anon, manage, tenant):
    assert manage.put(f"/manage/tenants/{tenant}/datasets/plain", json=EXAMPLE).status_code == 201
    body = anon.get(f"/notice/{tenant}/plain", headers={"accept": "application/json"}).json()
    assert (body["language"], body["languages"]) == ("en", ["en"])
    assert [field["name"] for field in body["collected"]] == [field["name"] for field in EXAMPLE["fields"]]


@pytest.mark.parametrize(
    "declaration", [EXAMPLE, FORM, SIGNINS, SMS_TEXTS, LINKS, EMAIL_EVENTS], ids=lambda doc: doc["capability"]
)
def test_every_capability_has_a_notice(anon, manage, tenant, declaration):
    # "Every dataset has a public notice": a link, e-mail event or SMS dataset's was a 500.
    assert manage.put(f"/manage/tenants/{tenant}/datasets/any", json=declaration).status_code == 201
    notice = anon.get(f"/notice/{tenant}/any?format=json")
    assert notice.status_code == 200 and documented_errors(notice, ROUTE, "get") == []
    assert notice.json()["what"]
    page = anon.get(f"/notice/{tenant}/any")
    assert page.status_code == 200 and notice.json()["what"].split(":")[0].replace("'", "&#x27;") in page.text
