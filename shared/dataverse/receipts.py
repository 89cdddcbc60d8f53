"""Delivery receipts: which record ids became which Dataverse row ids, one small document per delivered batch.

A receipt is written after Dynamics 365 answered that it stored the rows and before the records are deleted, so
every deleted record has one. It holds ids only (the record id, its dataset, the table and the row's GUID), never a
value. Receipts live in the audit container under `{tenant}.receipts/{day}/{dataset}/` (a scope that can never be a
tenant id: ids hold no dot), and the purge deletes them with the audit days (PACKCLOUD_AUDIT_RETENTION_DAYS).
The DPO report shows each dataset's latest receipt.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from itertools import islice
from secrets import token_hex
from typing import Any

from azure.core.exceptions import ResourceNotFoundError

from shared.storage.blobs import AUDIT, JSON_CONTENT, Storage, storage_errors

SHOWN_ROWS = 100
LISTED_MAX = 5000


def receipt_scope(tenant: str) -> str:
    return f"{tenant}.receipts"


def write(storage: Storage, tenant: str, dataset: str, table: str, rows: dict[str, str | None], at: datetime) -> str:
    """Store one batch's receipt; StorageUnavailable when it could not be written (the records then stay)."""
    name = f"{receipt_scope(tenant)}/{at:%Y-%m-%d}/{dataset}/{_newest_first(at)}-{token_hex(4)}.json"
    body = {"at": at.isoformat(), "tenant": tenant, "dataset": dataset, "table": table, "rows": rows}
    with storage_errors():
        storage.container(AUDIT).upload_blob(name, json.dumps(body).encode(), content_settings=JSON_CONTENT)
    return name


def _newest_first(at: datetime) -> str:
    """Microseconds until the end of the day, fixed width: a day's receipts list newest first."""
    elapsed = at - at.replace(hour=0, minute=0, second=0, microsecond=0)
    left = timedelta(days=1) - elapsed
    return f"{left // timedelta(microseconds=1):011d}"


def latest(storage: Storage, tenant: str, dataset: str, now: datetime) -> dict[str, Any] | None:
    """The dataset's latest receipt of today or yesterday, its first SHOWN_ROWS rows shown, with how many receipts
    today holds (up to LISTED_MAX): at most two listings and one read."""
    container = storage.container(AUDIT)
    for day in (now, now - timedelta(days=1)):
        prefix = f"{receipt_scope(tenant)}/{day:%Y-%m-%d}/{dataset}/"
        try:
            with storage_errors(ResourceNotFoundError):
                names = [blob.name for blob in islice(container.list_blobs(name_starts_with=prefix), LISTED_MAX)]
                if not names:
                    continue
                body = json.loads(container.download_blob(names[0]).readall())
        except ResourceNotFoundError:
            continue
        rows = body.get("rows", {})
        shown = [{"record": record, "row": row} for record, row in islice(rows.items(), SHOWN_ROWS)]
        return {
            "at": body.get("at"),
            "table": body.get("table"),
            "records": len(rows),
            "rows": shown,
            "receipts_that_day": len(names),
        }
    return None
