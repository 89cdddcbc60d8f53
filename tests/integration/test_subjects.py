"""Data subjects on a real capture store on Azurite: data-subject requests find what capture tagged, exports
include personal state, and the audit holds no per-person value. The normalisation-then-hash itself is in
tests/unit/test_subjects.py."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from shared.capture.subjects import USER_ID, subject_tag
from shared.lifecycle.report import processing_record
from shared.lifecycle.report_page import render_html
from shared.lifecycle.subject_requests import SubjectRequests
from shared.registry.models import Dataset, TenantIn
from shared.storage.blobs import AUDIT, STATE
from tests.factories import (
    FORM,
    MASTER_KEY,
    ORIGIN,
    SIGNINS,
    SPELLINGS,
    USER,
    all_blobs,
    declaration,
    geo_services,
    sign_in,
    spec,
    variant,
)


def requests_of(services) -> SubjectRequests:
    return SubjectRequests(services.storage, services.registry, services.audit, MASTER_KEY)


@pytest.mark.parametrize("field_type", sorted(SPELLINGS))
def test_capture_with_one_spelling_export_and_erase_with_another(services, tenant_id, azurite, field_type):
    captured, asked, other = SPELLINGS[field_type]
    services.registry.put_tenant(tenant_id, TenantIn())
    services.registry.put_dataset(tenant_id, "visits", Dataset.model_validate(declaration(field_type)))
    target = services.capture.resolve(tenant_id, "visits", "pixel")
    mine = services.capture.capture(target, {"who": captured, "page": "pricing"}).record
    theirs = services.capture.capture(target, {"who": other, "page": "pricing"}).record

    exported = requests_of(services).export(tenant_id, asked)
    assert exported["record_count"] == 1
    assert [r["id"] for r in exported["datasets"]["visits"]["records"]] == [mine.id]
    erased = requests_of(services).erase(tenant_id, asked)
    assert (erased.records, erased.state) == (1, 0)
    left = [json.loads(body)["id"] for body in all_blobs(azurite, "records", f"{tenant_id}/").values()]
    assert left == [theirs.id]
    assert requests_of(services).export(tenant_id, str(captured))["record_count"] == 0


def test_export_hands_out_the_last_sign_in_with_its_coordinates_and_erasure_removes_it(
    settings, clock, services, tenant_id, azurite, tmp_path
):
    from tests.city_db import write_city_db

    geo = geo_services(settings, clock, write_city_db(tmp_path / "city.mmdb"))
    geo.registry.put_tenant(tenant_id, TenantIn())
    geo.registry.put_dataset(tenant_id, "signins", Dataset.model_validate(SIGNINS))
    first = sign_in(geo, tenant_id, "oslo")
    clock.advance(timedelta(hours=1))
    second = sign_in(geo, tenant_id, "stockholm")

    exported = requests_of(geo).export(tenant_id, f"  {USER.upper()} ")
    held = exported["datasets"]["signins"]
    assert sorted(r["id"] for r in held["records"]) == sorted([first.id, second.id])
    assert exported["state_count"] == 1
    (state,) = held["state"]
    assert state["kind"] == "last_sign_in"
    assert state["content"]["country"] == "SE" and state["content"]["latitude"] == pytest.approx(59.3293)
    assert state["content"]["longitude"] == pytest.approx(18.0686)

    erased = requests_of(geo).erase(tenant_id, USER.upper())
    assert (erased.records, erased.state) == (2, 1)
    assert all_blobs(azurite, STATE, f"{tenant_id}/") == {}


def test_the_last_sign_in_is_found_by_user_id_even_when_the_dataset_names_no_subject(services, tenant_id, azurite):
    services.registry.put_tenant(tenant_id, TenantIn())
    services.registry.put_dataset(tenant_id, "signins", Dataset.model_validate({**SIGNINS, "subject_field": None}))
    sign_in(services, tenant_id, "oslo")
    exported = requests_of(services).export(tenant_id, USER)
    assert exported["record_count"] == 0  # records without a subject field carry no subject tag
    assert [s["kind"] for s in exported["datasets"]["signins"]["state"]] == ["last_sign_in"]
    assert requests_of(services).erase(tenant_id, USER).state == 1
    assert all_blobs(azurite, STATE, f"{tenant_id}/") == {}


def form_post(services, tenant_id, email, key):
    from shared.webform.intake import FormPost

    body = json.dumps({"email": email, "consent": True}).encode()
    headers = {"origin": ORIGIN, "content-type": "application/json", "idempotency-key": key}
    return services.forms.submit(FormPost(tenant_id, "contact", body, headers))


def test_a_submission_marker_carries_the_subject_tag_is_exported_and_goes_with_the_erasure(
    services, tenant_id, azurite
):
    services.registry.put_tenant(tenant_id, TenantIn())
    services.registry.put_dataset(tenant_id, "contact", Dataset.model_validate(FORM))
    answer = form_post(services, tenant_id, "Jane.Roe@Example.com", "submission-0001")
    assert answer.status == 201
    assert form_post(services, tenant_id, "john@example.com", "submission-0002").status == 201

    exported = requests_of(services).export(tenant_id, "jane.roe@EXAMPLE.com")
    (marker,) = exported["datasets"]["contact"]["state"]
    assert marker["kind"] == "submission_marker" and marker["content"]["record"] == answer.body["id"]
    assert requests_of(services).erase(tenant_id, "JANE.ROE@example.com").state == 1
    (left,) = all_blobs(azurite, STATE, f"{tenant_id}/").values()
    assert json.loads(left)["record"] != answer.body["id"]  # John's marker stays


def test_the_report_describes_the_personal_state_each_dataset_keeps_and_counts_it(services, tenant_id, clock):
    services.registry.put_tenant(tenant_id, TenantIn())
    services.registry.put_dataset(tenant_id, "signins", Dataset.model_validate(SIGNINS))
    services.registry.put_dataset(tenant_id, "visits", Dataset.model_validate(variant()))
    sign_in(services, tenant_id, "oslo")
    sign_in(services, tenant_id, "oslo", user="11111111-2222-3333-4444-555555555555")
    tenant = services.registry.get_tenant(tenant_id)
    report = processing_record(tenant, services.registry, services.storage, services.audit, services.clock)
    by_id = {d["dataset"]: d for d in report["datasets"]}
    (state,) = by_id["signins"]["personal_state"]
    assert state["kind"] == "last_sign_in" and state["held"] == 2 and "coordinates" in state["holds"]
    assert by_id["visits"]["personal_state"] == []
    page = render_html(report)
    assert "last_sign_in" in page and "coordinates" in page


def test_no_audit_entry_holds_the_subject_or_its_tag(services, tenant_id, azurite):
    services.registry.put_tenant(tenant_id, TenantIn())
    services.registry.put_dataset(tenant_id, "signins", Dataset.model_validate(SIGNINS))
    services.registry.put_dataset(tenant_id, "contact", Dataset.model_validate(FORM))
    sign_in(services, tenant_id, "oslo")
    assert form_post(services, tenant_id, "jane.roe@example.com", "submission-0003").status == 201
    exported = requests_of(services).export(tenant_id, USER)
    erased = requests_of(services).erase(tenant_id, USER)
    also = requests_of(services).erase(tenant_id, "Jane.Roe@example.com")
    assert "subject_hash" not in exported

    secrets = {
        USER,
        USER.upper(),
        "jane.roe",
        subject_tag(MASTER_KEY, tenant_id, USER_ID, USER),
        subject_tag(MASTER_KEY, tenant_id, spec("email"), "jane.roe@example.com"),
    }
    lines = b"".join(all_blobs(azurite, AUDIT, f"{tenant_id}/").values()).decode().lower().splitlines()
    assert lines
    assert [line for line in lines if any(secret.lower() in line for secret in secrets)] == []
    requests = [e["request"] for e in services.audit.entries(tenant_id) if e["kind"] in ("export", "erasure")]
    assert requests == [exported["request_id"], erased.request_id, also.request_id]
    assert len(set(requests)) == 3
