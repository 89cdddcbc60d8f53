"""Request bodies: size limits, bounded JSON parsing, and model validation with errors that name fields, not values.

Every body is parsed by `parse_json` here or by `shared/webform/body.py`: each bounds its work by the body's size
before any structure is built, so no body can cost more than a linear pass over its bytes.
"""

from __future__ import annotations

import functools
import json
import math
import re
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from shared.core.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType, field_problems
from shared.core.names import shown_name

M = TypeVar("M", bound=BaseModel)

# Deeper than any document of the API (a dataset's field options are 4 levels); json's C scanner recurses per
# level and a RecursionError would be a 500, so depth is measured without parsing, before json.loads.
MAX_JSON_DEPTH = 32
# A number's text: int() of more than 4,300 digits raises, and a long one is never a count, size or value here.
MAX_NUMBER_CHARS = 40

# A JSON string, escapes included. The closing quote is optional so that an unterminated string ends the match
# instead of failing it: a failed match from every quote of `"\"\"\"...` would make the scan quadratic.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
# Number characters to "n", the rest to " ": a number too long is then a run of "n" that bytes.find sees.
_NUMBER_MARKS = bytes(ord("n") if b in b"-+.0123456789eE" else ord(" ") for b in range(256))
_TOO_LONG_NUMBER = b"n" * (MAX_NUMBER_CHARS + 1)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_ONE_KIND = bytes.maketrans(b"{}", b"[]")  # which kind closes which is json.loads's to check


@functools.cache
def _nested_at_most(depth: int) -> re.Pattern[bytes]:
    """Balanced brackets nested at most `depth` deep: a regular language at a fixed depth. Possessive
    repeats never backtrack, so the match is one pass, and the engine keeps its own stack (no recursion)."""
    pattern = b""
    for _ in range(depth):
        pattern = rb"(?:\[" + pattern + rb"\])*+"
    return re.compile(pattern)


def check_size(body: bytes, max_bytes: int) -> None:
    if len(body) > max_bytes:
        raise PayloadTooLarge("body_too_large", f"the body is larger than {max_bytes} bytes")


def parse_json(body: bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The JSON value of a UTF-8 body, or a 400: nesting, number length and number values are bounded."""
    _check_bounds(body, min(max_depth, MAX_JSON_DEPTH))
    try:
        return json.loads(body.decode("utf-8"), parse_float=_finite_float, parse_constant=_not_json)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise BadRequest("invalid_json", "the body is not valid JSON") from None


def _check_bounds(body: bytes, max_depth: int) -> None:
    """Passes over the bytes by the regex engine and bytes methods (no Python loop over them), strings blanked."""
    outside_strings = _JSON_STRING.sub(b'""', body)
    if _TOO_LONG_NUMBER in outside_strings.translate(_NUMBER_MARKS):
        raise BadRequest("invalid_json", f"a number in the body is longer than {MAX_NUMBER_CHARS} characters")
    if not _nested_at_most(max_depth).fullmatch(outside_strings.translate(_ONE_KIND, _NOT_BRACKETS)):
        raise BadRequest("invalid_json", f"the body is not valid JSON, or nests more than {max_depth} deep")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 reads as infinity, which no field means and json.dumps cannot write
        raise BadRequest("invalid_json", "numbers in the body must be finite")
    return value


def _not_json(name: str) -> Any:
    raise BadRequest("invalid_json", "NaN and Infinity are not JSON")


def parse_json_object(body: bytes, content_type: str | None, max_bytes: int) -> dict[str, Any]:
    check_size(body, max_bytes)
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type and media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMediaType("unsupported_media_type", "send the body as application/json")
    data = parse_json(body)
    if not isinstance(data, dict):
        raise BadRequest("invalid_json", "the body must be a JSON object")
    return data


def field_errors(error: ValidationError) -> list[dict[str, str]]:
    """Each failing field with a reason; pydantic's input echo is left out (it may be personal data). A name in
    the location is the sender's own (an unknown property), so it is shown as dropped names are: tamed and
    bounded (`shared/core/names.py`)."""
    problems = []
    for item in error.errors(include_input=False, include_url=False, include_context=False):
        location = ".".join(shown_name(part) if isinstance(part, str) else str(part) for part in item["loc"]) or "body"
        message = item["msg"].removeprefix("Value error, ")
        problems.append({"field": location, "reason": message})
    return problems


def validate_model(model: type[M], data: dict[str, Any], code: str, what: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise field_problems(code, f"invalid {what}", field_errors(error)) from None
