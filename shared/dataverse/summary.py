"""What the DPO report (lifecycle/report.py) says about delivery: the tenant's target and its status, and per
dataset its mode, where its records go, how many Dynamics 365 refused, and its latest receipt. Bounded work: one
tag query and at most two listings and one read per dataverse dataset."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.dataverse import dead_letters, receipts
from shared.dataverse.targets import Target, TargetStatus, status_blob, target_blob
from shared.registry.models import DatasetDoc, Tenant
from shared.storage.blobs import REGISTRY, Storage


def target_summary(storage: Storage, tenant: Tenant) -> dict[str, Any] | None:
    """The organisation records are delivered to (the customer's instruction) and the target's status."""
    body, _ = storage.read_json(REGISTRY, target_blob(tenant.id))
    if body is None:
        return None
    target = Target.model_validate(body)
    if target.tenant_generation != tenant.generation:
        return None
    status_body, _ = storage.read_json(REGISTRY, status_blob(tenant.id))
    status = TargetStatus.model_validate(status_body) if status_body else None
    if status is None or status.version != target.version:
        status = TargetStatus(version=target.version)
    return {"organization_url": target.organization_url, "since": target.updated_at.isoformat(), **status.public()}


def dataset_summary(storage: Storage, tenant: str, doc: DatasetDoc, now: datetime, count_max: int) -> dict[str, Any]:
    mapping = doc.delivery
    if mapping.mode != "dataverse":
        return {"mode": mapping.mode}
    refused, more = dead_letters.count(storage, tenant, doc.id, count_max)
    return {
        "mode": mapping.mode,
        "table": mapping.table,
        "columns": dict(mapping.columns),  # which declared fields leave PackCloud, and where to
        "meta": dict(mapping.meta),
        "refused": refused,
        "refused_more": more,
        "last_receipt": receipts.latest(storage, tenant, doc.id, now),
    }
