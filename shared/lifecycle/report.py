"""The record of processing activities (GDPR art. 30) of one tenant in this region, for its DPO: the numbers.

The page is drawn from them by lifecycle/report_page.py; the JSON form is these numbers as they are."""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import islice
from typing import Any

from azure.storage.blob import ContainerClient

from shared.capture.personal_state import kinds_of
from shared.core.clock import Clock
from shared.core.ids import is_record_id, record_id_time
from shared.dataverse.summary import dataset_summary, target_summary
from shared.lifecycle import activity
from shared.lifecycle.activity import window_start
from shared.registry.models import DatasetDoc, Tenant
from shared.registry.store import Registry
from shared.storage.audit import SYSTEM, AuditLog
from shared.storage.blobs import RECORDS, STATE, Storage, storage_errors, tag_query

# Records, and state blobs of each kind, counted at most per dataset: anyone who can load a page with the
# pixel can add records, so what is held must not set the work of a report (one list request each).
COUNT_MAX = 1000


def first_names(container: ContainerClient, prefix: str, count_max: int) -> tuple[list[str], bool]:
    """The first `count_max` names under a prefix, in name order, and whether there are more."""
    listed = container.list_blobs(name_starts_with=prefix, results_per_page=count_max + 1)
    names = [blob.name for blob in islice(listed, count_max + 1)]
    return names[:count_max], len(names) > count_max


def processing_record(
    tenant: Tenant,
    registry: Registry,
    storage: Storage,
    audit: AuditLog,
    clock: Clock,
    *,
    count_max: int = COUNT_MAX,
) -> dict[str, Any]:
    """The report's numbers. Storage reads (docs/privacy.md): one listing and one read per dataset for the
    registry, one listing per dataset and per kind of personal state, the delivery summary's, and the audit:
    one listing and at most WINDOW_DAYS + 1 reads for the tenant, one listing and three reads for the purge runs."""
    now = clock.now()
    datasets = []
    with storage_errors():
        container = storage.container(RECORDS)
        entries, chain = audit.window(tenant.id, window_start(now))
        run, purged_by_run = activity.last_purge(_purge_runs(audit, clock), tenant.id)
        by_dataset = activity.dataset_activity(entries, now)
        for doc in registry.list_datasets(tenant.id):
            names, more = first_names(container, f"{tenant.id}/{doc.id}/", count_max)
            ids = [i for name in names if is_record_id(i := name.rsplit("/", 1)[-1].removesuffix(".json"))]
            # Ids begin with their capture time, so the first listed is the oldest.
            oldest = min((record_id_time(record_id) for record_id in ids), default=None)
            age_s = round((now - oldest).total_seconds(), 1) if oldest else None
            days = by_dataset.get(doc.id) or activity.empty_activity(now)
            datasets.append(
                {
                    "dataset": doc.id,
                    "capability": doc.capability,
                    "purpose": doc.purpose,
                    "legal_basis": doc.legal_basis,
                    "retention_days": doc.retention_days,
                    "controller": doc.controller.model_dump(),
                    "dpo": doc.dpo.model_dump() if doc.dpo else None,
                    "subject_field": doc.subject_field,
                    "fields": [
                        {"name": f.name, "type": f.type, "personal": f.personal, "required": f.required}
                        for f in doc.fields
                    ],
                    "keep_url_query": doc.keep_url_query,
                    "notice": notice_path(tenant.id, doc.id),
                    "allowed_origins": list(doc.allowed_origins),
                    "records_held": len(ids),
                    "records_held_more": more,
                    "oldest_record_age_s": age_s,
                    "retention_used": None if age_s is None else round(age_s / (doc.retention_days * 86400), 3),
                    "last_30_days": activity.totals(days),
                    "activity": days,
                    "last_purge": _dataset_purge(run, purged_by_run, doc.id),
                    "personal_state": _personal_state(storage, tenant.id, doc, count_max),
                    "delivery": dataset_summary(storage, tenant.id, doc, now, count_max),
                }
            )
        target = target_summary(storage, tenant)
    return {
        "tenant": tenant.id,
        "name": tenant.name,
        "region": tenant.region,
        "generated_at": now.isoformat(),
        "processor": "PackCloud",
        "window_days": activity.WINDOW_DAYS,
        "last_purge": run,
        "audit_chain": {
            "verified": chain.ok,
            "entries": chain.entries,
            "detail": chain.detail,
            "since": window_start(now).date().isoformat(),
        },
        "delivery_target": target,
        "subject_requests": activity.subject_requests(entries, now),
        "datasets": datasets,
    }


def notice_path(tenant: str, dataset: str) -> str:
    """The dataset's public privacy notice (GDPR art. 13), under the app's `api` route prefix (host.json)."""
    return f"/api/notice/{tenant}/{dataset}"


def _dataset_purge(run: dict[str, Any] | None, purged: dict[str, int], dataset: str) -> dict[str, Any] | None:
    """The last purge run as this dataset saw it: `deleted` is None when the run did not reach the dataset."""
    if run is None:
        return None
    return {"at": run["at"], "complete": run["complete"], "deleted": purged.get(dataset)}


def _personal_state(storage: Storage, tenant: str, doc: DatasetDoc, count_max: int) -> list[dict[str, Any]]:
    """What personal state the dataset's capability keeps besides its records, and how much is held now."""
    container = storage.container(STATE)
    kinds = []
    for kind in kinds_of(doc.capability):
        if kind.per_tenant:  # the prefix holds every dataset's: its tags tell this dataset's apart
            page = storage.find_page_by_tags(STATE, tag_query(tenant=tenant, dataset=doc.id), page_size=count_max)
            names, more = page.names, page.marker is not None
        else:
            names, more = first_names(container, kind.prefix(tenant, doc.id), count_max)
        kinds.append({"kind": kind.kind, "holds": kind.holds, "kept": kind.kept, "held": len(names), "held_more": more})
    return kinds


def _purge_runs(audit: AuditLog, clock: Clock) -> list[dict[str, Any]]:
    # The deployment's runs (hourly): the last two days, read in full, find the last one. A run dated after now
    # (a clock set wrong somewhere) is not "the last purge" of a report made now.
    now = clock.now()
    runs = [e for e in audit.entries(SYSTEM, since=now - timedelta(days=2)) if e["kind"] == "purge"]
    return [run for run in runs if datetime.fromisoformat(str(run["at"])) <= now]


def dpo_notifications(state: dict[str, Any] | None) -> dict[str, Any]:
    """The report's section on DPO notifications, from the webhook's state (shared/dpo/notifier.py `state`; None: no
    webhook): events given up after 24 hours of attempts, and those waiting; ids, types, times and error codes only."""
    if state is None:
        return {"webhook": False, "failed": [], "pending": []}
    return {"webhook": True, **state}
