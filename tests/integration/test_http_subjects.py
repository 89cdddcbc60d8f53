"""Data-subject requests over real HTTP: captured with one spelling, exported and erased with another; the
export holds the personal state too; the answers and the audit hold no per-person value."""

from __future__ import annotations

import json

import httpx
import pytest

from shared.capture.subjects import USER_ID, subject_tag
from shared.registry.models import FieldSpec
from tests.factories import BROWSER_UA, CALLBACK, MASTER_KEY, ORIGIN, SIGNINS, USER, all_blobs

PHONE = "+47 22 33 44 55"
PHONE_ASKED = "0047 (22) 33-44-55"


@pytest.fixture
def tenant(manage, tenant_id):
    created = manage.put(f"/manage/tenants/{tenant_id}", json={})
    assert created.status_code == 201
    for dataset, doc in (("callback", CALLBACK), ("signins", SIGNINS)):
        answer = manage.put(f"/manage/tenants/{tenant_id}/datasets/{dataset}", json=doc)
        assert answer.status_code == 201, answer.text
    return tenant_id, created.json()["api_key"]


@pytest.fixture
def client(host, tenant):
    _, key = tenant
    headers = {"authorization": f"Bearer {key}", "user-agent": BROWSER_UA}
    with httpx.Client(base_url=host, headers=headers, timeout=30) as client:
        yield client


def capture(client, tenant_id):
    form = client.post(
        f"/forms/{tenant_id}/callback",
        json={"phone": PHONE, "name": "Jane"},
        headers={"origin": ORIGIN, "idempotency-key": "callback-0001"},
    )
    assert form.status_code == 201, form.text
    other = client.post(f"/forms/{tenant_id}/callback", json={"phone": "+4722334456"}, headers={"origin": ORIGIN})
    assert other.status_code == 201, other.text
    signin = client.post(f"/geologin/{tenant_id}/signins", json={"user_id": USER, "ip": "193.0.6.139"})
    assert signin.status_code == 201, signin.text
    return form.json()["id"], other.json()["id"], signin.json()["id"]


def test_export_and_erase_find_what_another_spelling_captured_with_its_state(client, tenant, azurite):
    tenant_id, _ = tenant
    form_id, other_id, signin_id = capture(client, tenant_id)

    exported = client.post(f"/privacy/{tenant_id}/subjects/export", json={"subject": PHONE_ASKED})
    assert exported.status_code == 200, exported.text
    body = exported.json()
    callback = body["datasets"].get("callback", {})
    assert [r["id"] for r in callback.get("records", [])] == [form_id]
    assert set(body) == {"tenant", "request_id", "record_count", "state_count", "datasets", "more", "next_cursor"}
    assert (body["more"], body["next_cursor"]) == (False, None)
    assert body["record_count"] == 1 and body["state_count"] == 1
    assert callback["records"][0]["fields"]["phone"] == "+4722334455"
    assert callback["state"] == [
        {
            "kind": "submission_marker",
            "content": {"record": form_id, "dropped": [], "at": callback["state"][0]["content"]["at"]},
        }
    ]

    user = client.post(f"/privacy/{tenant_id}/subjects/export", json={"subject": USER.upper()}).json()
    signins = user["datasets"]["signins"]
    assert [r["id"] for r in signins["records"]] == [signin_id]
    (last,) = signins["state"]
    assert last["kind"] == "last_sign_in" and last["content"]["country"] == "NL"

    erased = client.post(f"/privacy/{tenant_id}/subjects/erase", json={"subject": PHONE_ASKED}).json()
    assert erased["erased"] == 1 and erased["state_erased"] == 1 and erased["request_id"] != body["request_id"]
    erased_user = client.post(f"/privacy/{tenant_id}/subjects/erase", json={"subject": f" {USER.upper()} "}).json()
    assert erased_user["erased"] == 1 and erased_user["state_erased"] == 1
    left = [json.loads(b)["id"] for b in all_blobs(azurite, "records", f"{tenant_id}/").values()]
    assert left == [other_id]
    assert all_blobs(azurite, "state", f"{tenant_id}/") == {}
    again = client.post(f"/privacy/{tenant_id}/subjects/export", json={"subject": PHONE}).json()
    assert again["record_count"] == 0 and again["datasets"] == {}


