"""Records Dynamics 365 refused: the dead letters of a `dataverse` dataset (tenant key).

GET  /api/sync/{tenant}/{dataset}/failed?limit=&cursor=   each refused record's id, status, OData code and message
                                                           (values removed), and when
POST /api/sync/{tenant}/{dataset}/failed/retry            {"ids": [...]} or {"all": true}: pending again, delivered
                                                           by the next run
"""

from __future__ import annotations

import azure.functions as func

from functions._http import fresh_dataset_access, handles_errors, json_model, json_response, limit_param
from shared.core.errors import BadRequest
from shared.registry.access import Access
from shared.services import Services, get_services

bp = func.Blueprint()

DEFAULT_LIMIT = 100
# A page marker of the blob index, handed back unchanged: printable ASCII, bounded.
MARKER_CHARS = frozenset(chr(c) for c in range(0x21, 0x7F))
MAX_MARKER = 1024


def _open(req: func.HttpRequest) -> tuple[Services, Access]:
    services = get_services()
    return services, fresh_dataset_access(req, services)


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
    from shared.dataverse import dead_letters

    services, access = _open(req)
    limit = limit_param(req.params.get("limit"), DEFAULT_LIMIT, dead_letters.MAX_PAGE)
    marker = _marker(req.params.get("cursor"))
    letters, next_marker = dead_letters.page(services.storage, access.tenant.id, access.named_dataset.id, limit, marker)
    failed = [letter.public() for letter in letters]
    return json_response({"failed": failed, "next_cursor": next_marker, "more": next_marker is not None})


@bp.function_name("sync_failed_retry")
@bp.route(route="sync/{tenant}/{dataset}/failed/retry", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@handles_errors
def sync_failed_retry(req: func.HttpRequest) -> func.HttpResponse:
    from shared.dataverse import dead_letters

    services, access = _open(req)
    retry = json_model(req, dead_letters.RetryRequest, "invalid_retry", "retry", services.settings.max_body_bytes)
    return json_response(
        dead_letters.retry(services.storage, services.audit, access.tenant.id, access.named_dataset.id, retry)
    )
