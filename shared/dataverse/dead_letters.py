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
from typing import Annotated, Any

from azure.core.exceptions import ResourceNotFoundError
from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from shared.capture.store import record_blob
from shared.core.ids import RECORD_ID_PATTERN
from shared.storage.audit import AuditLog
from shared.storage.blobs import RECORDS, TAG_DEAD_LETTER, Storage, storage_errors, tag_query

DEAD_TAG = TAG_DEAD_LETTER
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
    return metadata is not None and STATUS in metadata


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
        with storage_errors(ResourceNotFoundError):
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
        with storage_errors(ResourceNotFoundError):
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
    found = storage.find_page_by_tags(
        RECORDS, tag_query(tenant=tenant, dataset=dataset, dead_letter=True), marker=marker, page_size=limit
    )
    letters = []
    for name in found.names:
        try:
            with storage_errors(ResourceNotFoundError):
                metadata = container.get_blob_client(name).get_blob_properties().metadata
        except ResourceNotFoundError:
            continue
        if is_dead(metadata):
            letters.append(_letter(name, metadata))
    return letters, found.marker


def count(storage: Storage, tenant: str, dataset: str, count_max: int) -> tuple[int, bool]:
    """How many dead letters the dataset holds, up to `count_max` (one tag query), and whether there are more."""
    found = storage.find_page_by_tags(
        RECORDS, tag_query(tenant=tenant, dataset=dataset, dead_letter=True), page_size=count_max + 1
    )
    held = len(found.names)
    return min(held, count_max), held > count_max or found.marker is not None


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


class RetryRequest(BaseModel):
    """`{"ids": [...]}` (each a record id) or `{"all": true}`: the dead letters to make pending again."""

    model_config = ConfigDict(extra="forbid")

    ids: list[Annotated[str, Field(pattern=RECORD_ID_PATTERN)]] | None = Field(
        default=None, min_length=1, max_length=MAX_PAGE
    )
    all: StrictBool = False

    @model_validator(mode="after")
    def _one(self) -> RetryRequest:
        if (self.ids is None) == (not self.all):
            raise ValueError('give either "ids" or "all": true')
        return self


def retry(storage: Storage, audit: AuditLog, tenant: str, dataset: str, request: RetryRequest) -> dict[str, Any]:
    """Make the chosen dead letters pending again (the next run delivers them), at most a page with `all`; one
    audit entry with the count."""
    more = False
    if request.ids is not None:
        ids = list(dict.fromkeys(request.ids))
    else:
        letters, marker = page(storage, tenant, dataset, MAX_PAGE, None)
        ids, more = [letter.record_id for letter in letters], marker is not None
    retried = sum(clear(storage, tenant, dataset, record_id) for record_id in ids)
    if retried:
        audit.append(tenant, "delivery_retry", dataset=dataset, retried=retried)
    return {"retried": retried, "not_failed": len(ids) - retried, "more": more}
