"""Delivery to Dynamics 365 (tenant key).

GET  /api/sync/{tenant}/{dataset}?cursor=&limit=   records in capture order, with next_cursor
POST /api/sync/{tenant}/{dataset}/ack              {"ids": [...]}: delivered, deleted now
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import azure.functions as func

from functions._http import fresh_dataset_access, handles_errors, json_model, json_response, limit_param
from shared.core.errors import BadRequest
from shared.core.ids import is_record_id
from shared.registry.access import Access
from shared.services import Services, get_services

if TYPE_CHECKING:
    from shared.lifecycle.delivery import Delivery

bp = func.Blueprint()


def _open(req: func.HttpRequest) -> tuple[Services, Access, Delivery]:
    services = get_services()
    return services, fresh_dataset_access(req, services), services.delivery


@bp.function_name("sync_records")
@bp.route(route="sync/{tenant}/{dataset}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@handles_errors
def sync_records(req: func.HttpRequest) -> func.HttpResponse:
    from shared.lifecycle.delivery import DEFAULT_LIMIT, MAX_LIMIT
    from shared.lifecycle.generations import Generations

    services, access, delivery = _open(req)
    cursor = req.params.get("cursor") or None
    if cursor is not None and not is_record_id(cursor):
        raise BadRequest("invalid_cursor", "cursor must be a next_cursor value from an earlier page")
    limit = limit_param(req.params.get("limit"), DEFAULT_LIMIT, MAX_LIMIT)
    generations = Generations(services.registry, access.tenant, [access.named_dataset])
    page = delivery.page(access.tenant.id, access.named_dataset.id, cursor, limit, generations)
    return json_response({"records": page.records, "next_cursor": page.next_cursor, "more": page.more})


@bp.function_name("sync_ack")
@bp.route(route="sync/{tenant}/{dataset}/ack", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@handles_errors
def sync_ack(req: func.HttpRequest) -> func.HttpResponse:
    from shared.lifecycle.delivery import AckRequest

    services, access, delivery = _open(req)
    ack = json_model(req, AckRequest, "invalid_ack", "acknowledgement", services.settings.max_body_bytes)
    deleted, already_gone = delivery.acknowledge(access.tenant.id, access.named_dataset.id, ack.ids)
    return json_response({"acknowledged": len(ack.ids), "new": deleted, "already_gone": already_gone})
