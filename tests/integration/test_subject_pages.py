"""Data-subject requests do bounded work per call: an export hands out a page of records and state at a time
and an erasure deletes a page at a time, each with `more` and a sealed `next_cursor`. Real capture store on
Azurite, with a page of a few items (the production size is a constructor argument)."""

from __future__ import annotations

import base64
import json

import pytest

from shared.capture.subjects import subject_tag
from shared.core.errors import BadRequest
from shared.lifecycle.subject_requests import PAGE_ITEMS, SubjectRequests
from shared.registry.models import Dataset, FieldSpec, TenantIn
from tests.factories import CALLBACK, MASTER_KEY, ORIGIN, all_blobs, blob_states, declaration

PAGE = 3
# One person as text in a pixel dataset and, normalised, as a phone number in a callback form: two tags.
SUBJECT = "+47 22 33 44 55"
OTHER = "+47 22 33 44 56"


def callback(services, tenant: str, phone: str, key: str | None) -> str:
    from shared.webform.intake import FormPost

    headers = {"origin": ORIGIN, "content-type": "application/json", **({"idempotency-key": key} if key else {})}
    answer = services.forms.submit(FormPost(tenant, "callback", json.dumps({"phone": phone}).encode(), headers))
    assert answer.status == 201, answer.body
    return answer.body["id"]


@pytest.fixture
def planted(services, tenant_id):
    """13 items of one subject under two tags in two datasets and both containers, and another person's."""
    services.registry.put_tenant(tenant_id, TenantIn())
    services.registry.put_dataset(tenant_id, "visits", Dataset.model_validate(declaration("string")))
    services.registry.put_dataset(tenant_id, "callback", Dataset.model_validate(CALLBACK))
    visits = services.capture.resolve(tenant_id, "visits", "pixel")
    mine = [services.capture.capture(visits, {"who": SUBJECT, "page": "p"}).record.id for _ in range(7)]
    mine += [callback(services, tenant_id, SUBJECT, f"callback-000{n}") for n in range(3)]  # and 3 markers
    theirs = [services.capture.capture(visits, {"who": OTHER, "page": "p"}).record.id for _ in range(2)]
    theirs.append(callback(services, tenant_id, OTHER, None))
    return tenant_id, sorted(mine), sorted(theirs)


def paged(services, page_items: int = PAGE) -> SubjectRequests:
    return services.subject_requests(page_items=page_items)


def export_all(requests: SubjectRequests, tenant: str, subject: str) -> list[dict]:
    answers, cursor = [], None
    while True:
        answer = requests.export(tenant, subject, cursor)
        answers.append(answer)
        assert answer["more"] == (answer["next_cursor"] is not None)
        if not answer["more"]:
            return answers
        cursor = answer["next_cursor"]
        assert len(answers) < 50


def held_ids(answers: list[dict]) -> list[str]:
    return [r["id"] for a in answers for d in a["datasets"].values() for r in d["records"]]


def test_the_production_page_is_the_documented_bound_and_the_services_use_it(services):
    assert PAGE_ITEMS == 500
    assert services.subject_requests()._page_items == PAGE_ITEMS
    with pytest.raises(ValueError, match="page_items"):
        SubjectRequests(services.storage, services.registry, services.audit, "k" * 40, page_items=0)


def test_an_export_larger_than_a_page_comes_in_pages_with_no_item_missed_or_repeated(services, planted):
    tenant, mine, _ = planted
    answers = export_all(paged(services), tenant, SUBJECT)
    assert len(answers) >= 5  # 10 records and 3 submission markers, three at a time
    assert all(a["record_count"] + a["state_count"] <= PAGE for a in answers)
    ids = held_ids(answers)
    assert sorted(ids) == mine and len(set(ids)) == len(ids)
    states = [s for a in answers for d in a["datasets"].values() for s in d["state"]]
    assert [s["kind"] for s in states] == ["submission_marker"] * 3
    forms = [r["id"] for a in answers for r in a["datasets"].get("callback", {}).get("records", [])]
    assert sorted(s["content"]["record"] for s in states) == sorted(forms) and len(forms) == 3
    assert sum(a["record_count"] for a in answers) == len(mine)
    # Every page is one audit entry with its own request id and the page's counts.
    entries = [e for e in services.audit.entries(tenant) if e["kind"] == "export"]
    assert [e["request"] for e in entries] == [a["request_id"] for a in answers]
    assert [e["records"] + e["state"] for e in entries] == [a["record_count"] + a["state_count"] for a in answers]


def test_one_export_call_does_the_same_work_however_many_records_the_subject_has(services, planted):
    tenant, _, _ = planted
    requests = paged(services)
    requests.export(tenant, SUBJECT)  # the registry cache is warm for both measurements

    def storage_requests(subject: str) -> int:
        before = services.storage.transport.sent
        requests.export(tenant, subject)
        return services.storage.transport.sent - before

    few = storage_requests(OTHER)  # three records: one page
    visits = services.capture.resolve(tenant, "visits", "pixel")
    for _ in range(20):
        services.capture.capture(visits, {"who": OTHER, "page": "p"})
    assert storage_requests(OTHER) <= few + 1  # 23 records: still one page of three, not 23 reads


