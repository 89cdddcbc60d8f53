"""The registration engine (home deployment only: served where the `role` setting includes `registration`).

POST       /api/registrations            (registration key) register a pack: 201 with the tenant's keys; an update
                                         (200) also needs the tenant's API key (Authorization: Bearer)
GET/DELETE /api/registrations/{tenant}   (function key) show (never a secret), or deregister

POST is anonymous to the Functions host and checks its own key: a function-level route would also take the
host keys, and installers, which hold the registration key, must hold nothing else.
"""

from __future__ import annotations

import azure.functions as func

from functions._http import handles_errors, json_model, json_response
from shared.services import get_services

bp = func.Blueprint()


@bp.function_name("registration_create")
@bp.route(route="registrations", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@handles_errors
def registration_create(req: func.HttpRequest) -> func.HttpResponse:
    from shared.registration.engine import REGISTRATION_KEY_HEADER, RegistrationIn

    services = get_services()
    services.registrations.key.require(req.headers.get(REGISTRATION_KEY_HEADER))
    max_bytes = services.settings.max_body_bytes
    request = json_model(req, RegistrationIn, "invalid_registration", "registration", max_bytes)
    status, answer = services.registrations.register(request, req.headers.get("authorization"))
    return json_response(answer, status)


@bp.function_name("registration_item")
@bp.route(route="registrations/{tenant}", methods=["GET", "DELETE"], auth_level=func.AuthLevel.FUNCTION)
@handles_errors
def registration_item(req: func.HttpRequest) -> func.HttpResponse:
    registrations = get_services().registrations
    tenant = req.route_params.get("tenant", "")
    if req.method == "DELETE":
        registrations.deregister(tenant)
        return func.HttpResponse(status_code=204)
    return json_response(registrations.get(tenant))
