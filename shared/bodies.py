"""Request bodies: size limits, JSON parsing, and model validation with errors that name fields, not values."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from shared.errors import BadRequest, PayloadTooLarge, Unprocessable, UnsupportedMediaType

M = TypeVar("M", bound=BaseModel)


def check_size(body: bytes, max_bytes: int) -> None:
    if len(body) > max_bytes:
        raise PayloadTooLarge("body_too_large", f"the body is larger than {max_bytes} bytes")


def parse_json_object(body: bytes, content_type: str | None, max_bytes: int) -> dict[str, Any]:
    check_size(body, max_bytes)
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type and media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMediaType("unsupported_media_type", "send the body as application/json")
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BadRequest("invalid_json", "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("invalid_json", "the body must be a JSON object")
    return data


def field_errors(error: ValidationError) -> list[dict[str, str]]:
    """Each failing field with a reason; pydantic's input echo is left out (it may be personal data)."""
    problems = []
    for item in error.errors(include_input=False, include_url=False, include_context=False):
        location = ".".join(str(part) for part in item["loc"]) or "body"
        message = item["msg"].removeprefix("Value error, ")
        problems.append({"field": location, "reason": message})
    return problems


def validate_model(model: type[M], data: dict[str, Any], code: str, what: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        problems = field_errors(error)
        summary = "; ".join(f"{p['field']}: {p['reason']}" for p in problems[:5])
        raise Unprocessable(code, f"invalid {what}: {summary}", errors=problems) from None
