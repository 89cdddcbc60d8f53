"""Custom events of pixel datasets: how they are declared, which hits and properties are kept, and the beacon's
body. Recording them against Azurite is in tests/integration/test_pixel_rules.py, in the browser in
tests/integration/test_browser_events.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from shared.core.bodies import validate_model
from shared.core.errors import BadRequest, PayloadTooLarge, Unprocessable, UnsupportedMediaType
from shared.pixel.beacon import MAX_BEACON_PARAMS, beacon_params
from shared.pixel.events import event_values
from shared.pixel.hits import notice_url
from shared.registry.models import Dataset, DatasetDoc
from tests.factories import variant

EVENT_FIELDS = [
    {"name": "page_url", "type": "url", "required": True, "personal": False, "max_length": 2048},
    {"name": "visitor", "type": "string", "max_length": 64},
    {"name": "event", "type": "string", "personal": False, "max_length": 40},
    {"name": "plan", "type": "choice", "options": ["free", "pro"], "personal": False},
    {"name": "url", "type": "url", "personal": False},
    {"name": "ip", "type": "ip"},
]
EVENTS = [
    {"name": "signup", "properties": ["plan"]},
    {"name": "outbound", "properties": ["url"]},
    {"name": "download", "properties": ["url"]},
]


def with_events(**changes):
    return variant(**{"fields": EVENT_FIELDS, "events": EVENTS, **changes})


def doc(declaration) -> DatasetDoc:
    now = datetime(2026, 11, 27, tzinfo=UTC)
    return DatasetDoc.model_validate(
        {**declaration, "tenant": "t1", "id": "site", "created_at": now, "updated_at": now}
    )


def test_a_dataset_declares_its_events_and_their_properties():
    dataset = Dataset.model_validate(with_events())
    assert [event.name for event in dataset.events] == ["signup", "outbound", "download"]
    assert dataset.event("signup").properties == ("plan",)
    assert dataset.event("unknown") is None
    assert dataset.event_properties == {"plan", "url"}
    assert Dataset.model_validate(variant()).events == ()  # datasets stored before events load without any


def without_event_field():
    return [spec for spec in EVENT_FIELDS if spec["name"] != "event"]


def replaced(name, **changes):
    return [{**spec, **changes} if spec["name"] == name else spec for spec in EVENT_FIELDS]


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (with_events(fields=without_event_field()), "optional string field event"),
        (with_events(fields=replaced("event", required=True)), "optional string field event"),
        (with_events(fields=replaced("event", type="integer", max_length=None)), "optional string field event"),
        (with_events(events=[{"name": "signup", "properties": ["colour"]}]), "must be a declared field"),
        (with_events(events=[{"name": "signup", "properties": ["page_url"]}]), "filled by the pixel"),
        (with_events(events=[{"name": "signup", "properties": ["visitor"]}]), "filled by the pixel"),
        (with_events(events=[{"name": "signup", "properties": ["ip"]}]), "filled by the pixel"),
        (with_events(events=[{"name": "signup", "properties": ["event"]}]), "filled by the pixel"),
        (with_events(fields=replaced("plan", required=True)), "must not be a required field"),
        (with_events(events=[{"name": "signup"}, {"name": "signup"}]), "event names repeat"),
        (with_events(events=[{"name": "signup", "properties": ["plan", "plan"]}]), "properties repeat"),
        (with_events(events=[{"name": "Sign Up"}]), "should match pattern"),
        (with_events(events=[{"name": "signup", "colour": "red"}]), "Extra inputs are not permitted"),
        (with_events(events=[{"name": f"e{n}"} for n in range(51)]), "at most 50"),
        (with_events(capability="webform", legal_basis="contract"), "pixel datasets only"),
    ],
)
def test_event_declarations_that_cannot_work_are_refused_with_a_422_naming_why(bad, reason):
    with pytest.raises(Unprocessable) as caught:
        validate_model(Dataset, bad, "invalid_dataset", "dataset")
    assert caught.value.status == 422
    assert any(reason in problem["reason"] for problem in caught.value.body()["errors"]), caught.value.body()


def test_an_event_keeps_its_declared_properties_under_their_field_names():
    dataset = doc(with_events())
    values = event_values(dataset, {"event": "signup", "page_url": "https://x.example/", "p.plan": "pro"})
    assert values == {"event": "signup", "page_url": "https://x.example/", "plan": "pro"}


def test_an_undeclared_property_keeps_a_name_no_field_has_so_the_store_drops_and_counts_it():
    dataset = doc(with_events())
    values = event_values(dataset, {"event": "signup", "p.plan": "pro", "p.colour": "red", "p.url": "https://y/"})
    assert values is not None
    assert {key: value for key, value in values.items() if key in dataset.field_names} == {
        "event": "signup",
        "plan": "pro",
    }
    assert sorted(key for key in values if key not in dataset.field_names) == ["p.colour", "p.url"]


def test_an_event_property_is_kept_only_from_an_event_that_lists_it():
    dataset = doc(with_events())
    # A page view, or an event's property under its plain name, does not fill it.
    assert "plan" not in event_values(dataset, {"page_url": "https://x.example/", "plan": "pro"})
    assert "plan" not in event_values(dataset, {"event": "signup", "plan": "pro"})
    assert "url" not in event_values(dataset, {"event": "signup", "p.url": "https://y.example/"})
    assert event_values(dataset, {"event": "outbound", "p.url": "https://y.example/"})["url"] == "https://y.example/"


def test_an_undeclared_event_is_not_kept_at_all():
    assert event_values(doc(with_events()), {"event": "purchase", "page_url": "https://x.example/"}) is None
    # A dataset without events keeps page views as before, and no event.
    plain = doc(variant())
    assert event_values(plain, {"page_url": "https://x.example/", "visitor": "v"}) == {
        "page_url": "https://x.example/",
        "visitor": "v",
    }
    assert event_values(plain, {"event": "signup", "page_url": "https://x.example/"}) is None


def beacon(body: object, content_type: str | None = "text/plain;charset=UTF-8", max_bytes: int = 65536):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return beacon_params(raw, content_type, max_bytes)


def test_a_beacon_body_gives_the_parameters_of_a_get_query():
    assert beacon({"page_url": "https://x.example/", "event": "signup", "p.plan": "pro"}) == {
        "page_url": "https://x.example/",
        "event": "signup",
        "p.plan": "pro",
    }
    assert beacon({"n": 3, "ok": True, "gone": None, "f": 1.5}, "application/json") == {
        "n": "3",
        "ok": "true",
        "f": "1.5",
    }
    assert beacon({"a": "b"}, None) == {"a": "b"}  # a Blob without a type


@pytest.mark.parametrize(
    ("body", "content_type", "error", "code"),
    [
        (b"page_url=https%3A%2F%2Fx.example%2F", "text/plain", BadRequest, "invalid_json"),
        (b"", "text/plain", BadRequest, "invalid_json"),
        (b'["page_url"]', "text/plain", BadRequest, "invalid_beacon"),
        (b'{"page_url": {"nested": "x"}}', "text/plain", BadRequest, "invalid_beacon"),
        (b'{"page_url": [[["hidden-value"]]]}', "text/plain", BadRequest, "invalid_json"),
        (b'{"n": 1e999}', "text/plain", BadRequest, "invalid_json"),
        (b"\xff\xfe", "text/plain", BadRequest, "invalid_json"),
        (json.dumps({f"k{n}": "v" for n in range(MAX_BEACON_PARAMS + 1)}).encode(), None, BadRequest, "invalid_beacon"),
        (b'{"a": "b"}', "multipart/form-data; boundary=x", UnsupportedMediaType, "unsupported_media_type"),
        (b'{"a": "' + b"x" * 70000 + b'"}', "text/plain", PayloadTooLarge, "body_too_large"),
    ],
)
def test_a_body_that_is_no_hit_is_a_4xx_naming_the_problem_never_a_value(body, content_type, error, code):
    with pytest.raises(error) as caught:
        beacon(body, content_type)
    assert caught.value.code == code and 400 <= caught.value.status < 500
    assert "x.example" not in caught.value.detail and "hidden-value" not in caught.value.detail


def test_the_notice_url_sits_next_to_the_pixel_endpoint():
    assert notice_url("https://h.example/api/px/contoso/pricing") == "https://h.example/api/notice/contoso/pricing"
