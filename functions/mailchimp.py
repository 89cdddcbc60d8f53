"""PowerMailChimp (shared/mailchimp/).

Operator (function key):
PUT/GET/DELETE /api/manage/tenants/{tenant}/mailchimp          the tenant's Mailchimp API key (secret store)
POST           /api/manage/tenants/{tenant}/mailchimp/check    Mailchimp's ping with that key
POST           /api/manage/tenants/{tenant}/datasets/{dataset}/mailchimp-webhook   a new webhook URL (token once)

Dynamics 365 (tenant key):
POST /api/mailchimp/{tenant}/{dataset}/members                   upsert up to 500 members; nothing stored
POST /api/mailchimp/{tenant}/{dataset}/members/archive           archive members
POST /api/mailchimp/{tenant}/{dataset}/members/delete-permanent  delete members permanently

Mailchimp (the URL's token):
GET|POST /api/mailchimp/webhook/{tenant}/{dataset}/{token}       the validation GET, and events as records

Timer mailchimp_activity (PACKCLOUD_MAILCHIMP_ACTIVITY_SCHEDULE): campaign opens, clicks and bounces as records
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import azure.functions as func

from functions._http import SECURITY_HEADERS, base_url, handles_errors, json_model, json_response
from shared.core.errors import NotFound
from shared.core.ids import check_id
from shared.core.settings import get_settings
from shared.registry.access import home_tenant, tenant_access
from shared.services import Services, get_services

if TYPE_CHECKING:
    from shared.capture.store import Target

bp = func.Blueprint()
log = logging.getLogger("packcloud.mailchimp")


@bp.function_name("manage_mailchimp")
@bp.route(
    route="manage/tenants/{tenant}/mailchimp", methods=["PUT", "GET", "DELETE"], auth_level=func.AuthLevel.FUNCTION
)
@handles_errors
def manage_mailchimp(req: func.HttpRequest) -> func.HttpResponse:
    from shared.mailchimp.connection import ConnectionIn

    services = get_services()
    tenant = home_tenant(services, req.route_params.get("tenant", ""))
    connections = services.mailchimp.connections
    if req.method == "PUT":
        change = json_model(
            req, ConnectionIn, "invalid_connection", "Mailchimp connection", services.settings.max_body_bytes
        )
        stored, created = connections.put(tenant, change)
        return json_response(stored.public(), 201 if created else 200)
    connection = connections.get(tenant)
    if connection is None:
        raise NotFound("no_mailchimp_connection", "the tenant has no Mailchimp connection")
    if req.method == "DELETE":
        connections.remove(tenant.id)
        return func.HttpResponse(status_code=204, headers=SECURITY_HEADERS)
    return json_response(connection.public())


@bp.function_name("manage_mailchimp_check")
@bp.route(route="manage/tenants/{tenant}/mailchimp/check", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@handles_errors
def manage_mailchimp_check(req: func.HttpRequest) -> func.HttpResponse:
    services = get_services()
    tenant = home_tenant(services, req.route_params.get("tenant", ""))
    connection = services.mailchimp.connections.get(tenant)
    if connection is None:
        raise NotFound("no_mailchimp_connection", "the tenant has no Mailchimp connection")
    return json_response(services.mailchimp.check(tenant, connection))


@bp.function_name("manage_mailchimp_webhook")
@bp.route(
    route="manage/tenants/{tenant}/datasets/{dataset}/mailchimp-webhook",
    methods=["POST"],
    auth_level=func.AuthLevel.FUNCTION,
)
@handles_errors
def manage_mailchimp_webhook(req: func.HttpRequest) -> func.HttpResponse:
    services = get_services()
    tenant = home_tenant(services, req.route_params.get("tenant", ""))
    dataset = services.registry.get_dataset(tenant.id, check_id("dataset", req.route_params.get("dataset")), fresh=True)
    if dataset is None or dataset.capability != "mailchimpevent":
        raise NotFound("unknown_dataset", "the tenant has no mailchimpevent dataset with this id")
    token = services.mailchimp.tokens.rotate(dataset)
    base = services.settings.region_url(tenant.region) or base_url(req)
    url = f"{base}/mailchimp/webhook/{tenant.id}/{dataset.id}/{token}"
    return json_response({"url": url, "token": token}, 201, {"Cache-Control": "no-store"})


def _push_access(req: func.HttpRequest, services: Services) -> Target:
    access = tenant_access(
        services, req.route_params.get("tenant", ""), req.headers.get("authorization"), req.route_params.get("dataset")
    )
    return services.capture.target(access.tenant, access.dataset, "mailchimp")


@bp.function_name("mailchimp_members")
@bp.route(route="mailchimp/{tenant}/{dataset}/members", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@handles_errors
def mailchimp_members(req: func.HttpRequest) -> func.HttpResponse:
    from shared.mailchimp.members import MembersIn

    services = get_services()
    target = _push_access(req, services)
    request = json_model(req, MembersIn, "invalid_members", "members", services.settings.max_body_bytes * 4)
    return json_response(services.mailchimp.push(target.tenant, target.dataset, request).public())


def _remove(req: func.HttpRequest, *, permanent: bool) -> func.HttpResponse:
    from shared.mailchimp.members import RemovalIn

    services = get_services()
    target = _push_access(req, services)
    request = json_model(req, RemovalIn, "invalid_members", "members", services.settings.max_body_bytes * 4)
    result = services.mailchimp.remove(target.tenant, target.dataset, request, permanent=permanent)
    return json_response(result.public())


@bp.function_name("mailchimp_members_archive")
@bp.route(route="mailchimp/{tenant}/{dataset}/members/archive", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@handles_errors
def mailchimp_members_archive(req: func.HttpRequest) -> func.HttpResponse:
    return _remove(req, permanent=False)


@bp.function_name("mailchimp_members_delete")
@bp.route(
    route="mailchimp/{tenant}/{dataset}/members/delete-permanent",
    methods=["POST"],
    auth_level=func.AuthLevel.ANONYMOUS,
)
@handles_errors
def mailchimp_members_delete(req: func.HttpRequest) -> func.HttpResponse:
    return _remove(req, permanent=True)


@bp.function_name("mailchimp_webhook")
@bp.route(
    route="mailchimp/webhook/{tenant}/{dataset}/{token}", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS
)
@handles_errors
def mailchimp_webhook(req: func.HttpRequest) -> func.HttpResponse:
    from shared.mailchimp.webhook import parse_event, receive

    services = get_services()
    tenant_id = check_id("tenant", req.route_params.get("tenant"))
    target = services.capture.resolve(tenant_id, check_id("dataset", req.route_params.get("dataset")), "mailchimpevent")
    services.mailchimp.tokens.check(target.dataset, req.route_params.get("token", ""))
    if req.method == "GET":  # Mailchimp's check of the URL when the webhook is set up
        return func.HttpResponse(status_code=200, headers=SECURITY_HEADERS)
    form = parse_event(req.get_body(), req.headers.get("content-type"), services.settings.max_body_bytes)
    return json_response({"id": receive(services.capture, target, form)}, 201)


@bp.function_name("mailchimp_activity")
@bp.timer_trigger(
    schedule=get_settings().mailchimp_activity_schedule, arg_name="timer", run_on_startup=False, use_monitor=True
)
def mailchimp_activity(timer: func.TimerRequest) -> None:
    services = get_services()
    run = services.mailchimp.read_activity(services.settings.mailchimp_activity_pages)
    if run.datasets:
        log.info("mailchimp activity: %d page(s), %d record(s), %d dataset(s)", run.pages, run.stored, run.datasets)
    for tenant, problems in run.problems.items():
        # Mailchimp's problem titles and codes only: never an address or the key.
        log.warning("mailchimp activity for tenant %s: %s", tenant, "; ".join(problems))
