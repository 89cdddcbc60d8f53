"""The $batch format, built and read without a network: upserts by alternate key, change sets, answers, errors."""

import email
import email.policy
import json
from datetime import UTC, datetime

import pytest

from shared.dataverse.odata import (
    CONTINUE_ON_ERROR,
    REMOVED,
    AnswerUnreadable,
    Upsert,
    build_batch,
    entity_names,
    parse_retry_after,
    read_answer,
    scrub_message,
    upsert_path,
)

ORG = "https://contoso.crm4.dynamics.com/"
IDS = ["20261123T100000000000Z-0123456789abcdef", "20261123T100000000001Z-fedcba9876543210"]
ROW = "3fa85f64-5717-4562-b3fc-2c963f66afa6"


def parsed(headers: dict[str, str], body: bytes) -> email.message.Message:
    """The batch as a standard MIME parser reads it (what a server does)."""
    return email.message_from_bytes(
        b"Content-Type: " + headers["Content-Type"].encode() + b"\r\n\r\n" + body, policy=email.policy.HTTP
    )


def operations(message: email.message.Message) -> list[tuple[str | None, str, dict]]:
    found = []
    for change_set in message.iter_parts():
        for part in change_set.iter_parts():
            payload = part.get_payload(decode=True)
            request_line, _, rest = payload.partition(b"\r\n")
            body = rest.partition(b"\r\n\r\n")[2]
            found.append((part.get("Content-ID"), request_line.decode(), json.loads(body)))
    return found


def test_an_atomic_batch_is_one_change_set_of_upserts_by_alternate_key():
    ops = [Upsert(IDS[0], {"pc_page": "https://a.example/"}), Upsert(IDS[1], {"pc_page": "https://b.example/"})]
    headers, body = build_batch(ORG, "leads", "pc_recordid", ops, isolated=False)
    assert headers["OData-Version"] == "4.0" and "Prefer" not in headers
    message = parsed(headers, body)
    change_sets = list(message.iter_parts())
    assert len(change_sets) == 1 and change_sets[0].get_content_type() == "multipart/mixed"
    assert operations(message) == [
        ("1", f"PATCH {ORG}api/data/v9.2/leads(pc_recordid='{IDS[0]}') HTTP/1.1", {"pc_page": "https://a.example/"}),
        ("2", f"PATCH {ORG}api/data/v9.2/leads(pc_recordid='{IDS[1]}') HTTP/1.1", {"pc_page": "https://b.example/"}),
    ]


def test_an_isolated_batch_has_one_change_set_per_upsert_and_continues_on_error():
    ops = [Upsert(IDS[0], {"a": 1}), Upsert(IDS[1], {"a": 2})]
    headers, body = build_batch(ORG, "leads", "pc_recordid", ops, isolated=True)
    assert headers["Prefer"] == CONTINUE_ON_ERROR
    message = parsed(headers, body)
    assert [len(list(cs.iter_parts())) for cs in message.iter_parts()] == [1, 1]
    assert [op[0] for op in operations(message)] == ["1", "2"]


def test_a_value_cannot_break_out_of_its_part():
    hostile = "x\r\n--batch_fake\r\nContent-Type: application/http\r\n\r\nDELETE /api/data/v9.2/accounts HTTP/1.1\r\n"
    headers, body = build_batch(ORG, "leads", "pc_recordid", [Upsert(IDS[0], {"lastname": hostile})], isolated=False)
    assert operations(parsed(headers, body)) == [
        ("1", f"PATCH {ORG}api/data/v9.2/leads(pc_recordid='{IDS[0]}') HTTP/1.1", {"lastname": hostile})
    ]


def test_quotes_in_a_key_value_are_doubled():
    assert upsert_path("leads", "pc_key", "o'brien") == "leads(pc_key='o''brien')"


def answer_part(content_id: int | None, status_line: str, *lines: str) -> str:
    head = ["Content-Type: application/http", "Content-Transfer-Encoding: binary"]
    if content_id is not None:
        head.append(f"Content-ID: {content_id}")
    return "\r\n".join([*head, "", status_line, "OData-Version: 4.0", *lines])


