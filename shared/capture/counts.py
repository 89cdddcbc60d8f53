"""Captures counted per dataset and hour, for the audit trail, without a storage write per capture.

Each instance counts in memory and appends the counts of an hour to the audit trail once that hour is
over (on the first capture of a later hour, on every purge run, and at shutdown). Counts of an instance
that crashes before flushing are lost: the trail then under-counts, it never invents.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from datetime import datetime

from shared.core.errors import PackCloudError
from shared.storage.audit import AuditLog

log = logging.getLogger("packcloud.audit")


def hour_of(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:00Z")


class CaptureCounts:
    def __init__(self, audit: AuditLog) -> None:
        self._audit = audit
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str, str]] = Counter()
        self._current_hour: str | None = None

    def add(self, tenant: str, dataset: str, captured_at: datetime) -> None:
        due = self.count(tenant, dataset, captured_at)
        if due is not None:
            self.flush(before=due)

    def count(self, tenant: str, dataset: str, captured_at: datetime) -> str | None:
        """Count one capture, with no storage request; the hour to `flush` before when a new hour began (the
        async capture flushes in a worker thread), else None."""
        hour = hour_of(captured_at)
        with self._lock:
            self._counts[(tenant, dataset, hour)] += 1
            hour_changed = self._current_hour is not None and hour > self._current_hour
            self._current_hour = max(hour, self._current_hour or hour)
        return hour if hour_changed else None

    def flush(self, before: str | None = None) -> int:
        """Append the counts of every hour earlier than `before` (all hours when None); keep them on failure."""
        with self._lock:
            due = {key: count for key, count in self._counts.items() if before is None or key[2] < before}
            for key in due:
                del self._counts[key]
        written = 0
        for (tenant, dataset, hour), count in sorted(due.items()):
            try:
                self._audit.append(tenant, "captures", dataset=dataset, hour=hour, count=count)
                written += 1
            except PackCloudError:
                log.warning("capture counts not yet written to the audit trail; kept for the next flush")
                with self._lock:
                    self._counts[(tenant, dataset, hour)] += count
        return written

    def pending(self) -> dict[tuple[str, str, str], int]:
        with self._lock:
            return dict(self._counts)
