"""A tenant's delivery target in Dynamics 365 (function key): the organisation and the application PackCloud signs
in as. The secret goes to the secret store and is never shown again (shared/dataverse/targets.py).

PUT/GET/DELETE /api/manage/tenants/{tenant}/delivery
POST           /api/manage/tenants/{tenant}/delivery/check   a token, then WhoAmI: which step fails, if any
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import azure.functions as func

from functions._http import handles_errors, json_model, json_response
from shared.core.errors import NotFound
from shared.registry.access import home_tenant
from shared.registry.models import Tenant
from shared.services import Services, get_services

if TYPE_CHECKING:
    from shared.dataverse.targets import Target

bp = func.Blueprint()


def _target(services: Services, tenant: Tenant) -> Target:
    target = services.delivery_targets.get(tenant)
    if target is None:
        raise NotFound("no_target", "the tenant has no delivery target")
    return target


def _shown(services: Services, target: Target) -> dict[str, Any]:
    return {**target.public(), "status": services.delivery_targets.status(target).public()}


@bp.function_name("manage_delivery")
@bp.route(
    route="manage/tenants/{tenant}/delivery", methods=["PUT", "GET", "DELETE"], auth_level=func.AuthLevel.FUNCTION
)
@handles_errors
def manage_delivery(req: func.HttpRequest) -> func.HttpResponse:
    services = get_services()
    tenant = home_tenant(services, req.route_params.get("tenant", ""))
    if req.method == "GET":
        return json_response(_shown(services, _target(services, tenant)))
    if req.method == "DELETE":
        _target(services, tenant)
        services.delivery_targets.remove(tenant.id)
        return func.HttpResponse(status_code=204)
    from shared.dataverse.targets import TargetIn

    change = json_model(req, TargetIn, "invalid_target", "delivery target", services.settings.max_body_bytes)
    target, created = services.delivery_targets.put(tenant, change)
    return json_response(_shown(services, target), 201 if created else 200)


@bp.function_name("manage_delivery_check")
@bp.route(route="manage/tenants/{tenant}/delivery/check", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@handles_errors
def manage_delivery_check(req: func.HttpRequest) -> func.HttpResponse:
    from shared.dataverse.check import check_target

    services = get_services()
    target = _target(services, home_tenant(services, req.route_params.get("tenant", "")))
    return json_response(check_target(services.delivery_targets, target, services.dataverse_session))
