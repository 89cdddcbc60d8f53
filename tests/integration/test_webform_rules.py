"""Web-form idempotency markers left behind by an attempt that died, against the real Azurite. The web-form
rules without storage are in tests/unit/test_webform_rules.py."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from shared.core.clock import ManualClock
from shared.registry.models import Dataset, TenantIn
from shared.webform.intake import FormPost, SubmissionMarkers
from tests.factories import FORM, ORIGIN, all_blobs


@pytest.fixture
def target(services, tenant_id):
    services.registry.put_tenant(tenant_id, TenantIn())
    services.registry.put_dataset(tenant_id, "contact", Dataset.model_validate(FORM))
    return services.capture.resolve(tenant_id, "contact", "webform")


def submit(services, target, key):
    return services.forms.submit(
        FormPost(
            target.tenant.id,
            "contact",
            json.dumps({"email": "jane@example.com", "consent": True}).encode(),
            {"origin": ORIGIN, "content-type": "application/json", "idempotency-key": key},
        )
    )


def test_a_marker_whose_record_never_came_is_taken_over_once_stale(services, target, azurite, clock: ManualClock):
    markers = SubmissionMarkers(services.storage, services.capture, services.settings, clock)
    key = "submission-0001"
    assert markers.claim(target, key, "20261123T100000000000Z-0000000000000000", ()) is None  # then the instance died
    # Moments later the retry finds the marker but no record: the first attempt may still be writing.
    answer = submit(services, target, key)
    assert answer.status == 409 and answer.body["error"] == "submission_in_progress"
    assert answer.headers["Retry-After"] == "2"
    assert all_blobs(azurite, "records", f"{target.tenant.id}/") == {}
    # Once the commit deadline has long passed, the retry takes the marker over and stores the record.
    clock.advance(timedelta(seconds=30))
    answer = submit(services, target, key)
    assert answer.status == 201
    (record,) = [json.loads(b) for b in all_blobs(azurite, "records", f"{target.tenant.id}/").values()]
    assert record["id"] == answer.body["id"]
    assert submit(services, target, key).body["id"] == record["id"]


# Its own Azurite: the purge goes over every tenant in the store, on the session's every one the other tests left.
@pytest.mark.own_azurite
def test_a_marker_expires_with_the_purge_and_goes_with_its_dataset(services, target, services_azurite, clock):
    assert submit(services, target, "submission-0002").status == 201
    (name,) = all_blobs(services_azurite, "state", f"{target.tenant.id}/datasets/contact/idem/")
    tags = services.storage.container("state").get_blob_client(name).get_blob_tags()
    assert tags["t"] == target.tenant.id and tags["d"] == "contact"
    clock.advance(timedelta(hours=25))
    services.purger().run()
    assert all_blobs(services_azurite, "state", f"{target.tenant.id}/") == {}
