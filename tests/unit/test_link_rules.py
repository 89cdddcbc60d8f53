"""Tracked links: the link dataset's declaration, link ids, target URLs, expiry, and who counts as a visitor.
Storage, the redirect and the browser are in tests/integration/test_links.py and test_http_links.py."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from shared.capture.personal_state import TRACKED_LINK, parse_state_name
from shared.capture.subjects import CONTACT_ID, request_tags, subject_tag
from shared.core.errors import Unprocessable
from shared.links.tracked import (
    LINK_ID_PATTERN,
    Link,
    LinkRequest,
    checked_target,
    is_link_id,
    link_blob,
    new_link_id,
)
from shared.registry.delivery_mapping import DeliveryMapping, check_mapping
from shared.registry.models import Dataset, DatasetDoc
from tests.factories import ASSETS_ORIGIN, CONTACT, LINKS

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
MASTER = "m" * 40


def links(**changes):
    return {**LINKS, **changes}


# --- the dataset ------------------------------------------------------------------------------------------


def test_a_link_dataset_with_every_allowed_field_is_valid():
    assert Dataset.model_validate(LINKS).capability == "link"


@pytest.mark.parametrize(
    ("fields", "subject"),
    [
        ([{"name": "email", "type": "email"}], None),  # not a field of a visit
        ([{"name": "ip", "type": "string"}], None),  # an ip is of type ip, stored truncated
        ([{"name": "contact_id", "type": "string"}], None),  # the contact, but not as the subject
        ([{"name": "link_id", "type": "string"}], "link_id"),  # a subject other than the contact
    ],
)
def test_a_link_dataset_declares_only_the_visit_and_the_contact_as_subject(fields, subject):
    with pytest.raises(ValidationError):
        Dataset.model_validate(links(fields=fields, subject_field=subject))


def test_a_link_dataset_without_the_contact_has_no_subject_field():
    doc = Dataset.model_validate(links(fields=[{"name": "link_id", "type": "string"}], subject_field=None))
    assert doc.subject_field is None


@pytest.mark.parametrize("option", [{"require_signature": True}, {"keep_url_query": True}])
def test_pixel_options_are_refused_on_a_link_dataset(option):
    with pytest.raises(ValidationError):
        Dataset.model_validate(links(**option))


def test_link_records_can_be_delivered_with_their_capture_times():
    mapping = DeliveryMapping(
        mode="dataverse", table="visits", key="pc_id", columns={"contact_id": "contactid"}, meta={"captured_at": "at"}
    )
    check_mapping(mapping, "link", ["contact_id"], consent=False)


# --- ids ---------------------------------------------------------------------------------------------------


def test_new_link_ids_are_random_and_match_the_pattern():
    ids = {new_link_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(is_link_id(value) and len(value) >= 22 for value in ids)
    assert all(re.fullmatch(LINK_ID_PATTERN, value) for value in ids)


@pytest.mark.parametrize(
    "value",
    ["", "short", "a" * 21, "a" * 65, "a" * 23 + "/", "a" * 23 + ".", "../" + "a" * 22, "a" * 24 + "\n", None, 7],
)
def test_anything_else_is_no_link_id(value):
    assert not is_link_id(value)


def test_a_link_is_kept_per_tenant_and_read_back_as_a_tracked_link():
    name = link_blob("contoso", "A" * 24)
    assert name == "contoso/links/" + "A" * 24 + ".json"
    assert parse_state_name("contoso", name) == ("", TRACKED_LINK.kind)
    assert parse_state_name("other", name) is None


# --- the request -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"target_url": ""},
        {"target_url": "https://a.example/" + "x" * 2048},
        {"target_url": "https://a.example/", "contact_id": "has space"},
        {"target_url": "https://a.example/", "contact_id": "x" * 129},
        {"target_url": "https://a.example/", "expires_at": "2026-12-01T10:00:00"},  # no zone
        {"target_url": "https://a.example/", "redirect": "https://evil.example/"},
    ],
)
def test_bad_requests_are_refused(body):
    with pytest.raises(ValidationError):
        LinkRequest.model_validate(body)


@pytest.mark.parametrize(
    "url",
    [
        "http://assets.contoso.example/a.pdf",  # http off this machine
        "javascript:alert(1)",
        "//assets.contoso.example/a.pdf",  # not absolute
        "https://evil.example\\@assets.contoso.example/",  # a browser reads another host
        "https://user@assets.contoso.example/",
        "https://assets.contoso.example/a b",
        "https://assets.contoso.example/\r\nSet-Cookie:x=1",  # never a header of the answer
        "ftp://assets.contoso.example/a.pdf",
    ],
)
def test_targets_are_absolute_https_urls_read_as_a_browser_reads_them(url):
    with pytest.raises(Unprocessable) as refused:
        checked_target(url, ())
    assert refused.value.body()["errors"][0]["field"] == "target_url"
    assert url not in str(refused.value.body())


def test_a_target_off_the_allowed_origins_is_refused_when_the_dataset_declares_them():
    with pytest.raises(Unprocessable):
        checked_target("https://evil.example/brochure.pdf", (ASSETS_ORIGIN,))
    assert checked_target(f"{ASSETS_ORIGIN}/b.pdf?v=2", (ASSETS_ORIGIN,)) == f"{ASSETS_ORIGIN}/b.pdf?v=2"
    assert checked_target("https://ANY.example/b.pdf", ()) == "https://any.example/b.pdf"
    assert checked_target("http://127.0.0.1:8080/b.pdf", ()) == "http://127.0.0.1:8080/b.pdf"


# --- the stored link ---------------------------------------------------------------------------------------


def test_a_link_answers_its_short_url_under_the_base_given():
    link = Link(
        id="B" * 24,
        tenant="contoso",
        dataset="assets",
        target_url=f"{ASSETS_ORIGIN}/b.pdf",
        contact_id=CONTACT,
        created_at=NOW,
        expires_at=NOW,
    )
    answer = link.public("https://packcloud-eu.example.net/api")
    assert answer["url"] == "https://packcloud-eu.example.net/api/go/contoso/" + "B" * 24
    assert answer["personal"] is True
    assert answer["expires_at"] == "2026-11-27T09:00:00Z"


def test_a_contact_request_finds_the_links_tag_whatever_the_dataset_declares():
    tag = subject_tag(MASTER, "contoso", CONTACT_ID, CONTACT)
    stamp = {"tenant": "contoso", "created_at": NOW, "updated_at": NOW}
    with_contact = DatasetDoc.model_validate({**LINKS, **stamp, "id": "assets"})
    without = DatasetDoc.model_validate(
        {**links(fields=[{"name": "link_id", "type": "string"}], subject_field=None), **stamp, "id": "shared"}
    )
    assert request_tags(MASTER, "contoso", [with_contact], CONTACT) == {tag}
    assert request_tags(MASTER, "contoso", [without], CONTACT) == {tag}


def test_the_powers_pack_can_be_registered():
    from shared.registration.engine import RegistrationIn
    from tests.factories import registration

    body = registration("0f8fad5b-d9cb-469f-a165-70867728950e", pack="powers", credentials=None)
    assert RegistrationIn.model_validate(body).pack == "powers"
