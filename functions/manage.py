"""The manage API (function key): tenants and their datasets, the purpose registry.

PUT/GET/DELETE /api/manage/tenants/{tenant}
POST           /api/manage/tenants/{tenant}/keys/rotate
GET            /api/manage/tenants/{tenant}/datasets
PUT/GET/DELETE /api/manage/tenants/{tenant}/datasets/{dataset}
"""

from __future__ import annotations

from typing import Any

import azure.functions as func

from functions._http import M, handles_errors, json_model, json_response
from shared.core.errors import NotFound
from shared.core.ids import check_id
from shared.registry.access import home_tenant
from shared.registry.auth import require_tenant
from shared.registry.datasets import delete_dataset, put_dataset, require_dataset
from shared.registry.models import Dataset, DatasetDoc, KeyRotation, TenantIn
from shared.registry.tenants import delete_tenant, put_tenant, rotate_keys
from shared.services import get_services

bp = func.Blueprint()


def _read(req: func.HttpRequest, model: type[M], code: str, what: str) -> M:
    """Every field of a manage body is optional: no body is `{}`."""
    return json_model(req, model, code, what, get_services().settings.max_body_bytes, empty=b"{}")


@bp.function_name("manage_tenant")
@bp.route(route="manage/tenants/{tenant}", methods=["PUT", "GET", "DELETE"], auth_level=func.AuthLevel.FUNCTION)
@handles_errors
def manage_tenant(req: func.HttpRequest) -> func.HttpResponse:
    services = get_services()
    tenant_id = check_id("tenant", req.route_params.get("tenant"))
    if req.method == "GET":
        return json_response(require_tenant(services.registry, tenant_id).public())
    if req.method == "DELETE":
        services.forget_tenant_credentials(tenant_id)
        if not delete_tenant(services.registry, services.audit, tenant_id):
            raise NotFound("unknown_tenant", "no such tenant in this deployment")
        return func.HttpResponse(status_code=204)
    change = _read(req, TenantIn, "invalid_tenant", "tenant")
    master_key = services.settings.master_key.get_secret_value()
    shown, created = put_tenant(services.registry, services.audit, master_key, tenant_id, change)
    return json_response(shown, 201 if created else 200)


@bp.function_name("manage_tenant_keys")
@bp.route(route="manage/tenants/{tenant}/keys/rotate", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@handles_errors
def manage_tenant_keys(req: func.HttpRequest) -> func.HttpResponse:
    services = get_services()
    # The signing key derives from this deployment's master key: only the tenant's home region can rotate it.
    tenant = home_tenant(services, req.route_params.get("tenant", ""))
    rotation = _read(req, KeyRotation, "invalid_rotation", "key rotation")
    master_key = services.settings.master_key.get_secret_value()
    return json_response(rotate_keys(services.registry, services.audit, master_key, tenant.id, rotation))


@bp.function_name("manage_datasets")
@bp.route(route="manage/tenants/{tenant}/datasets", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@handles_errors
def manage_datasets(req: func.HttpRequest) -> func.HttpResponse:
    services = get_services()
    tenant = home_tenant(services, req.route_params.get("tenant", ""))
    docs = services.registry.list_datasets(tenant.id)
    return json_response({"tenant": tenant.id, "datasets": [_shown(doc) for doc in docs]})


@bp.function_name("manage_dataset")
@bp.route(
    route="manage/tenants/{tenant}/datasets/{dataset}",
    methods=["PUT", "GET", "DELETE"],
    auth_level=func.AuthLevel.FUNCTION,
)
@handles_errors
def manage_dataset(req: func.HttpRequest) -> func.HttpResponse:
    services = get_services()
    tenant = home_tenant(services, req.route_params.get("tenant", ""))
    dataset_id = check_id("dataset", req.route_params.get("dataset"))
    if req.method == "GET":
        return json_response(_shown(require_dataset(services.registry, tenant.id, dataset_id)))
    if req.method == "DELETE":
        delete_dataset(services.registry, services.audit, tenant.id, dataset_id, services.dpo)
        return func.HttpResponse(status_code=204)
    declaration = _read(req, Dataset, "invalid_dataset", "dataset")
    doc, created = put_dataset(
        services.registry, services.residency, services.audit, tenant, dataset_id, declaration, services.dpo
    )
    return json_response(_shown(doc), 201 if created else 200)


def _shown(doc: DatasetDoc) -> dict[str, Any]:
    return doc.model_dump(mode="json")