def multipart(boundary: str, parts: list[str]) -> bytes:
    return ("".join(f"--{boundary}\r\n{part}\r\n" for part in parts) + f"--{boundary}--\r\n").encode()


def test_a_successful_change_set_answer_gives_each_row_id():
    inner = multipart(
        "changesetresponse_1",
        [
            answer_part(1, "HTTP/1.1 204 No Content", f"OData-EntityId: {ORG}api/data/v9.2/leads({ROW})", ""),
            answer_part(2, "HTTP/1.1 204 No Content", f"OData-EntityId: {ORG}api/data/v9.2/leads({ROW.upper()})", ""),
        ],
    ).decode()
    body = multipart("batchresponse_1", [f"Content-Type: multipart/mixed; boundary=changesetresponse_1\r\n\r\n{inner}"])
    answer = read_answer(
        200, {"Content-Type": "multipart/mixed; boundary=batchresponse_1", "x-ms-dop-hint": "5"}, body, 2
    )
    assert answer.status == 200 and answer.dop_hint == 5
    assert [(r.content_id, r.status, r.row_id) for r in answer.results] == [(1, 204, ROW), (2, 204, ROW)]


def test_a_refused_operation_carries_its_odata_error():
    error = json.dumps({"error": {"code": "0x80044331", "message": "The length of the 'lastname' attribute ..."}})
    body = multipart(
        "batchresponse_2",
        [answer_part(7, "HTTP/1.1 400 Bad Request", "Content-Type: application/json", "", error)],
    )
    answer = read_answer(400, {"content-type": 'multipart/mixed; boundary="batchresponse_2"'}, body, 10)
    (result,) = answer.results
    assert (result.content_id, result.status, result.error_code) == (7, 400, "0x80044331")
    assert result.error_message.startswith("The length")
    assert result.row_id is None


def test_a_plain_error_answer_is_the_batch_error():
    body = json.dumps({"error": {"code": "0x80072322", "message": "Number of requests exceeded the limit"}}).encode()
    answer = read_answer(429, {"Content-Type": "application/json", "Retry-After": "42"}, body, 3)
    assert (answer.status, answer.results, answer.error_code, answer.retry_after) == (429, [], "0x80072322", 42.0)


@pytest.mark.parametrize(
    "body",
    [
        b"no boundary at all",
        b"--batchresponse_3\r\nContent-Type: application/http\r\n\r\nnot a status line\r\n--batchresponse_3--",
        b"--batchresponse_3\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 204 No Content\r\n",  # never closed
    ],
)
def test_an_unreadable_answer_is_refused(body):
    with pytest.raises(AnswerUnreadable):
        read_answer(200, {"Content-Type": "multipart/mixed; boundary=batchresponse_3"}, body, 5)


def test_more_answers_than_operations_are_refused():
    parts = [answer_part(n, "HTTP/1.1 204 No Content", "") for n in range(1, 4)]
    with pytest.raises(AnswerUnreadable):
        read_answer(200, {"Content-Type": "multipart/mixed; boundary=b"}, multipart("b", parts), 2)


def test_retry_after_in_seconds_or_as_a_date():
    now = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("Mon, 23 Nov 2026 10:00:30 GMT", now) == 30.0
    assert parse_retry_after("Mon, 23 Nov 2026 09:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("99999999") == 86400.0


def test_a_message_keeps_names_and_loses_every_value():
    names = entity_names("leads", ["lastname", "numberofemployees"])
    message = "Cannot convert the literal 'Jane Q. Doe' to the expected type 'Edm.Int32'."
    assert (
        scrub_message(message, ["Jane Q. Doe"], names)
        == f"Cannot convert the literal '{REMOVED}' to the expected type '{REMOVED}'."
    )
    length = "The length of the 'lastname' attribute of the 'lead' entity exceeded the maximum allowed length of '20'."
    assert scrub_message(length, ["Jane Q. Doe"], names) == length
    assert "jane@example.com" not in scrub_message("Duplicate: jane@example.com exists", ["jane@example.com"], names)
    assert "20" not in scrub_message("Value '20' is out of range", [20], names)  # a number that was sent
    assert scrub_message("naïve\r\nline", [], names) == "na ve line"
    assert len(scrub_message("x" * 5000, [], names)) == 500
