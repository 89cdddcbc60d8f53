"""Private to functions/: shaping HTTP answers (JSON bodies, errors that never become a 500) and reading requests."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import azure.functions as func
from azure.core.exceptions import AzureError
from pydantic import BaseModel

from shared.core.bodies import parse_json_object, validate_model
from shared.core.errors import BadRequest, PackCloudError, StorageUnavailable
from shared.core.numbers import ascii_int
from shared.registry.access import Access, tenant_access
from shared.services import Services

log = logging.getLogger("packcloud")

Handler = Callable[[func.HttpRequest], func.HttpResponse]
AsyncHandler = Callable[[func.HttpRequest], Awaitable[func.HttpResponse]]
M = TypeVar("M", bound=BaseModel)

SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(body, separators=(",", ":"), default=str),
        status_code=status,
        mimetype="application/json",
        headers={**SECURITY_HEADERS, **(headers or {})},
    )


def error_response(error: PackCloudError) -> func.HttpResponse:
    return json_response(error.body(), error.status, error.headers)


def handles_errors(handler: Handler) -> Handler:
    """Every failure gets a JSON answer: the request's fault a 4xx, storage trouble a 503.

    Logs name the function and the error class only: messages could quote request data.
    """

    @functools.wraps(handler)
    def wrapper(req: func.HttpRequest) -> func.HttpResponse:
        try:
            return handler(req)
        except Exception as error:
            return failure_response(handler.__name__, error)

    return wrapper


def handles_errors_async(handler: AsyncHandler) -> AsyncHandler:
    """`handles_errors` for an async function."""

    @functools.wraps(handler)
    async def wrapper(req: func.HttpRequest) -> func.HttpResponse:
        try:
            return await handler(req)
        except Exception as error:
            return failure_response(handler.__name__, error)

    return wrapper


def failure_response(name: str, error: Exception) -> func.HttpResponse:
    if isinstance(error, PackCloudError):
        level = logging.WARNING if error.status >= 500 else logging.DEBUG
        log.log(level, "%s answered %s (%s)", name, error.status, error.code)
        return error_response(error)
    if isinstance(error, AzureError):
        log.warning("%s: storage error %s", name, type(error).__name__)
        return error_response(StorageUnavailable())
    log.error("%s failed: %s", name, type(error).__name__)
    return json_response({"error": "internal", "detail": "an unexpected error occurred"}, 500)


def json_model(req: func.HttpRequest, model: type[M], code: str, what: str, max_bytes: int, *, empty: bytes = b"") -> M:
    """The JSON body as `model`: 413, 415 or 400 for the body itself, 422 `code` naming the fields that do not fit.
    `empty`: what a request without a body stands for, on routes whose every field is optional."""
    body = parse_json_object(req.get_body() or empty, req.headers.get("content-type"), max_bytes)
    return validate_model(model, body, code, what)


def lower_headers(req: func.HttpRequest) -> dict[str, str]:
    return {name.lower(): value for name, value in req.headers.items()}


def base_url(req: func.HttpRequest) -> str:
    """The public URL prefix of the API (…/api), as the client reached it."""
    url: str = req.url.split("?", 1)[0]
    marker = url.find("/api/")
    return url[: marker + 4] if marker >= 0 else url.rsplit("/", 1)[0]


def limit_param(raw: str | None, default: int, maximum: int) -> int:
    """A page size from the query: absent is the default, else a whole number of ASCII digits from 1 to maximum."""
    if raw is None or raw == "":
        return default
    limit = ascii_int(raw, 1, maximum)
    if limit is None:
        raise BadRequest("invalid_limit", f"limit must be a whole number from 1 to {maximum}")
    return limit


def fresh_dataset_access(req: func.HttpRequest, services: Services) -> Access:
    """The tenant key and the dataset of a delivery route, read from storage, not the cache: a rotated key or a
    deleted tenant or dataset counts at once where records are handed out, and their generations are current."""
    return tenant_access(
        services,
        req.route_params.get("tenant", ""),
        req.headers.get("authorization"),
        req.route_params.get("dataset"),
        fresh=True,
    )
