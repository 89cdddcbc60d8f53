"""PowerEmail delivery events (SendGrid Event Webhook).

POST           /api/email/events/{tenant}/{dataset}            SendGrid's signed event batches -> 200 counts
PUT/GET/DELETE /api/manage/tenants/{tenant}/email-events/key   (function key) the tenant's verification key
"""

from __future__ import annotations

import azure.functions as func

from functions._http import handles_errors, json_model, json_response
from shared.registry.access import home_tenant
from shared.services import get_services

bp = func.Blueprint()


@bp.function_name("email_events")
@bp.route(route="email/events/{tenant}/{dataset}", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@handles_errors
def email_events(req: func.HttpRequest) -> func.HttpResponse:
    services = get_services()
    answer = services.email_events.receive(
        req.route_params.get("tenant", ""), req.route_params.get("dataset", ""), req.headers.get, req.get_body()
    )
    return json_response(answer.public())


@bp.function_name("manage_email_events_key")
@bp.route(
    route="manage/tenants/{tenant}/email-events/key",
    methods=["PUT", "GET", "DELETE"],
    auth_level=func.AuthLevel.FUNCTION,
)
@handles_errors
def manage_email_events_key(req: func.HttpRequest) -> func.HttpResponse:
    from shared.emailevents.keys import VerificationKeyIn

    services = get_services()
    tenant = home_tenant(services, req.route_params.get("tenant", ""))  # the key goes where the tenant's events arrive
    admin = services.email_events.key_admin
    if req.method == "GET":
        admin.require(tenant)
        return json_response({"configured": True})
    if req.method == "DELETE":
        admin.delete(tenant)
        return func.HttpResponse(status_code=204)
    change = json_model(req, VerificationKeyIn, "invalid_key", "verification key", services.settings.max_body_bytes)
    admin.put(tenant, change)
    return json_response({"configured": True})