def test_no_audit_line_after_export_and_erasure_holds_the_subject_or_its_hash(client, tenant, azurite):
    tenant_id, _ = tenant
    capture(client, tenant_id)
    answers = [
        client.post(f"/privacy/{tenant_id}/subjects/{action}", json={"subject": subject}).json()
        for subject in (PHONE_ASKED, USER)
        for action in ("export", "erase")
    ]
    tags = {
        subject_tag(MASTER_KEY, tenant_id, FieldSpec(name="phone", type="phone"), PHONE),
        subject_tag(MASTER_KEY, tenant_id, USER_ID, USER),
    }
    personal = {"22334455", "22 33 44 55", USER, *tags}
    # The export hands out the person's data, never the pseudonym that indexes it.
    assert not any(tag in json.dumps(answer) for answer in answers for tag in tags)
    lines = b"".join(all_blobs(azurite, "audit", f"{tenant_id}/").values()).decode().splitlines()
    assert [json.loads(line)["kind"] for line in lines].count("erasure") == 2
    assert [line for line in lines if any(value.lower() in line.lower() for value in personal)] == []
    audited = [json.loads(line)["request"] for line in lines if json.loads(line)["kind"] in ("export", "erasure")]
    assert audited == [answer["request_id"] for answer in answers]


def test_the_report_names_the_personal_state_held(client, tenant):
    tenant_id, _ = tenant
    capture(client, tenant_id)
    report = client.get(f"/privacy/{tenant_id}/report").json()
    state = {d["dataset"]: {k["kind"]: k["held"] for k in d["personal_state"]} for d in report["datasets"]}
    assert state == {"callback": {"submission_marker": 1}, "signins": {"last_sign_in": 1}}
    page = client.get(f"/privacy/{tenant_id}/report", params={"format": "html"}).text
    assert "submission_marker" in page and "last_sign_in" in page


def test_a_national_number_captured_under_a_default_region_is_found_by_its_international_spellings(
    manage, client, tenant, azurite
):
    tenant_id, _ = tenant
    national = {**CALLBACK, "fields": [{"name": "phone", "type": "phone", "required": True, "default_region": "NO"}]}
    declared = manage.put(f"/manage/tenants/{tenant_id}/datasets/callback-no", json=national)
    assert declared.status_code == 201, declared.text
    shown = manage.get(f"/manage/tenants/{tenant_id}/datasets/callback-no").json()
    assert shown["fields"][0]["default_region"] == "NO"

    stored = client.post(f"/forms/{tenant_id}/callback-no", json={"phone": "22 33 44 55"}, headers={"origin": ORIGIN})
    assert stored.status_code == 201, stored.text
    (record,) = [json.loads(b) for b in all_blobs(azurite, "records", f"{tenant_id}/callback-no/").values()]
    assert record["fields"]["phone"] == "+4722334455"
    impossible = client.post(
        f"/forms/{tenant_id}/callback-no", json={"phone": "+4700000000000"}, headers={"origin": ORIGIN}
    )
    assert impossible.status_code == 422
    (problem,) = impossible.json()["errors"]
    assert problem["field"] == "phone" and "E.164" in problem["reason"] and "national for NO" in problem["reason"]
    assert "4700000000000" not in impossible.text

    exported = client.post(f"/privacy/{tenant_id}/subjects/export", json={"subject": "+47 22 33 44 55"}).json()
    assert [r["id"] for r in exported["datasets"]["callback-no"]["records"]] == [stored.json()["id"]]
    erased = client.post(f"/privacy/{tenant_id}/subjects/erase", json={"subject": "0047 22334455"}).json()
    assert erased["erased"] == 1
    assert all_blobs(azurite, "records", f"{tenant_id}/callback-no/") == {}


def test_default_region_is_for_phone_fields_and_known_regions_only(manage, tenant):
    tenant_id, _ = tenant
    for field, named in (
        ({"name": "name", "type": "string", "default_region": "NO"}, "fields"),
        ({"name": "phone", "type": "phone", "default_region": "ZZ"}, "fields.0.default_region"),
    ):
        answer = manage.put(f"/manage/tenants/{tenant_id}/datasets/bad-region", json={**CALLBACK, "fields": [field]})
        assert answer.status_code == 422, answer.text
        assert answer.json()["errors"][0]["field"].startswith(named)
