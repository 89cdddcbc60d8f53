"""The manage API (function key): tenants and their datasets, the purpose registry.

PUT/GET/DELETE /api/manage/tenants/{tenant}
POST           /api/manage/tenants/{tenant}/keys/rotate
GET            /api/manage/tenants/{tenant}/datasets
PUT/GET/DELETE /api/manage/tenants/{tenant}/datasets/{dataset}
"""

from __future__ import annotations

from itertools import islice

import azure.functions as func

from functions._http import handles_errors, json_response
from shared.core.bodies import parse_json_object, validate_model
from shared.core.errors import Conflict, NotFound
from shared.core.ids import check_id
from shared.registry.auth import require_tenant
from shared.registry.models import Dataset, DatasetDoc, KeyRotation, TenantIn
from shared.registry.store import dataset_blob
from shared.registry.tenants import delete_tenant, put_tenant, rotate_keys
from shared.services import Services, get_services
from shared.storage.blobs import REGISTRY

bp = func.Blueprint()
# A tenant's dataset count sets the work of its dataset list, DPO report and deletion: bounded at creation.
MAX_DATASETS_PER_TENANT = 100


def _read_body(req: func.HttpRequest) -> dict:
    settings = get_services().settings
    return parse_json_object(req.get_body() or b"{}", req.headers.get("content-type"), settings.max_body_bytes)


@bp.function_name("manage_tenant")
@bp.route(route="manage/tenants/{tenant}", methods=["PUT", "GET", "DELETE"], auth_level=func.AuthLevel.FUNCTION)
@handles_errors
def manage_tenant(req: func.HttpRequest) -> func.HttpResponse:
    services = get_services()
    tenant_id = check_id("tenant", req.route_params.get("tenant"))
    if req.method == "GET":
        return json_response(require_tenant(services.registry, tenant_id).public())
    if req.method == "DELETE":
        services.delivery_targets.delete(tenant_id)  # the target, and its secret, go with the tenant
        if not delete_tenant(services.registry, services.audit, tenant_id):
            raise NotFound("unknown_tenant", "no such tenant in this deployment")
        return func.HttpResponse(status_code=204)
    change = validate_model(TenantIn, _read_body(req), "invalid_tenant", "tenant")
    master_key = services.settings.master_key.get_secret_value()
    shown, created = put_tenant(services.registry, services.audit, master_key, tenant_id, change)
    return json_response(shown, 201 if created else 200)


@bp.function_name("manage_tenant_keys")
@bp.route(route="manage/tenants/{tenant}/keys/rotate", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@handles_errors
def manage_tenant_keys(req: func.HttpRequest) -> func.HttpResponse:
    services = get_services()
    tenant = require_tenant(services.registry, req.route_params.get("tenant", ""))
    rotation = validate_model(KeyRotation, _read_body(req), "invalid_rotation", "key rotation")
    # The signing key derives from this deployment's master key: only the tenant's home region can rotate it.
    services.residency.require_home(tenant)
    master_key = services.settings.master_key.get_secret_value()
    return json_response(rotate_keys(services.registry, services.audit, master_key, tenant.id, rotation))


@bp.function_name("manage_datasets")
@bp.route(route="manage/tenants/{tenant}/datasets", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@handles_errors
def manage_datasets(req: func.HttpRequest) -> func.HttpResponse:
    services = get_services()
    tenant = require_tenant(services.registry, req.route_params.get("tenant", ""))
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
    tenant = require_tenant(services.registry, req.route_params.get("tenant", ""))
    dataset_id = check_id("dataset", req.route_params.get("dataset"))
    if req.method == "GET":
        doc = services.registry.get_dataset(tenant.id, dataset_id)
        if doc is None:
            raise NotFound("unknown_dataset", "the tenant has no dataset with this id")
        return json_response(_shown(doc))
    if req.method == "DELETE":
        if not services.registry.delete_dataset(tenant.id, dataset_id):
            raise NotFound("unknown_dataset", "the tenant has no dataset with this id")
        services.audit.append(tenant.id, "dataset", dataset=dataset_id, change="deleted")
        return func.HttpResponse(status_code=204)
    declaration = validate_model(Dataset, _read_body(req), "invalid_dataset", "dataset")
    # Datasets are declared where the tenant's data lives, never in another region.
    services.residency.require_home(tenant)
    _check_room(services, tenant.id, dataset_id)
    doc, created = services.registry.put_dataset(tenant.id, dataset_id, declaration)
    # Ids and the retention only: the declaration names the controller's and DPO's contacts.
    services.audit.append(
        tenant.id,
        "dataset",
        dataset=dataset_id,
        change="created" if created else "replaced",
        capability=doc.capability,
        retention_days=doc.retention_days,
        generation=doc.generation,
        declaration_revision=doc.declaration_revision,
    )
    return json_response(_shown(doc), 201 if created else 200)


def _check_room(services: Services, tenant: str, dataset: str) -> None:
    """A new dataset only while the tenant has fewer than the maximum (one listing of at most that many names)."""
    name = dataset_blob(tenant, dataset)
    listed = services.storage.container(REGISTRY).list_blobs(name_starts_with=name.rsplit("/", 1)[0] + "/")
    names = [blob.name for blob in islice(listed, MAX_DATASETS_PER_TENANT)]
    if len(names) >= MAX_DATASETS_PER_TENANT and name not in names:
        raise Conflict(
            "too_many_datasets",
            f"a tenant has at most {MAX_DATASETS_PER_TENANT} datasets; delete one to declare another",
        )


def _shown(doc: DatasetDoc) -> dict:
    return doc.model_dump(mode="json")
