"""A tenant key check (tenant key), in every region.

GET /api/auth/{tenant}   204 when `Authorization: Bearer <key>` is the tenant's current API key in this region

The home deployment asks the tenant's region this before it lets a registration of that tenant change, so that
the key is checked where it lives (and after any rotation), never against a copy kept elsewhere.
"""

from __future__ import annotations

import azure.functions as func

from functions._http import SECURITY_HEADERS, handles_errors
from shared.registry.access import tenant_access
from shared.services import get_services

bp = func.Blueprint()


@bp.function_name("tenant_key_check")
@bp.route(route="auth/{tenant}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@handles_errors
def tenant_key_check(req: func.HttpRequest) -> func.HttpResponse:
    tenant_access(get_services(), req.route_params.get("tenant", ""), req.headers.get("authorization"))
    return func.HttpResponse(status_code=204, headers=SECURITY_HEADERS)