@pytest.mark.parametrize("follow_cursor", [True, False])
def test_an_erasure_larger_than_a_page_deletes_a_page_a_call_until_more_is_false(
    services, planted, azurite, follow_cursor
):
    tenant, mine, theirs = planted
    requests = paged(services)
    answers, cursor = [], None
    while True:
        erased = requests.erase(tenant, SUBJECT, cursor)
        answers.append(erased)
        assert erased.records + erased.state <= PAGE
        if not erased.more:
            break
        cursor = erased.next_cursor if follow_cursor else None
        assert len(answers) < 50
    assert len(answers) >= 5
    assert sum(a.records for a in answers) == len(mine) and sum(a.state for a in answers) == 3
    left = sorted(json.loads(body)["id"] for body in all_blobs(azurite, "records", f"{tenant}/").values())
    assert left == theirs
    assert all_blobs(azurite, "state", f"{tenant}/") == {}
    again = requests.erase(tenant, SUBJECT)  # repeatable: nothing left, nothing more
    assert (again.records, again.state, again.more) == (0, 0, False)
    assert export_all(requests, tenant, SUBJECT)[0]["record_count"] == 0


def forged(cursor: str) -> dict[str, str]:
    """Cursors a caller could send instead of the one it was given."""
    middle = len(cursor) // 2
    flipped = cursor[:middle] + ("A" if cursor[middle] != "A" else "B") + cursor[middle + 1 :]
    unsealed = b"\0" * 12 + json.dumps([0, None, None]).encode() + b"\0" * 16
    return {
        "garbage": "not a cursor",
        "quote": f"{cursor[:-1]}'",
        "too_short": cursor[:42],
        "truncated": cursor[:-4],
        "not_base64_length": cursor[: len(cursor) - (len(cursor) % 4) + 1],
        "too_long": "A" * 9000,
        "tampered": flipped,
        "unsealed": base64.urlsafe_b64encode(unsealed).rstrip(b"=").decode(),
    }


def opened(cursor: str) -> bytes:
    return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))


def test_a_cursor_shows_no_blob_name_nor_the_subjects_hash(services, planted):
    """Its position holds storage markers and blob names, and a state blob's name holds the subject's hash."""
    tenant, _, _ = planted
    answers = export_all(paged(services, 1), tenant, SUBJECT)
    cursors = [a["next_cursor"] for a in answers if a["next_cursor"]]
    assert len(cursors) >= 12  # one item an answer; the last may say more when only empty queries follow
    tags = [subject_tag(MASTER_KEY, tenant, FieldSpec(name="who", type="string"), SUBJECT)]
    tags.append(subject_tag(MASTER_KEY, tenant, FieldSpec(name="phone", type="phone"), SUBJECT))
    for cursor in cursors:
        raw = opened(cursor)
        assert tenant.encode() not in raw and b"callback" not in raw and b"visits" not in raw
        assert not any(tag.encode() in raw or tag in cursor for tag in tags)
    assert len(set(cursors)) == len(cursors)


def test_a_cursor_that_this_request_was_not_given_is_refused_before_anything_changes(services, planted, azurite):
    tenant, _, _ = planted
    requests = paged(services)
    first = requests.export(tenant, SUBJECT)
    cursor = first["next_cursor"]
    erase_cursor = requests.erase(tenant, SUBJECT).next_cursor
    other = requests.export(tenant, OTHER)["next_cursor"]
    assert cursor and erase_cursor and other
    before = blob_states(azurite, ("records", "state", "audit"), within=(tenant,))
    for action, of_the_other_action in (("export", erase_cursor), ("erase", cursor)):
        cases = {**forged(cursor), "another_subject": other, "another_action": of_the_other_action}
        for name, bad in cases.items():
            with pytest.raises(BadRequest) as caught:
                getattr(requests, action)(tenant, SUBJECT, bad)
            assert caught.value.code == "invalid_cursor", name
            assert bad not in caught.value.detail and SUBJECT not in caught.value.detail
    assert blob_states(azurite, ("records", "state", "audit"), within=(tenant,)) == before
    # The cursor given still goes on, with any spelling of the same subject, after the first page.
    following = requests.export(tenant, f"  {SUBJECT} ", cursor)
    assert following["record_count"] + following["state_count"] == PAGE
    assert not set(held_ids([following])) & set(held_ids([first]))


def test_the_report_counts_what_is_held_up_to_its_bound_with_the_same_work_however_much_is_held(services, planted):
    from shared.lifecycle.report import processing_record
    from shared.lifecycle.report_page import render_html

    tenant, _, _ = planted
    doc = services.registry.get_tenant(tenant)

    def report() -> tuple[dict, int]:
        before = services.storage.transport.sent
        made = processing_record(doc, services.registry, services.storage, services.audit, services.clock, count_max=4)
        return {d["dataset"]: d for d in made["datasets"]}, services.storage.transport.sent - before

    by_id, work = report()
    assert (by_id["visits"]["records_held"], by_id["visits"]["records_held_more"]) == (4, True)  # 9 held
    assert (by_id["callback"]["records_held"], by_id["callback"]["records_held_more"]) == (4, False)
    (markers,) = by_id["callback"]["personal_state"]
    assert (markers["kind"], markers["held"], markers["held_more"]) == ("submission_marker", 3, False)
    visits = services.capture.resolve(tenant, "visits", "pixel")
    for _ in range(10):
        services.capture.capture(visits, {"who": OTHER, "page": "p"})
    by_id, more_work = report()
    assert by_id["visits"]["records_held"] == 4 and more_work == work  # 19 held: the same list request
    made = processing_record(doc, services.registry, services.storage, services.audit, services.clock, count_max=4)
    page = render_html(made)
    assert "4 or more" in page
