"""Records Dynamics 365 refused (a 400: a missing column, a value too long, a bad lookup): the dead letters.

A refused record stays where it is, a record like any other: it expires at its dataset's retention, an erasure
finds it, and it is delivered again only when someone asks (`POST /api/sync/{tenant}/{dataset}/failed/retry`).
It is marked twice: blob metadata, which the deliverer's listing reads without another request, holds the
refusal (the HTTP status, the OData error code, the message with every value removed, the time); and a blob index
tag `dl`, so that the dead letters of a dataset are found with one tag query, never by listing its records.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from azure.core.exceptions import ResourceNotFoundError

from shared.capture.store import record_blob
from shared.storage.blobs import RECORDS, Storage, tag_filter

DEAD_TAG = "dl"
STATUS = "pc_refused_status"
CODE = "pc_refused_code"
MESSAGE = "pc_refused_message"
AT = "pc_refused_at"
MAX_PAGE = 1000


@dataclass(frozen=True)
class DeadLetter:
    record_id: str
    status: int | None
    code: str | None
    message: str | None
    at: str | None

    def public(self) -> dict[str, Any]:
        return {"id": self.record_id, "status": self.status, "code": self.code, "message": self.message, "at": self.at}


def is_dead(metadata: Mapping[str, str] | None) -> bool:
    return bool(metadata) and STATUS in metadata  # type: ignore[operator]


def mark(
    storage: Storage,
    tenant: str,
    dataset: str,
    record_id: str,
    status: int,
    code: str | None,
    message: str | None,
    at: datetime,
) -> bool:
    """Mark a refused record; False when it is gone meanwhile. `message` must already be scrubbed of values."""
    blob = storage.container(RECORDS).get_blob_client(record_blob(tenant, dataset, record_id))
    metadata = {STATUS: str(status), CODE: _ascii(code or ""), MESSAGE: _ascii(message or ""), AT: at.isoformat()}
    try:
        # Metadata first: the deliverer skips the record from then on, even before the tag index knows it.
        blob.set_blob_metadata(metadata)
        tags = blob.get_blob_tags()
        blob.set_blob_tags({**tags, DEAD_TAG: "1"})
    except ResourceNotFoundError:
        return False
    return True


def clear(storage: Storage, tenant: str, dataset: str, record_id: str) -> bool:
    """Make a dead letter pending again; False when it is not (or no longer) one."""
    blob = storage.container(RECORDS).get_blob_client(record_blob(tenant, dataset, record_id))
    try:
        if not is_dead(blob.get_blob_properties().metadata):
            return False
        tags = blob.get_blob_tags()
        blob.set_blob_tags({name: value for name, value in tags.items() if name != DEAD_TAG})
        blob.set_blob_metadata({})
    except ResourceNotFoundError:
        return False
    return True


def page(
    storage: Storage, tenant: str, dataset: str, limit: int, marker: str | None
) -> tuple[list[DeadLetter], str | None]:
    """One page of the dataset's dead letters (at most `limit`, one tag query, then one read of each one's
    properties), and the marker of the next page (None: no more)."""
    container = storage.container(RECORDS)
    where = tag_filter(t=tenant, d=dataset, **{DEAD_TAG: "1"})
    pages = container.find_blobs_by_tags(where, results_per_page=limit).by_page(marker)
    names = [item.name for item in next(pages, [])]
    letters = []
    for name in names:
        try:
            metadata = container.get_blob_client(name).get_blob_properties().metadata
        except ResourceNotFoundError:
            continue
        if is_dead(metadata):
            letters.append(_letter(name, metadata))
    return letters, pages.continuation_token or None


def count(storage: Storage, tenant: str, dataset: str, count_max: int) -> tuple[int, bool]:
    """How many dead letters the dataset holds, up to `count_max` (one tag query), and whether there are more."""
    where = tag_filter(t=tenant, d=dataset, **{DEAD_TAG: "1"})
    pages = storage.container(RECORDS).find_blobs_by_tags(where, results_per_page=count_max + 1).by_page()
    found = len(list(next(pages, [])))
    return min(found, count_max), found > count_max or bool(pages.continuation_token)


def _letter(name: str, metadata: Mapping[str, str]) -> DeadLetter:
    status = metadata.get(STATUS, "")
    return DeadLetter(
        record_id=name.rsplit("/", 1)[-1].removesuffix(".json"),
        status=int(status) if status.isdigit() else None,
        code=metadata.get(CODE) or None,
        message=metadata.get(MESSAGE) or None,
        at=metadata.get(AT) or None,
    )


def _ascii(text: str) -> str:
    """Blob metadata values are ASCII (they travel as HTTP headers)."""
    return "".join(ch if " " <= ch <= "~" else " " for ch in text)[:1000]
