"""Web-form bodies: URL-encoded, multipart (no files) or JSON, read into one flat name → value map.

The size limit is checked before any parsing, and every parser's work is bounded: at most MAX_FIELDS fields,
multipart parts with small headers checked on the raw bytes before python-multipart (a streaming parser whose
cost is linear) reads them, JSON through the bounded `parse_json`. Values stay strings (or JSON scalars):
typing them is the dataset's job, in the capture store.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from shared.core.bodies import check_size, parse_json
from shared.core.errors import BadRequest, UnsupportedMediaType
from shared.core.names import shown_name

if TYPE_CHECKING:  # python-multipart defines its callback types for type checkers only
    from python_multipart.multipart import MultipartCallbacks

FormValue = str | int | float | bool | None
MAX_FIELDS = 200
# A browser's part headers are one Content-Disposition line with the field's name (and a Content-Type for a
# file): 1 KB leaves room for long names, and keeps the header work of a whole body small.
MAX_PART_HEADER_BYTES = 1024
MAX_PART_HEADERS = 4
MAX_DISPOSITION_PARAMS = 4

URLENCODED = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
JSON_TYPE = "application/json"
ACCEPTED = (URLENCODED, MULTIPART, JSON_TYPE)

# RFC 2046 section 5.1.1: 1 to 70 of these characters, not ending in a space.
_BOUNDARY = re.compile(rb"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")
_FILENAME_STAR = re.compile(rb";\s*filename\*", re.IGNORECASE)  # python-multipart drops RFC 2231 parameters
_IDENTITY_ENCODINGS = frozenset({b"7bit", b"8bit", b"binary"})
# The parser's warnings quote bytes of the body; its own logger is kept out of the logging tree.
_SILENT = logging.Logger("python_multipart.silenced", level=logging.CRITICAL + 1)


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def parse_form(body: bytes, content_type: str | None, max_bytes: int) -> dict[str, FormValue]:
    check_size(body, max_bytes)
    kind = media_type(content_type)
    if kind == URLENCODED:
        return _urlencoded(body)
    if kind == MULTIPART:
        return _multipart(body, content_type or "")
    if kind == JSON_TYPE:
        return _json(body)
    raise UnsupportedMediaType(
        "unsupported_media_type", f"send the form as {URLENCODED}, {MULTIPART} (no files) or {JSON_TYPE}"
    )


def _one_each(pairs: list[tuple[str, str]]) -> dict[str, FormValue]:
    if len(pairs) > MAX_FIELDS:
        raise BadRequest("too_many_fields", f"a form may carry at most {MAX_FIELDS} fields")
    values: dict[str, FormValue] = {}
    for name, value in pairs:
        if name in values:
            raise BadRequest("repeated_field", f"the field {shown_name(name)} is given more than once")
        values[name] = value
    return values


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("invalid_encoding", "the form must be encoded as UTF-8") from None


def _urlencoded(body: bytes) -> dict[str, FormValue]:
    try:
        pairs = parse_qsl(
            _text(body), keep_blank_values=True, strict_parsing=False, max_num_fields=MAX_FIELDS, errors="strict"
        )
    except UnicodeDecodeError:
        raise BadRequest("invalid_encoding", "the form must be encoded as UTF-8") from None
    except ValueError:
        raise BadRequest("invalid_form", f"the form is not valid {URLENCODED}") from None
    return _one_each(pairs)


def _multipart(body: bytes, content_type: str) -> dict[str, FormValue]:
    boundary = _boundary(content_type)
    _check_raw_parts(body, boundary)
    parts = _Parts()
    parser = MultipartParser(
        boundary, parts.callbacks(), max_header_count=MAX_PART_HEADERS, max_header_size=MAX_PART_HEADER_BYTES
    )
    parser.logger = _SILENT
    try:
        parser.write(body)
    except MultipartParseError:
        raise BadRequest("invalid_form", f"the form is not valid {MULTIPART}") from None
    if not parts.ended:
        raise BadRequest("invalid_form", f"the form is not valid {MULTIPART}: it has no closing boundary")
    return _one_each(parts.pairs)


def _boundary(content_type: str) -> bytes:
    try:
        boundary = parse_options_header(content_type)[1].get(b"boundary", b"")
    except UnicodeEncodeError:  # a header value beyond Latin-1 cannot name a boundary
        boundary = b""
    if not _BOUNDARY.fullmatch(boundary):
        raise BadRequest("invalid_form", "multipart/form-data needs a boundary of 1 to 70 characters")
    return boundary


def _check_raw_parts(body: bytes, boundary: bytes) -> None:
    """Part count and header size, read off the raw bytes before parsing (bytes methods: C speed, no Python
    loop over bytes), so that no body makes the parser walk more than MAX_FIELDS small header blocks."""
    pieces = body.split(b"--" + boundary)
    if len(pieces) > MAX_FIELDS + 2:  # a preamble, the parts, and the closing "--" with any epilogue
        raise BadRequest("too_many_fields", f"a form may carry at most {MAX_FIELDS} fields")
    for piece in pieces[1:-1]:
        # RFC 2046 allows spaces after a boundary; browsers send none, and python-multipart reads them bytewise.
        if not piece.startswith(b"\r\n"):
            raise BadRequest("invalid_form", "each multipart boundary must be followed by CRLF")
        if piece.find(b"\r\n\r\n", 0, MAX_PART_HEADER_BYTES + 4) < 0:
            raise BadRequest(
                "invalid_form", f"the headers of each multipart part must end within {MAX_PART_HEADER_BYTES} bytes"
            )


class _Parts:
    """python-multipart's callbacks: each part's headers and data, into (name, value) pairs."""

    def __init__(self) -> None:
        self.pairs: list[tuple[str, str]] = []
        self.ended = False
        self._headers: dict[bytes, bytes] = {}
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._name = ""
        self._data: list[bytes] = []

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self._begin,
            "on_header_field": lambda data, start, end: self._header_name.extend(data[start:end]),
            "on_header_value": lambda data, start, end: self._header_value.extend(data[start:end]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": lambda data, start, end: self._data.append(data[start:end]),
            "on_part_end": self._end,
            "on_end": self._finished,
        }

    def _begin(self) -> None:
        self._headers, self._data = {}, []

    def _header_end(self) -> None:
        name = bytes(self._header_name).lower()
        if name in self._headers:
            raise BadRequest("invalid_form", "a multipart part repeats a header")
        self._headers[name] = bytes(self._header_value)
        self._header_name.clear()
        self._header_value.clear()

    def _headers_finished(self) -> None:
        self._name = _field_name(self._headers)

    def _end(self) -> None:
        self.pairs.append((self._name, _text(b"".join(self._data))))

    def _finished(self) -> None:
        self.ended = True


def _field_name(headers: dict[bytes, bytes]) -> str:
    disposition = headers.get(b"content-disposition", b"")
    kind, params = parse_options_header(disposition.decode("latin-1"))
    if kind != b"form-data" or not params.get(b"name") or len(params) > MAX_DISPOSITION_PARAMS:
        raise BadRequest("invalid_form", "every multipart part needs Content-Disposition: form-data; name=...")
    if b"filename" in params or _FILENAME_STAR.search(disposition):
        raise UnsupportedMediaType("file_not_accepted", "forms may not upload files")
    encoding = headers.get(b"content-transfer-encoding")
    if encoding is not None and encoding.strip().lower() not in _IDENTITY_ENCODINGS:
        raise BadRequest("invalid_form", "multipart parts may not carry a Content-Transfer-Encoding (RFC 7578)")
    return _text(params[b"name"])


def _json(body: bytes) -> dict[str, FormValue]:
    # One object of single values: a nested value is refused before parsing, with the depth.
    data = parse_json(body, max_depth=1)
    if not isinstance(data, dict):
        raise BadRequest("invalid_json", "the body must be a JSON object of field names to single values")
    if len(data) > MAX_FIELDS:
        raise BadRequest("too_many_fields", f"a form may carry at most {MAX_FIELDS} fields")
    return data
