"""Web-form rules without HTTP: dataset options, body parsing, the rate limiter, and idempotency markers
left behind by an attempt that died (against the real Azurite)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from shared.core.bodies import validate_model
from shared.core.clock import ManualClock
from shared.core.errors import BadRequest, PackCloudError, Unprocessable, UnsupportedMediaType
from shared.registry.models import Dataset, TenantIn
from shared.webform.body import parse_form
from shared.webform.intake import FormPost, SubmissionMarkers, is_navigation
from shared.webform.rate_limit import RateLimiter
from tests.conftest import all_blobs
from tests.test_http_webform import FORM, ORIGIN


def form(**changes):
    return {**FORM, **changes}


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"allowed_origins": []}, "needs allowed_origins"),
        ({"redirect_url": "https://evil.example/thanks"}, "redirect_url must be an absolute URL"),
        ({"redirect_url": "/thanks"}, "redirect_url must be an absolute URL"),
        ({"honeypot_field": "email"}, "honeypot_field must not be a declared field"),
        ({"consent_field": "topic"}, "must be a boolean field"),
        ({"consent_text_version": None}, "go together"),
        ({"consent_field": None, "consent_text_version": None}, "legal_basis consent needs consent_field"),
        ({"capability": "pixel"}, "options of webform datasets only"),
    ],
)
def test_form_options_are_checked_when_the_dataset_is_declared(changes, reason):
    with pytest.raises(Unprocessable) as caught:
        validate_model(Dataset, form(**changes), "invalid_dataset", "dataset")
    assert reason in json.dumps(caught.value.body())


def test_a_form_without_consent_needs_no_consent_options():
    dataset = Dataset.model_validate(form(legal_basis="contract", consent_field=None, consent_text_version=None))
    assert dataset.consent_field is None


def test_url_encoded_multipart_and_json_bodies_read_alike():
    expected = {"email": "a@b.co", "name": "Zoë"}
    assert parse_form(b"email=a%40b.co&name=Zo%C3%AB", "application/x-www-form-urlencoded", 1024) == expected
    multipart = (
        b'--b\r\nContent-Disposition: form-data; name="email"\r\n\r\na@b.co\r\n'
        b'--b\r\nContent-Disposition: form-data; name="name"\r\n\r\nZo\xc3\xab\r\n--b--\r\n'
    )
    assert parse_form(multipart, "multipart/form-data; boundary=b", 1024) == expected
    assert parse_form(json.dumps(expected).encode(), "application/json; charset=utf-8", 1024) == expected


def test_the_size_limit_comes_before_the_content_type():
    with pytest.raises(PackCloudError) as caught:
        parse_form(b"x" * 2000, "application/x-unknown", 1024)
    assert caught.value.status == 413


@pytest.mark.parametrize(
    ("body", "content_type", "error"),
    [
        (b"a=1&" * 201, "application/x-www-form-urlencoded", BadRequest),
        (
            b'--b\r\nContent-Disposition: attachment; name="a"\r\n\r\n1\r\n--b--\r\n',
            "multipart/form-data; boundary=b",
            BadRequest,
        ),
        (
            b'--b\r\nContent-Disposition: form-data; name="a"; filename="x.txt"\r\n\r\n1\r\n--b--\r\n',
            "multipart/form-data; boundary=b",
            UnsupportedMediaType,
        ),
        (b"[1]", "application/json", BadRequest),
    ],
)
def test_bad_bodies_are_refused(body, content_type, error):
    with pytest.raises(error):
        parse_form(body, content_type, 65536)


def test_navigation_is_told_from_a_script_request():
    assert is_navigation({"sec-fetch-mode": "navigate"})
    assert not is_navigation({"sec-fetch-mode": "cors", "accept": "text/html"})
    assert is_navigation({"accept": "text/html,application/xhtml+xml"})
    assert not is_navigation({"accept": "application/json"})


def test_the_rate_limiter_refills_with_time(clock):
    limiter = RateLimiter(per_minute=3, clock=clock)
    assert [limiter.take("a") for _ in range(3)] == [None, None, None]
    assert limiter.take("a") == 20  # one token comes back every 20 s
    assert limiter.take("b") is None  # clients are counted apart
    clock.advance(timedelta(seconds=20))
    assert limiter.take("a") is None
    assert limiter.take("a") is not None
    assert RateLimiter(per_minute=0, clock=clock).take("a") is None


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


def test_a_marker_expires_with_the_purge_and_goes_with_its_dataset(services, target, azurite, clock):
    assert submit(services, target, "submission-0002").status == 201
    (name,) = all_blobs(azurite, "state", f"{target.tenant.id}/datasets/contact/idem/")
    tags = services.storage.container("state").get_blob_client(name).get_blob_tags()
    assert tags["t"] == target.tenant.id and tags["d"] == "contact"
    clock.advance(timedelta(hours=25))
    services.purger().run()
    assert all_blobs(azurite, "state", f"{target.tenant.id}/") == {}
