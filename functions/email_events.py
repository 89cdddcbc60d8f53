"""PowerEmail delivery events (SendGrid Event Webhook).

POST           /api/email/events/{tenant}/{dataset}            SendGrid's signed event batches -> 200 counts
PUT/GET/DELETE /api/manage/tenants/{tenant}/email-events/key   (function key) the tenant's verification key
"""

from __future__ import annotations

import azure.functions as func
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from functions._http import handles_errors, json_model, json_response
from shared.core.errors import NotFound, field_problems
from shared.core.ids import check_id
from shared.services import get_services
from shared.storage.email_keys import MAX_KEY_CHARS, store_verification_key, verification_key_secret

bp = func.Blueprint()


class VerificationKeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    verification_key: SecretStr = Field(
        min_length=1, max_length=MAX_KEY_CHARS, description="the signed Event Webhook's verification key"
    )


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
    services = get_services()
    tenant = services.registry.get_tenant(check_id("tenant", req.route_params.get("tenant")), fresh=True)
    if tenant is None:
        raise NotFound("unknown_tenant", "no such tenant in this deployment")
    services.residency.require_home(tenant)  # the key goes where the tenant's events arrive
    name = verification_key_secret(tenant.id)
    if req.method == "GET":
        if services.secrets.get(name) is None:
            raise NotFound("no_verification_key", "the tenant has no SendGrid verification key")
        return json_response({"configured": True})
    if req.method == "DELETE":
        if not services.secrets.delete(name):
            raise NotFound("no_verification_key", "the tenant has no SendGrid verification key")
        services.email_events.keys.forget(tenant.id)
        services.audit.append(tenant.id, "email_events_key", change="deleted")
        return func.HttpResponse(status_code=204)
    change = json_model(req, VerificationKeyIn, "invalid_key", "verification key", services.settings.max_body_bytes)
    try:
        store_verification_key(services.secrets, tenant.id, change.verification_key.get_secret_value())
    except ValueError as reason:
        problem = {"field": "verification_key", "reason": str(reason)}
        raise field_problems("invalid_key", "invalid verification key", [problem]) from None
    services.email_events.keys.forget(tenant.id)
    services.audit.append(tenant.id, "email_events_key", change="set")
    return json_response({"configured": True})
