"""Web-form rules without HTTP: dataset options, body parsing and the rate limiter. Idempotency markers left
behind by an attempt that died, against the real Azurite, are in tests/integration/test_webform_rules.py."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from shared.core.bodies import validate_model
from shared.core.errors import BadRequest, PackCloudError, Unprocessable, UnsupportedMediaType
from shared.core.names import shown_name
from shared.registry.models import Dataset
from shared.webform.body import parse_form
from shared.webform.intake import is_navigation
from shared.webform.rate_limit import RateLimiter
from tests.factories import FORM


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


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("utm_source", "utm_source"),
        ("prénom", "prénom"),  # any script's letters come back as given
        ("Vorname des Kunden", "Vorname des Kunden"),
        ("名前", "名前"),
        ("items[0].qty", "items[0].qty"),
        ("a<b>\"c'", "a?b??c?"),  # markup and quotes never come back
        ("\x00tab\tname", "?tab?name"),
        ("x" * 64, "x" * 64),
        ("x" * 65, "x" * 63 + "\u2026"),  # bounded: an answer never grows with what a page sends
        ("", "(unnamed)"),
    ],
)
def test_an_undeclared_field_name_comes_back_tamed_but_readable(name, shown):
    assert shown_name(name) == shown
