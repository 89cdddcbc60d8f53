"""The bounded parsers every request goes through: JSON (depth, number size, finite numbers), whole numbers in
text (ASCII digits only), multipart forms (parts, headers, parameters), each refusing with a 4xx, never raising
anything that would be a 500."""

from __future__ import annotations

import json

import pytest

from shared.autonumber.format import parse_format
from shared.core.bodies import MAX_JSON_DEPTH, MAX_NUMBER_CHARS, parse_json, parse_json_object
from shared.core.errors import BadRequest, PackCloudError, Unprocessable, UnsupportedMediaType
from shared.core.fieldtypes import InvalidValue, normalise
from shared.core.numbers import ascii_int
from shared.webform.body import MAX_FIELDS, MAX_PART_HEADER_BYTES, parse_form
from tests.factories import UNICODE_DIGITS


def nested(depth: int, opener: bytes = b"[", closer: bytes = b"]") -> bytes:
    return opener * depth + b"1" + closer * depth


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 50_000,
        nested(50_000),
        b'{"a":' * 20_000 + b"1" + b"}" * 20_000,
        b'{"a":' + b"9" * 5_000 + b"}",
        b'{"a":-' + b"9" * 4_301 + b"}",
        b'{"a":1' + b"0" * 5_000 + b".5}",
        b'{"a":1e999}',
        b'{"a":-1e99999}',
        b'{"a":NaN}',
        b'{"a":Infinity}',
        b'{"a":"' + b'\\"' * 20_000,
    ],
    ids=["open-50000", "deep-50000", "objects-20000", "int-5000", "int-4301", "float-5000", "1e999", "-1e99999",
         "nan", "infinity", "unterminated-escapes"],
)  # fmt: skip
def test_hostile_json_is_a_400_invalid_json(body):
    with pytest.raises(BadRequest) as caught:
        parse_json_object(body, "application/json", 1_000_000)
    assert caught.value.code == "invalid_json"
    assert "9999" not in caught.value.detail


def test_depth_is_bounded_exactly_and_brackets_in_strings_do_not_count():
    assert parse_json(nested(MAX_JSON_DEPTH)) is not None
    with pytest.raises(BadRequest):
        parse_json(nested(MAX_JSON_DEPTH + 1))
    assert parse_json(nested(MAX_JSON_DEPTH, b'{"k":', b"}")) is not None
    with pytest.raises(BadRequest):
        parse_json(nested(MAX_JSON_DEPTH + 1, b'{"k":', b"}"))
    text = json.dumps({"a": "[" * 1_000 + '\\"{' * 500, "b": ["]]]", '"', "\\"]})
    assert parse_json(text.encode()) == json.loads(text)
    with pytest.raises(BadRequest):
        parse_json(b'{"a": [{"b": 1}]}', max_depth=1)


def test_numbers_up_to_the_bound_are_read_as_json_reads_them():
    longest = "-" + "9" * (MAX_NUMBER_CHARS - 1)
    assert parse_json(f'{{"a": {longest}, "b": 1.5e-300, "c": 0}}'.encode()) == {
        "a": int(longest),
        "b": 1.5e-300,
        "c": 0,
    }
    with pytest.raises(BadRequest):
        parse_json(f'{{"a": {longest}9}}'.encode())
    # A long run of digits inside a string is text, not a number.
    assert parse_json(b'{"a": "' + b"9" * 5_000 + b'"}') == {"a": "9" * 5_000}


@pytest.mark.parametrize("text", [*UNICODE_DIGITS, "", " 1", "1 ", "+1", "-1", "1_0", "0x10", "1.0", "1" * 19])
def test_ascii_int_refuses_anything_but_ascii_digits(text):
    assert ascii_int(text, 0, 10**18) is None


def test_ascii_int_reads_plain_numbers_within_bounds():
    assert ascii_int("007", 1, 1000) == 7
    assert ascii_int("1000", 1, 1000) == 1000
    assert ascii_int("1001", 1, 1000) is None
    assert ascii_int("0", 1, 1000) is None
    assert ascii_int(None, 1, 1000) is None


@pytest.mark.parametrize("argument", [*UNICODE_DIGITS, "9" * 80])
def test_a_format_argument_in_unicode_digits_is_a_422(argument):
    with pytest.raises(Unprocessable) as caught:
        parse_format(f"F-{{SEQNUM:{argument}}}")
    assert caught.value.code == "invalid_format"


@pytest.mark.parametrize("raw", ["١٢", "1_000", "²", "1" * 500, "1e99999", "0x1p3"])
def test_a_number_field_takes_ascii_decimal_text_only(raw):
    with pytest.raises(InvalidValue):
        normalise("number", raw)
    assert normalise("number", " -1.5e3 ") == -1500.0


