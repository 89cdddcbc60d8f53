"""PowerSMS (Twilio): docs/sms.md.

POST           /api/sms/{tenant}/{dataset}/messages     (tenant key) send one message -> 201 {id, sid, status}
POST           /api/sms/status/{tenant}/{dataset}       (X-Twilio-Signature) a status callback -> 204
POST           /api/sms/inbound/{tenant}/{dataset}      (X-Twilio-Signature) an inbound message -> empty TwiML
PUT/GET/DELETE /api/manage/tenants/{tenant}/sms         (function key) the tenant's Twilio account
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import azure.functions as func

from functions._http import SECURITY_HEADERS, handles_errors, json_model, json_response, lower_headers
from shared.core.errors import NotFound
from shared.core.ids import check_id
from shared.registry.access import home_tenant, tenant_access
from shared.services import get_services

if TYPE_CHECKING:
    from shared.sms.webhooks import Webhook

bp = func.Blueprint()
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


def _hook(req: func.HttpRequest, kind: str) -> Webhook:
    from shared.sms.webhooks import Webhook

    tenant, dataset = req.route_params.get("tenant", ""), req.route_params.get("dataset", "")
    check_id("tenant", tenant)
    check_id("dataset", dataset)
    query = req.url.split("?", 1)[1] if "?" in req.url else ""
    return Webhook(f"/sms/{kind}/{tenant}/{dataset}", query, req.get_body() or b"", lower_headers(req))


@bp.function_name("sms_send")
@bp.route(route="sms/{tenant}/{dataset}/messages", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@handles_errors
def sms_send(req: func.HttpRequest) -> func.HttpResponse:
    from shared.sms.messages import SendRequest

    services = get_services()
    access = tenant_access(
        services, req.route_params.get("tenant", ""), req.headers.get("authorization"), req.route_params.get("dataset")
    )
    target = services.capture.target(access.tenant, access.dataset, "sms")
    request = json_model(req, SendRequest, "invalid_message", "message", services.settings.max_body_bytes)
    answer, replayed = services.sms.send(target, request, req.headers.get("idempotency-key"))
    return json_response(answer, 201, {"Idempotent-Replayed": "true"} if replayed else None)


@bp.function_name("sms_status")
@bp.route(route="sms/status/{tenant}/{dataset}", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@handles_errors
def sms_status(req: func.HttpRequest) -> func.HttpResponse:
    hook = _hook(req, "status")
    get_services().sms.status(req.route_params["tenant"], req.route_params["dataset"], hook)
    return func.HttpResponse(status_code=204, headers=SECURITY_HEADERS)


@bp.function_name("sms_inbound")
@bp.route(route="sms/inbound/{tenant}/{dataset}", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@handles_errors
def sms_inbound(req: func.HttpRequest) -> func.HttpResponse:
    hook = _hook(req, "inbound")
    get_services().sms.inbound(req.route_params["tenant"], req.route_params["dataset"], hook)
    # Empty TwiML: no reply from here (Twilio's own opt-out handling answers STOP, START and HELP).
    return func.HttpResponse(EMPTY_TWIML, status_code=200, mimetype="text/xml", headers=SECURITY_HEADERS)


@bp.function_name("manage_sms_account")
@bp.route(route="manage/tenants/{tenant}/sms", methods=["PUT", "GET", "DELETE"], auth_level=func.AuthLevel.FUNCTION)
@handles_errors
def manage_sms_account(req: func.HttpRequest) -> func.HttpResponse:
    from shared.registry.sms_account import SmsAccountIn

    services = get_services()
    tenant = home_tenant(services, req.route_params.get("tenant", ""))
    if req.method == "PUT":
        account = json_model(req, SmsAccountIn, "invalid_sms_account", "SMS account", services.settings.max_body_bytes)
        created = services.sms_accounts.put(tenant, account)
        return json_response(account.public(), 201 if created else 200)
    existing = services.sms_accounts.get(tenant)
    if existing is None:
        raise NotFound("no_sms_account", "the tenant has no SMS account")
    if req.method == "GET":
        return json_response(existing.public())
    services.sms_accounts.delete(tenant.id)
    return func.HttpResponse(status_code=204)
