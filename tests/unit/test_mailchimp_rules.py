"""PowerMailChimp's rules without HTTP or storage: the datasets' options, merge fields, Mailchimp's answers, the
webhook's form, the member hash."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from pydantic import ValidationError

from shared.core.bodies import validate_model
from shared.core.errors import BadRequest, Unprocessable, UnsupportedMediaType
from shared.mailchimp.client import Answer, data_centre, subscriber_hash
from shared.mailchimp.connection import ConnectionIn
from shared.mailchimp.members import MembersIn, created, merge_fields
from shared.mailchimp.webhook import event_values, parse_event
from shared.registry.models import Dataset, DatasetDoc

CONTROLLER = {"name": "Contoso Ltd", "email": "privacy@contoso.example"}
MEMBERS: dict[str, Any] = {
    "capability": "mailchimp",
    "purpose": "Keep the newsletter audience in step",
    "legal_basis": "consent",
    "retention_days": 1,
    "controller": CONTROLLER,
    "fields": [{"name": "fname", "type": "string", "max_length": 5}, {"name": "age", "type": "integer"}],
    "mailchimp_audiences": ["a1b2c3d4e5"],
}
EVENTS: dict[str, Any] = {
    "capability": "mailchimpevent",
    "purpose": "Subscriptions back into the CRM",
    "legal_basis": "legitimate_interest",
    "retention_days": 7,
    "controller": CONTROLLER,
    "fields": [{"name": "event", "type": "string"}, {"name": "email", "type": "email"}],
    "campaign_activity": True,
}


def doc(body: dict[str, Any]) -> DatasetDoc:
    from datetime import UTC, datetime

    now = datetime(2026, 11, 27, tzinfo=UTC)
    return DatasetDoc(
        **Dataset.model_validate(body).model_dump(), tenant="t-1", id="news", created_at=now, updated_at=now
    )


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"mailchimp_audiences": []}, "needs mailchimp_audiences"),
        ({"mailchimp_audiences": ["../x"]}, "mailchimp_audiences"),
        ({"fields": [{"name": "a_long_field_name", "type": "string"}]}, "at most 10"),
        ({"capability": "pixel"}, "mailchimp_audiences is an option of mailchimp datasets only"),
    ],
)
def test_a_mailchimp_dataset_names_its_audiences_and_short_merge_fields(changes, reason):
    with pytest.raises(ValidationError, match=reason):
        Dataset.model_validate({**MEMBERS, **changes})


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"fields": [{"name": "merges", "type": "string"}]}, "may declare only"),
        ({"fields": [{"name": "email", "type": "string"}]}, "has type email"),
        ({"capability": "pixel", "fields": [{"name": "x", "type": "string"}]}, "campaign_activity is an option"),
    ],
)
def test_a_mailchimpevent_dataset_declares_from_its_fixed_fields(changes, reason):
    with pytest.raises(ValidationError, match=reason):
        Dataset.model_validate({**EVENTS, **changes})


def test_merge_fields_are_the_declared_ones_under_their_tags_validated_and_the_others_named():
    dropped: set[str] = set()
    kept = merge_fields(doc(MEMBERS), 0, {"FNAME": "Ada", "age": "36", "shoe": "38", "prénom": "x"}, dropped)
    assert kept == {"FNAME": "Ada", "AGE": 36}
    assert dropped == {"shoe", "prénom"}
    with pytest.raises(Unprocessable) as refused:
        merge_fields(doc(MEMBERS), 3, {"fname": "Adalovelace"}, set())
    assert refused.value.extra["errors"][0]["field"] == "members[3].merge_fields.fname"
    assert "Adalovelace" not in refused.value.detail


def test_a_members_call_is_bounded_and_strict():
    member = {"email": "a@example.com"}
    MembersIn.model_validate({"list_id": "a1b2c3d4e5", "members": [member] * 500})
    for bad in (
        {"list_id": "a1b2c3d4e5", "members": [member] * 501},
        {"list_id": "a1b2c3d4e5", "members": []},
        {"list_id": "a1b2c3d4e5", "members": [{**member, "status": "vip"}]},
        {"list_id": "a1b2c3d4e5", "members": [{**member, "extra": 1}]},
        {"list_id": "a1b2c3d4e5", "members": [{**member, "merge_fields": {"a": {"nested": 1}}}]},
    ):
        with pytest.raises(ValidationError):
            MembersIn.model_validate(bad)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"last_changed": "2026-11-27T10:00:00+00:00", "timestamp_opt": "2026-11-27T10:00:00+00:00"}, True),
        ({"last_changed": "2026-11-27T10:00:00+00:00", "timestamp_opt": "", "timestamp_signup": ""}, True),
        ({"last_changed": "2026-11-27T10:00:05+00:00", "timestamp_opt": "2026-11-27T10:00:00+00:00"}, False),
        ({"last_changed": "2026-11-27T10:00:05+00:00", "timestamp_signup": "2025-01-01T00:00:00+00:00"}, False),
    ],
)
def test_created_or_updated_is_read_from_mailchimps_times(body, expected):
    assert created(Answer(200, body, None)) is expected


def test_mailchimps_refusal_is_its_title_and_the_fields_it_names_never_a_value():
    answer = Answer(400, {"title": "Invalid Resource", "detail": "ada@example.com looks fake", "errors": [
        {"field": "email_address", "message": "ada@example.com is invalid"}]}, None)  # fmt: skip
    assert answer.reason == "Invalid Resource (email_address)"
    assert Answer(429, {}, 3).throttled and Answer(503, {}, None).throttled and not Answer(404, {}, None).throttled


def test_the_member_id_is_the_md5_of_the_lower_cased_address_and_the_key_names_its_data_centre():
    assert subscriber_hash(" Ada@Example.COM ") == hashlib.md5(b"ada@example.com").hexdigest()  # noqa: S324 (Mailchimp's id)
    assert data_centre("0123456789abcdef0123456789abcdef-us21") == "us21"
    with pytest.raises(Unprocessable) as refused:  # as the manage API reads it: the key is never echoed
        validate_model(ConnectionIn, {"api_key": "secret-looking-value"}, "invalid_connection", "connection")
    assert "secret-looking-value" not in str(refused.value.body())
    assert refused.value.extra["errors"][0]["field"] == "api_key"


def test_a_webhook_event_keeps_what_maps_to_fields_and_the_rest_stays_to_be_counted():
    form = parse_event(
        b"type=upemail&fired_at=2026-11-27+09%3A12%3A00&data%5Blist_id%5D=a1&data%5Bold_email%5D=o%40example.com"
        b"&data%5Bnew_email%5D=n%40example.com&data%5Bmerges%5D%5BFNAME%5D=Ada",
        "application/x-www-form-urlencoded; charset=utf-8",
        65536,
    )
    values = event_values(form)
    assert (
        values["event"] == "upemail" and values["email"] == "o@example.com" and values["new_email"] == "n@example.com"
    )
    assert values["occurred_at"] == "2026-11-27T09:12:00+00:00" and values["list_id"] == "a1"
    assert values["data[merges][FNAME]"] == "Ada"  # undeclared: the store drops and counts it


def test_a_webhook_body_that_is_not_an_event_is_refused():
    with pytest.raises(UnsupportedMediaType):
        parse_event(b"{}", "application/json", 65536)
    with pytest.raises(BadRequest):
        parse_event("&".join(f"k{i}=v" for i in range(201)).encode(), "application/x-www-form-urlencoded", 65536)
    with pytest.raises(Unprocessable):
        event_values({"type": "delete-everything", "fired_at": "2026-11-27 09:12:00"})
    with pytest.raises(Unprocessable):
        event_values({"type": "subscribe", "fired_at": "yesterday"})
