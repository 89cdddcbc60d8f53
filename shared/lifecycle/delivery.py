"""Delivery to Dynamics 365: a feed of captured records in capture order, and acknowledgements.

The CRM side pages with `next_cursor` (the last record id it received) and acknowledges what it has
stored. An acknowledged record is deleted at once (storage limitation: nothing is kept once delivered),
which is earlier than the next purge, and counted in the tenant's audit trail as a delivery.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.capture.store import COMMIT_DEADLINE, record_blob
from shared.core.clock import Clock
from shared.core.errors import BadRequest
from shared.core.ids import RECORD_ID_PATTERN, is_record_id, record_id_time
from shared.lifecycle.generations import Generations, drop_stale
from shared.registry.models import MAX_RETENTION_DAYS
from shared.storage.audit import AuditLog
from shared.storage.blobs import RECORDS, Storage, storage_errors

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
# Records younger than this are not delivered yet: every record commits within COMMIT_DEADLINE of its id's
# timestamp, so once a page passes an id, no record with a smaller id can still appear behind it.
SETTLE = COMMIT_DEADLINE + timedelta(seconds=5)
# A page lists one prefix per day from its cursor's day, so the cursor's age sets the work of a request. No
# record outlives the longest retention, so an older cursor can only point before everything still held.
OLDEST_CURSOR = timedelta(days=MAX_RETENTION_DAYS) + SETTLE


class AckRequest(BaseModel):
    """What the CRM side acknowledges: record ids of the feed, each counted once however often it is named."""

    model_config = ConfigDict(extra="forbid")

    ids: list[Annotated[str, Field(pattern=RECORD_ID_PATTERN)]] = Field(min_length=1, max_length=MAX_LIMIT)

    @field_validator("ids")
    @classmethod
    def _distinct(cls, ids: list[str]) -> list[str]:
        return list(dict.fromkeys(ids))


@dataclass(frozen=True)
class Page:
    records: list[dict[str, Any]]
    next_cursor: str | None
    more: bool


def check_cursor_age(cursor: str | None, now: datetime) -> None:
    """Refuse a cursor from before anything still held, or from the future: no page ever handed it out."""
    if cursor is None:
        return
    captured = record_id_time(cursor)
    if captured < now - OLDEST_CURSOR:
        raise BadRequest(
            "cursor_too_old",
            f"cursor is older than {MAX_RETENTION_DAYS} days, the longest retention: every record it followed "
            "has expired; start again without a cursor",
        )
    if captured > now:
        raise BadRequest("cursor_in_future", "cursor is later than now: pass a next_cursor from an earlier page")


class Delivery:
    def __init__(self, storage: Storage, audit: AuditLog, clock: Clock) -> None:
        self._storage = storage
        self._audit = audit
        self._clock = clock

    def page(self, tenant: str, dataset: str, cursor: str | None, limit: int, generations: Generations) -> Page:
        """`generations`: read fresh before this call. A record of a newer generation than those would have to
        be captured after that read, so it is younger than the horizon and not looked at yet."""
        check_cursor_age(cursor, self._clock.now())
        horizon = self._clock.now() - SETTLE
        names: list[str] = []
        more = False
        with storage_errors():
            for name in self._names_after(tenant, dataset, cursor, horizon):
                if len(names) == limit:
                    more = True
                    break
                names.append(name)
        found = [record for record in self._storage.read_json_each(RECORDS, names) if record is not None]
        # Leftovers of a deleted tenant or dataset generation are never delivered: deleted here instead.
        records = drop_stale(self._storage, self._audit, generations, tenant, found)
        last = names[-1].rsplit("/", 1)[-1].removesuffix(".json") if names else cursor
        return Page(records, last, more)

    def acknowledge(
        self, tenant: str, dataset: str, ids: list[str], *, audit: bool = True, read_timeout: float | None = None
    ) -> tuple[int, int]:
        """Delete delivered records; answers (deleted now, already gone). Idempotent. For the Dataverse deliverer,
        a job: `audit=False` (it writes one delivery entry per dataset and run) and a longer `read_timeout`."""
        names = [record_blob(tenant, dataset, record_id) for record_id in ids]
        deleted, already_gone = self._storage.delete_each(RECORDS, names, read_timeout=read_timeout)
        if deleted and audit:
            self._audit.append(tenant, "delivery", dataset=dataset, acknowledged=len(ids), deleted=deleted)
        return deleted, already_gone

    def _names_after(self, tenant: str, dataset: str, cursor: str | None, horizon: datetime) -> Iterator[str]:
        """Record names in id order after the cursor and no younger than the horizon.

        Ids begin with the capture date, so listing starts at the cursor's day instead of the beginning.
        """
        container = self._storage.container(RECORDS)
        base = f"{tenant}/{dataset}/"
        if cursor is None:
            prefixes = [base]
        else:
            day, last = record_id_time(cursor).date(), horizon.date()
            prefixes = [f"{base}{day + timedelta(days=n):%Y%m%d}" for n in range((last - day).days + 1)]
        for prefix in prefixes:
            for blob in container.list_blobs(name_starts_with=prefix):
                record_id = blob.name[len(base) :].removesuffix(".json")
                if not is_record_id(record_id) or (cursor is not None and record_id <= cursor):
                    continue
                if record_id_time(record_id) > horizon:
                    return
                yield blob.name
