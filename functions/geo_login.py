"""Geo-login (PowerGeoLog).

POST /api/geologin/{tenant}/{dataset}   (tenant key) one sign-in of a Dynamics 365 user -> 201 location, alerts
"""

from __future__ import annotations

import azure.functions as func

from functions._http import handles_errors, json_model, json_response
from shared.registry.access import tenant_access
from shared.services import get_services

bp = func.Blueprint()


@bp.function_name("geologin_sign_in")
@bp.route(route="geologin/{tenant}/{dataset}", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@handles_errors
def geologin_sign_in(req: func.HttpRequest) -> func.HttpResponse:
    from shared.geologin.signins import SignInRequest

    services = get_services()
    access = tenant_access(
        services, req.route_params.get("tenant", ""), req.headers.get("authorization"), req.route_params.get("dataset")
    )
    target = services.capture.target(access.tenant, access.dataset, "geologin")
    request = json_model(req, SignInRequest, "invalid_sign_in", "sign-in", services.settings.max_body_bytes)
    result = services.geologins.sign_in(target, request, req.headers.get("x-forwarded-for"))
    return json_response(result.public(), 201)
