"""Web-form bodies: URL-encoded, multipart (no files) or JSON, read into one flat name → value map.

The size limit is checked before any parsing. Values stay strings (or JSON scalars): typing them is
the dataset's job, in the capture store.
"""

from __future__ import annotations

import json
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import HTTP
from urllib.parse import parse_qsl

from shared.bodies import check_size
from shared.errors import BadRequest, UnsupportedMediaType

FormValue = str | int | float | bool | None
MAX_FIELDS = 200

URLENCODED = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
JSON_TYPE = "application/json"
ACCEPTED = (URLENCODED, MULTIPART, JSON_TYPE)


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
            raise BadRequest("repeated_field", f"the field {_safe_name(name)} is given more than once")
        values[name] = value
    return values


def _safe_name(name: str) -> str:
    """Field names are the form's, not the person's, but an undeclared one is still shown only if tame."""
    return name if name.isidentifier() and len(name) <= 64 else "(unnamed)"


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
    if "boundary=" not in content_type.lower():
        raise BadRequest("invalid_form", "multipart/form-data needs a boundary")
    header = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1", "replace")
    message = BytesParser(policy=HTTP).parsebytes(header + body)
    if not isinstance(message, EmailMessage) or not message.is_multipart() or message.defects:
        raise BadRequest("invalid_form", f"the form is not valid {MULTIPART}")
    pairs: list[tuple[str, str]] = []
    for part in message.iter_parts():
        if part.get_content_disposition() != "form-data" or not part.get_param("name", header="content-disposition"):
            raise BadRequest("invalid_form", "every multipart part needs Content-Disposition: form-data; name=...")
        if part.get_filename() is not None:
            raise UnsupportedMediaType("file_not_accepted", "forms may not upload files")
        payload = part.get_payload(decode=True)
        pairs.append((str(part.get_param("name", header="content-disposition")), _text(payload or b"")))
    return _one_each(pairs)


def _json(body: bytes) -> dict[str, FormValue]:
    try:
        data = json.loads(_text(body))
    except json.JSONDecodeError:
        raise BadRequest("invalid_json", "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("invalid_json", "the body must be a JSON object of field names to values")
    if len(data) > MAX_FIELDS:
        raise BadRequest("too_many_fields", f"a form may carry at most {MAX_FIELDS} fields")
    for name, value in data.items():
        if isinstance(value, dict | list):
            raise BadRequest("invalid_json", f"the field {_safe_name(name)} must be a single value")
    return data
