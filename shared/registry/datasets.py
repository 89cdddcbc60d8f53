"""Declaring, replacing and deleting a dataset, with their audit entries: what the manage API does."""

from __future__ import annotations

from typing import Any

from shared.core.errors import Conflict, NotFound
from shared.core.events import DATASET_CHANGED, DATASET_DECLARED, DATASET_DELETED, NO_EVENTS, Events
from shared.registry.models import Dataset, DatasetDoc, Tenant
from shared.registry.residency import Residency
from shared.registry.store import Registry, dataset_blob
from shared.storage.audit import AuditLog

# A tenant's dataset count sets the work of its dataset list, DPO report and deletion: bounded at creation.
MAX_DATASETS_PER_TENANT = 100


def put_dataset(
    registry: Registry,
    residency: Residency,
    audit: AuditLog,
    tenant: Tenant,
    dataset: str,
    declaration: Dataset,
    events: Events = NO_EVENTS,
) -> tuple[DatasetDoc, bool]:
    """The dataset as stored, and whether it was created."""
    # Datasets are declared where the tenant's data lives, never in another region.
    residency.require_home(tenant)
    _check_room(registry, tenant.id, dataset)
    before = registry.get_dataset(tenant.id, dataset, fresh=True)
    doc, created = registry.put_dataset(tenant.id, dataset, declaration)
    # Ids and the retention only: the declaration names the controller's and DPO's contacts.
    audit.append(
        tenant.id,
        "dataset",
        dataset=dataset,
        change="created" if created else "replaced",
        capability=doc.capability,
        retention_days=doc.retention_days,
        generation=doc.generation,
        declaration_revision=doc.declaration_revision,
    )
    if before is None:
        events.emit(tenant.id, DATASET_DECLARED, declared(doc))
    elif changes := declaration_changes(before, doc):
        events.emit(tenant.id, DATASET_CHANGED, {**declared(doc), "changes": changes})
    return doc, created


def declared(doc: DatasetDoc) -> dict[str, Any]:
    """What a DPO event says of a declaration: never the controller's or DPO's contacts, never a value."""
    return {
        "dataset": doc.id,
        "capability": doc.capability,
        "legal_basis": doc.legal_basis,
        "retention_days": doc.retention_days,
        "declaration_revision": doc.declaration_revision,
        "fields": [{"name": f.name, "type": f.type, "personal": f.personal} for f in doc.fields],
    }


def declaration_changes(before: DatasetDoc, after: DatasetDoc) -> dict[str, Any]:
    """The retention, legal basis and fields that changed, as before and after (field names and types only)."""
    changes: dict[str, Any] = {}
    for name in ("retention_days", "legal_basis"):
        if getattr(before, name) != getattr(after, name):
            changes[name] = {"before": getattr(before, name), "after": getattr(after, name)}
    old = {f.name: f for f in before.fields}
    new = {f.name: f for f in after.fields}
    fields = {
        "added": sorted(new.keys() - old.keys()),
        "removed": sorted(old.keys() - new.keys()),
        "changed": sorted(name for name in old.keys() & new.keys() if old[name] != new[name]),
    }
    if any(fields.values()):
        changes["fields"] = fields
    return changes


def require_dataset(registry: Registry, tenant: str, dataset: str, *, fresh: bool = False) -> DatasetDoc:
    """The tenant's dataset, or 404."""
    doc = registry.get_dataset(tenant, dataset, fresh=fresh)
    if doc is None:
        raise _unknown_dataset()
    return doc


def delete_dataset(registry: Registry, audit: AuditLog, tenant: str, dataset: str, events: Events = NO_EVENTS) -> None:
    """The dataset, its records and state; its audit entries stay. 404 when there is no such dataset."""
    if not registry.delete_dataset(tenant, dataset):
        raise _unknown_dataset()
    audit.append(tenant, "dataset", dataset=dataset, change="deleted")
    events.emit(tenant, DATASET_DELETED, {"dataset": dataset})


def _unknown_dataset() -> NotFound:
    return NotFound("unknown_dataset", "the tenant has no dataset with this id")


def _check_room(registry: Registry, tenant: str, dataset: str) -> None:
    """A new dataset only while the tenant has fewer than the maximum (one listing of at most that many names)."""
    names = registry.dataset_names(tenant, at_most=MAX_DATASETS_PER_TENANT)
    if len(names) >= MAX_DATASETS_PER_TENANT and dataset_blob(tenant, dataset) not in names:
        raise Conflict(
            "too_many_datasets",
            f"a tenant has at most {MAX_DATASETS_PER_TENANT} datasets; delete one to declare another",
        )