@pytest.mark.parametrize("raw", [10**18, -(10**18), 1e18, "1" * 19])
def test_an_integer_field_holds_at_most_18_digits(raw):
    with pytest.raises(InvalidValue):
        normalise("integer", raw)
    assert normalise("integer", 10**18 - 1) == 10**18 - 1


BOUNDARY = "b0undary"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


def part(headers: str, value: str = "x") -> str:
    return f"--{BOUNDARY}\r\n{headers}\r\n\r\n{value}\r\n"


def form(*parts: str) -> bytes:
    return ("".join(parts) + f"--{BOUNDARY}--\r\n").encode()


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        # The review's shape: a Content-Disposition whose parameters are a run of quoted semicolons.
        (form(part('Content-Disposition: form-data; name="a"; b=' + '";' * 30_000)), 400, "invalid_form"),
        (form(part('Content-Disposition: form-data; name="' + "n" * MAX_PART_HEADER_BYTES + '"')), 400, "invalid_form"),
        (form(part('Content-Disposition: form-data; name="a"; p=1; q=2; r=3; s=4')), 400, "invalid_form"),
        (form(part('Content-Disposition: form-data; name="a"' + "\r\nX-A: b" * 5)), 400, "invalid_form"),
        (form(*(part(f'Content-Disposition: form-data; name="f{i}"') for i in range(MAX_FIELDS + 1))), 400,
         "too_many_fields"),
        (form(part('Content-Disposition: form-data; name="a"', f"\r\n--{BOUNDARY}x" * 300)), 400, "too_many_fields"),
        (form(part('Content-Disposition: form-data; name="a"')).replace(b"--\r\n", b""), 400, "invalid_form"),
        (f'--{BOUNDARY}   \r\nContent-Disposition: form-data; name="a"\r\n\r\nx\r\n--{BOUNDARY}--'.encode(), 400,
         "invalid_form"),
        (form(part("Content-Disposition: form-data; name=\"a\"; filename*=utf-8''cv.pdf")), 415, "file_not_accepted"),
        (form(part('Content-Disposition: form-data; name="a"; filename=""')), 415, "file_not_accepted"),
        (form(part('Content-Disposition: form-data; name="a"\r\nContent-Transfer-Encoding: base64', "eA==")), 400,
         "invalid_form"),
        (form(part('Content-Disposition: form-data; name="a"\r\ncontent-disposition: form-data; name="b"')), 400,
         "invalid_form"),
    ],
    ids=["quoted-semicolons", "long-header", "many-parameters", "many-headers", "too-many-parts",
         "boundary-lookalikes", "no-closing-boundary", "padded-boundary", "filename-star", "empty-file",
         "transfer-encoding", "repeated-header"],
)  # fmt: skip
def test_hostile_multipart_bodies_are_refused_before_costly_work(body, status, code):
    with pytest.raises(PackCloudError) as caught:
        parse_form(body, MULTIPART, 1_000_000)
    assert (caught.value.status, caught.value.code) == (status, code)


def test_multipart_forms_as_browsers_send_them_still_read():
    body = form(
        part('Content-Disposition: form-data; name="email"', "jane@example.com"),
        part('Content-Disposition: form-data; name="message"', 'two\r\nlines; with "quotes" and --dashes'),
        part('content-disposition: form-data; name="name"\r\nContent-Type: text/plain; charset=UTF-8', "Zoë"),
        part('Content-Disposition: form-data; name="empty"', ""),
        part('Content-Disposition: form-data; name="semi;colon"', "1"),
    )
    assert parse_form(body, f'multipart/form-data; boundary="{BOUNDARY}"', 65_536) == {
        "email": "jane@example.com",
        "message": 'two\r\nlines; with "quotes" and --dashes',
        "name": "Zoë",
        "empty": "",
        "semi;colon": "1",
    }
    assert parse_form(form(*(part(f'Content-Disposition: form-data; name="f{i}"') for i in range(MAX_FIELDS))),
                      MULTIPART, 65_536) == {f"f{i}": "x" for i in range(MAX_FIELDS)}  # fmt: skip


@pytest.mark.parametrize(
    "content_type",
    [
        "multipart/form-data",
        "multipart/form-data; boundary=",
        "multipart/form-data; boundary=" + "b" * 71,
        "multipart/form-data; boundary=€",
    ],
)
def test_a_multipart_form_needs_a_valid_boundary(content_type):
    with pytest.raises(BadRequest) as caught:
        parse_form(form(part('Content-Disposition: form-data; name="a"')), content_type, 65_536)
    assert caught.value.code == "invalid_form"


def test_a_json_form_is_one_object_of_single_values():
    with pytest.raises(BadRequest) as caught:
        parse_form(b'{"email": {"a": 1}}', "application/json", 65_536)
    assert caught.value.code == "invalid_json"
    with pytest.raises(UnsupportedMediaType):
        parse_form(b"{}", "text/plain", 65_536)
