"""The retention purge: deletes every record (and every piece of personal state) past its expiry.

Cost grows with what expires, not with what is live: expired blobs are found through the blob index
(`exp <= now`, and per dataset `cap <= now - retention` so that a lowered retention applies to records
already stored), never by listing, and deleted 256 per request. A run has a time budget; a run that is
stopped halfway leaves only blobs that the next run's queries find again, so it is idempotent and resumes.
Each run appends one audit entry (counts per dataset, oldest remaining record, duration); no personal data.

By hand: `python -m shared.purge [--dry-run]` (shared/cli.py).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from shared.core.clock import Clock
from shared.core.events import NO_EVENTS, PURGE_FAILED, PURGE_PAST_RETENTION, Events
from shared.core.ids import is_record_id, record_id_time
from shared.registry.store import Registry
from shared.storage.audit import SYSTEM, AuditLog
from shared.storage.blobs import RECORDS, STATE, Storage, storage_errors, tag_query

log = logging.getLogger("packcloud.purge")

DEFAULT_BUDGET_S = 240.0  # well inside the 5-minute function timeout of host.json
# A tag query or a batch of 256 deletions can take longer than a request may wait (on Azurite holding 20,000
# blobs, over a minute): the purge is a job, not an answer someone waits for, so one call may take its whole
# budget rather than fail and start the same work again.
READ_TIMEOUT_S = DEFAULT_BUDGET_S
AUDIT_RETENTION_HOUR = 0  # old audit days are deleted by the first run after midnight UTC


@dataclass
class DatasetCounts:
    deleted_expired: int = 0
    deleted_over_retention: int = 0
    deleted_for_delivery: int = 0
    oldest_remaining_age_s: float | None = None


@dataclass
class PurgeReport:
    started_at: datetime
    dry_run: bool
    complete: bool = True
    duration_s: float = 0.0
    state_deleted: int = 0
    audit_days_deleted: int = 0
    datasets: dict[tuple[str, str], DatasetCounts] = field(default_factory=dict)
    would_delete: list[str] = field(default_factory=list)

    def counts(self, tenant: str, dataset: str) -> DatasetCounts:
        return self.datasets.setdefault((tenant, dataset), DatasetCounts())

    @property
    def deleted(self) -> int:
        return sum(c.deleted_expired + c.deleted_over_retention for c in self.datasets.values())

    def as_audit(self) -> dict[str, Any]:
        return {
            "started_at": self.started_at.isoformat(),
            "complete": self.complete,
            "duration_s": round(self.duration_s, 3),
            "state_deleted": self.state_deleted,
            "audit_days_deleted": self.audit_days_deleted,
            "datasets": [
                {"tenant": tenant, "dataset": dataset, **vars(counts)}
                for (tenant, dataset), counts in sorted(self.datasets.items())
            ],
        }


def split_record_name(name: str) -> tuple[str, str] | None:
    parts = name.split("/")
    if len(parts) != 3 or not parts[2].endswith(".json") or not is_record_id(parts[2][:-5]):
        return None
    return parts[0], parts[1]


def record_time(name: str) -> datetime | None:
    """Capture time from a record blob name (ids start with the UTC capture time)."""
    try:
        return record_id_time(name.rsplit("/", 1)[-1])
    except ValueError:
        return None


class Purger:
    def __init__(
        self,
        storage: Storage,
        registry: Registry,
        audit: AuditLog,
        clock: Clock,
        *,
        region: str,
        audit_retention_days: int,
        events: Events = NO_EVENTS,
        budget_s: float = DEFAULT_BUDGET_S,
    ) -> None:
        self._storage = storage
        self._registry = registry
        self._audit = audit
        self._clock = clock
        self._region = region
        self._audit_retention_days = audit_retention_days
        self._events = events
        self._budget_s = budget_s

    def run(self, *, dry_run: bool = False) -> PurgeReport:
        started = time.monotonic()
        now = self._clock.now()
        report = PurgeReport(started_at=now, dry_run=dry_run)
        deadline = started + self._budget_s
        retention: dict[tuple[str, str], int] = {}
        try:
            with storage_errors():
                expired = tag_query(expired_by=now)
                self._delete_matching(RECORDS, expired, report, deadline, "deleted_expired")
                for tenant, dataset, retention_days in self._local_datasets():
                    retention[(tenant, dataset)] = retention_days
                    cutoff = now - timedelta(days=retention_days)
                    where = tag_query(tenant=tenant, dataset=dataset, captured_by=cutoff)
                    self._delete_matching(RECORDS, where, report, deadline, "deleted_over_retention")
                    report.counts(tenant, dataset)
                report.state_deleted = self._delete_matching(STATE, expired, report, deadline)
                if not dry_run and now.hour == AUDIT_RETENTION_HOUR:
                    for scope in self._audit.scopes():
                        report.audit_days_deleted += self._audit.delete_older_than(scope, self._audit_retention_days)
                self._measure_remaining(report, now)
        except _OutOfTime:
            report.complete = False
        except Exception as error:
            if not dry_run:
                facts = {"started_at": now.isoformat(), "error": type(error).__name__}
                self._events.emit(SYSTEM, PURGE_FAILED, facts)
            raise
        report.duration_s = time.monotonic() - started
        if not dry_run:
            self._count_deliveries(report)
            self._write_audit(report)
            self._tell_past_retention(report, retention)
        return report

    def _tell_past_retention(self, report: PurgeReport, retention: dict[tuple[str, str], int]) -> None:
        """One event per tenant whose datasets held records past their retention: deleted by this run because the
        retention was lowered, or still there after it (a run out of time, or records the tags did not find)."""
        found: dict[str, list[dict[str, Any]]] = {}
        for (tenant, dataset), counts in sorted(report.datasets.items()):
            days = retention.get((tenant, dataset))
            if days is None:
                continue
            left = counts.oldest_remaining_age_s
            remaining = left is not None and left > days * 86400
            if counts.deleted_over_retention or remaining:
                found.setdefault(tenant, []).append(
                    {
                        "dataset": dataset,
                        "retention_days": days,
                        "deleted_past_retention": counts.deleted_over_retention,
                        "oldest_remaining_age_s": left if remaining else None,
                    }
                )
        for tenant, datasets in found.items():
            self._events.emit(
                tenant, PURGE_PAST_RETENTION, {"started_at": report.started_at.isoformat(), "datasets": datasets}
            )

    def _local_datasets(self) -> list[tuple[str, str, int]]:
        found: list[tuple[str, str, int]] = []
        for tenant in self._registry.list_tenants():
            if tenant.region != self._region:
                continue
            found.extend((tenant.id, doc.id, doc.retention_days) for doc in self._registry.list_datasets(tenant.id))
        return found

    def _delete_matching(
        self, container: str, where: str, report: PurgeReport, deadline: float, counter: str | None = None
    ) -> int:
        deleted = 0
        batch: list[str] = []
        for name in self._storage.find_by_tags(container, where, read_timeout=READ_TIMEOUT_S):
            batch.append(name)
            if len(batch) == 256:
                deleted += self._flush(container, batch, report, counter)
                batch = []
                if time.monotonic() > deadline:
                    raise _OutOfTime
        if batch:
            deleted += self._flush(container, batch, report, counter)
        return deleted

    def _flush(self, container: str, names: list[str], report: PurgeReport, counter: str | None) -> int:
        if report.dry_run:
            report.would_delete.extend(f"{container}/{name}" for name in names)
            deleted = len(names)
        else:
            deleted = self._storage.delete_names(container, names, read_timeout=READ_TIMEOUT_S)
        if counter is not None:
            for name in names:
                owner = split_record_name(name)
                if owner is not None:
                    counts = report.counts(*owner)
                    setattr(counts, counter, getattr(counts, counter) + 1)
        return deleted

    def _measure_remaining(self, report: PurgeReport, now: datetime) -> None:
        # Names sort by capture time, so the first name under a dataset's prefix is its oldest record:
        # one name per dataset, read after the deletions.
        container = self._storage.container(RECORDS)
        for (tenant, dataset), counts in report.datasets.items():
            names = container.list_blobs(
                name_starts_with=f"{tenant}/{dataset}/", results_per_page=1, read_timeout=READ_TIMEOUT_S
            )
            page = next(names.by_page())
            first = next(iter(page), None)
            captured = record_time(first.name) if first is not None else None
            if captured is not None:
                counts.oldest_remaining_age_s = round((now - captured).total_seconds(), 1)

    def _count_deliveries(self, report: PurgeReport) -> None:
        """Delivered records are deleted when acknowledged; each run reports those since the tenant's last run."""
        now = report.started_at.isoformat()
        for tenant in {tenant for tenant, _ in report.datasets}:
            entries = self._audit.entries(tenant, since=report.started_at - timedelta(days=2))
            previous = [e["at"] for e in entries if e.get("kind") == "purge" and e["at"] < now]
            since = previous[-1] if previous else ""
            for entry in entries:
                if entry.get("kind") == "delivery" and since < entry["at"] <= now:
                    key = (tenant, str(entry.get("dataset")))
                    if key in report.datasets:
                        report.datasets[key].deleted_for_delivery += int(entry.get("deleted", 0))

    def _write_audit(self, report: PurgeReport) -> None:
        entry = report.as_audit()
        self._audit.append(SYSTEM, "purge", **entry)
        by_tenant: Counter[str] = Counter()
        for (tenant, _), counts in report.datasets.items():
            by_tenant[tenant] += counts.deleted_expired + counts.deleted_over_retention + counts.deleted_for_delivery
        for tenant, deleted in by_tenant.items():
            # Also when only deliveries were counted: the entry marks where the next run starts counting.
            if deleted:
                datasets = [d for d in entry["datasets"] if d["tenant"] == tenant]
                self._audit.append(tenant, "purge", deleted=deleted, datasets=datasets)


class _OutOfTime(Exception):
    """The run's time budget is spent; the next run continues where this one stopped."""
