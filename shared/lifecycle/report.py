"""The record of processing activities (GDPR art. 30) of one tenant in this region, for its DPO."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from html import escape
from itertools import islice
from typing import Any

from azure.storage.blob import ContainerClient

from shared.capture.personal_state import kinds_of
from shared.core.clock import Clock
from shared.core.ids import is_record_id, record_id_time
from shared.dataverse.summary import dataset_summary, target_summary
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
    now = clock.now()
    datasets = []
    with storage_errors():
        container = storage.container(RECORDS)
        last_purge = _last_purge(audit, clock)
        for doc in registry.list_datasets(tenant.id):
            names, more = first_names(container, f"{tenant.id}/{doc.id}/", count_max)
            ids = [i for name in names if is_record_id(i := name.rsplit("/", 1)[-1].removesuffix(".json"))]
            # Ids begin with their capture time, so the first listed is the oldest.
            oldest = min((record_id_time(record_id) for record_id in ids), default=None)
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
                    "allowed_origins": list(doc.allowed_origins),
                    "records_held": len(ids),
                    "records_held_more": more,
                    "oldest_record_age_s": round((now - oldest).total_seconds(), 1) if oldest else None,
                    "personal_state": _personal_state(storage, tenant.id, doc, count_max),
                    "delivery": dataset_summary(storage, tenant.id, doc, now, count_max),
                }
            )
    return {
        "tenant": tenant.id,
        "name": tenant.name,
        "region": tenant.region,
        "generated_at": now.isoformat(),
        "processor": "PackCloud",
        "last_purge": last_purge,
        "delivery_target": target_summary(storage, tenant),
        "datasets": datasets,
    }


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


def _last_purge(audit: AuditLog, clock: Clock) -> dict[str, Any] | None:
    runs = [e for e in audit.entries(SYSTEM, since=clock.now() - timedelta(days=2)) if e["kind"] == "purge"]
    if not runs:
        return None
    run = runs[-1]
    return {"at": run["at"], "complete": run["complete"], "duration_s": run["duration_s"]}


def render_html(report: dict[str, Any]) -> str:
    """A readable page; every value is escaped, since dataset texts come from the API."""

    def e(value: object) -> str:
        return escape("" if value is None else str(value))

    rows = []
    for d in report["datasets"]:
        fields = "".join(
            f"<li><code>{e(f['name'])}</code> ({e(f['type'])}){' &mdash; personal' if f['personal'] else ''}</li>"
            for f in d["fields"]
        )
        state = "".join(
            f"<li><code>{e(k['kind'])}</code>: {e(k['holds'])}; kept {e(k['kept'])}; {e(k['held'])}"
            f"{' or more' if k['held_more'] else ''} held now</li>"
            for k in d["personal_state"]
        )
        dpo = f"{e(d['dpo']['name'])} &lt;{e(d['dpo']['email'])}&gt;" if d["dpo"] else "not named"
        rows.append(
            f"<section><h2>{e(d['dataset'])} <small>({e(d['capability'])})</small></h2><dl>"
            f"<dt>Purpose</dt><dd>{e(d['purpose'])}</dd>"
            f"<dt>Legal basis</dt><dd>{e(d['legal_basis'])}</dd>"
            f"<dt>Retention</dt><dd>{e(d['retention_days'])} days</dd>"
            f"<dt>Controller</dt><dd>{e(d['controller']['name'])} &lt;{e(d['controller']['email'])}&gt;</dd>"
            f"<dt>DPO</dt><dd>{dpo}</dd>"
            f"<dt>Region</dt><dd>{e(report['region'])}</dd>"
            f"<dt>Records held now</dt><dd>{e(d['records_held'])}{' or more' if d['records_held_more'] else ''}</dd>"
            f"<dt>Oldest record</dt><dd>{e(d['oldest_record_age_s'])} s</dd>"
            f"<dt>Fields</dt><dd><ul>{fields}</ul></dd>"
            f"<dt>Personal state besides the records</dt><dd>{f'<ul>{state}</ul>' if state else 'none'}</dd>"
            f"<dt>Delivery</dt><dd>{_delivery_html(d.get('delivery', {'mode': 'pull'}), e)}</dd>"
            "</dl></section>"
        )
    purge = report["last_purge"]
    target = report.get("delivery_target")
    target_text = (
        f"Dynamics 365 at <code>{e(target['organization_url'])}</code> ({e(target['state'])})" if target else "none"
    )
    purge_text = f"{e(purge['at'])} ({'complete' if purge['complete'] else 'continuing'})" if purge else "none yet"
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Record of processing: {e(report['tenant'])}</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:50rem;margin:2rem auto;padding:0 1rem}"
        "dt{font-weight:600}dd{margin:0 0 .5rem 0}section{border-top:1px solid #ccc}</style></head><body>"
        f"<h1>Record of processing activities</h1><p>Tenant <code>{e(report['tenant'])}</code>, region "
        f"{e(report['region'])}, generated {e(report['generated_at'])}. Last retention purge: {purge_text}. "
        f"Delivery target: {target_text}.</p>" + "".join(rows) + "</body></html>"
    )


def _delivery_html(delivery: dict[str, Any], e: Callable[[object], str]) -> str:
    if delivery["mode"] != "dataverse":
        return "pulled by the CRM side (/sync), deleted when acknowledged"
    columns = ", ".join(f"<code>{e(f)}</code> &rarr; <code>{e(c)}</code>" for f, c in delivery["columns"].items())
    refused = f"{e(delivery['refused'])}{' or more' if delivery['refused_more'] else ''}"
    text = f"pushed into the table <code>{e(delivery['table'])}</code> ({columns}); refused by Dynamics 365: {refused}"
    receipt = delivery["last_receipt"]
    if receipt is None:
        return text + "; no receipt in the last two days"
    rows = "".join(
        f"<li><code>{e(r['record'])}</code> &rarr; row <code>{e(r['row'])}</code></li>" for r in receipt["rows"]
    )
    return (
        f"{text}; last receipt {e(receipt['at'])}: {e(receipt['records'])} record(s) delivered and deleted"
        f"<ul>{rows}</ul>"
    )
