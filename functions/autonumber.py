"""Auto-number (PowerAutoNumber).

PUT/GET/DELETE /api/manage/tenants/{tenant}/sequences/{sequence}   (function key) the definition
POST           /api/autonumber/{tenant}/{sequence}/next            (tenant key) {"count": n} -> values
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import azure.functions as func

from functions._http import handles_errors, json_model, json_response
from shared.core.bodies import parse_json_object, validate_model
from shared.core.errors import NotFound
from shared.core.ids import check_id
from shared.registry.access import home_tenant, tenant_access
from shared.services import get_services

if TYPE_CHECKING:
    from shared.autonumber.sequences import SequenceState

bp = func.Blueprint()


def _shown(state: SequenceState) -> dict[str, Any]:
    return {"tenant": state.tenant, "sequence": state.sequence, **state.definition.model_dump(), "next": state.next}


@bp.function_name("manage_sequence")
@bp.route(
    route="manage/tenants/{tenant}/sequences/{sequence}",
    methods=["PUT", "GET", "DELETE"],
    auth_level=func.AuthLevel.FUNCTION,
)
@handles_errors
def manage_sequence(req: func.HttpRequest) -> func.HttpResponse:
    services = get_services()
    tenant = home_tenant(services, req.route_params.get("tenant", ""))
    sequence = check_id("sequence", req.route_params.get("sequence"))
    store = services.sequences
    if req.method == "GET":
        return json_response(_shown(store.get(tenant.id, sequence)))
    if req.method == "DELETE":
        if not store.delete(tenant.id, sequence):
            raise NotFound("unknown_sequence", "the tenant has no sequence with this id")
        return func.HttpResponse(status_code=204)
    from shared.autonumber.sequences import SequenceDefinition

    max_bytes = services.settings.max_body_bytes
    definition = json_model(req, SequenceDefinition, "invalid_sequence", "sequence", max_bytes)
    state, created = store.put(tenant.id, sequence, definition)
    return json_response(_shown(state), 201 if created else 200)


@bp.function_name("autonumber_next")
@bp.route(route="autonumber/{tenant}/{sequence}/next", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@handles_errors
def autonumber_next(req: func.HttpRequest) -> func.HttpResponse:
    from shared.autonumber.sequences import NextRequest
    from shared.core.idempotency import check_idempotency_key

    services = get_services()
    access = tenant_access(services, req.route_params.get("tenant", ""), req.headers.get("authorization"))
    sequence = check_id("sequence", req.route_params.get("sequence"))
    raw = req.get_body() or b"{}"
    body = parse_json_object(
        raw, req.headers.get("content-type") if req.get_body() else None, services.settings.max_body_bytes
    )
    request = validate_model(NextRequest, body, "invalid_request", "request")
    key = req.headers.get("idempotency-key")
    if key is not None:
        key = check_idempotency_key(key)
    allocation = services.sequences.next(access.tenant.id, sequence, request.count, key)
    return json_response(allocation.model_dump())
