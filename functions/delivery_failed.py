"""Records Dynamics 365 refused: the dead letters of a `dataverse` dataset (tenant key).

GET  /api/sync/{tenant}/{dataset}/failed?limit=&cursor=   each refused record's id, status, OData code and message
                                                           (values removed), and when
POST /api/sync/{tenant}/{dataset}/failed/retry            {"ids": [...]} or {"all": true}: pending again, delivered
                                                           by the next run
"""

from __future__ import annotations

from typing import Annotated

import azure.functions as func
from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from functions._http import handles_errors, json_response
from shared.core.bodies import parse_json_object, validate_model
from shared.core.errors import BadRequest
from shared.core.numbers import ascii_int
from shared.dataverse import dead_letters
from shared.registry.access import Access, tenant_access
from shared.services import Services, get_services

bp = func.Blueprint()

RECORD_ID_PATTERN = r"^[0-9]{8}T[0-9]{12}Z-[0-9a-f]{16}$"
DEFAULT_LIMIT = 100
# A page marker of the blob index, handed back unchanged: printable ASCII, bounded.
MARKER_CHARS = frozenset(chr(c) for c in range(0x21, 0x7F))
MAX_MARKER = 1024


class RetryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[Annotated[str, Field(pattern=RECORD_ID_PATTERN)]] | None = Field(
        default=None, min_length=1, max_length=dead_letters.MAX_PAGE
    )
    all: StrictBool = False

    @model_validator(mode="after")
    def _one(self) -> RetryRequest:
        if (self.ids is None) == (not self.all):
            raise ValueError('give either "ids" or "all": true')
        return self


def _open(req: func.HttpRequest) -> tuple[Services, Access]:
    services = get_services()
    access = tenant_access(
        services,
        req.route_params.get("tenant", ""),
        req.headers.get("authorization"),
        req.route_params.get("dataset"),
        fresh=True,
    )
    return services, access


def _limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    limit = ascii_int(raw, 1, dead_letters.MAX_PAGE)
    if limit is None:
        raise BadRequest("invalid_limit", f"limit must be a whole number from 1 to {dead_letters.MAX_PAGE}")
    return limit


def _marker(raw: str | None) -> str | None:
    if not raw:
        return None
    if len(raw) > MAX_MARKER or not set(raw) <= MARKER_CHARS:
        raise BadRequest("invalid_cursor", "cursor must be a next_cursor value from an earlier page")
    return raw


@bp.function_name("sync_failed")
@bp.route(route="sync/{tenant}/{dataset}/failed", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@handles_errors
def sync_failed(req: func.HttpRequest) -> func.HttpResponse:
    services, access = _open(req)
    assert access.dataset is not None
    limit, marker = _limit(req.params.get("limit")), _marker(req.params.get("cursor"))
    letters, next_marker = dead_letters.page(services.storage, access.tenant.id, access.dataset.id, limit, marker)
    failed = [letter.public() for letter in letters]
    return json_response({"failed": failed, "next_cursor": next_marker, "more": next_marker is not None})


@bp.function_name("sync_failed_retry")
@bp.route(route="sync/{tenant}/{dataset}/failed/retry", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@handles_errors
def sync_failed_retry(req: func.HttpRequest) -> func.HttpResponse:
    services, access = _open(req)
    assert access.dataset is not None
    tenant, dataset = access.tenant.id, access.dataset.id
    body = parse_json_object(req.get_body(), req.headers.get("content-type"), services.settings.max_body_bytes)
    retry = validate_model(RetryRequest, body, "invalid_retry", "retry")
    more = False
    if retry.ids is not None:
        ids = list(dict.fromkeys(retry.ids))
    else:
        letters, marker = dead_letters.page(services.storage, tenant, dataset, dead_letters.MAX_PAGE, None)
        ids, more = [letter.record_id for letter in letters], marker is not None
    retried = sum(dead_letters.clear(services.storage, tenant, dataset, record_id) for record_id in ids)
    if retried:
        services.audit.append(tenant, "delivery_retry", dataset=dataset, retried=retried)
    return json_response({"retried": retried, "not_failed": len(ids) - retried, "more": more})
