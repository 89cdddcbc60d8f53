"""What the mover keeps in PackCloud's storage: its cursor and one small marker per file in flight or refused.

Neither holds content or a file name. The cursor (`registry/attachments/cursors/{tenant}.json`) holds, per
source, the last row version fully handled, the job version it belongs to (a changed job starts again from the
beginning), the pause a 429 asked for and the last run's counts. A marker
(`state/{tenant}/attachments/{source}/{attachment id}.json`) holds the attachment id, its size, its state
(`moving`, `failed` with a reason code, `retry` when asked) and a time; it is tagged with the tenant and an expiry
a day after it was written (`t`, `exp`), so the retention purge deletes it like other expired state. A run
deletes the marker of each file it finished, and writes a refused file's marker again, so a refusal stays listed
while the job runs and disappears a day after the job stops.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from azure.core.exceptions import ResourceNotFoundError
from pydantic import BaseModel, ConfigDict, Field

from shared.attachments.config import Source
from shared.core.clock import Clock, tag_time
from shared.storage.blobs import (
    JSON_CONTENT,
    REGISTRY,
    STATE,
    TAG_EXPIRES,
    TAG_TENANT,
    Storage,
    storage_errors,
)

MARKER_TTL = timedelta(hours=23)  # within a day, whatever the purge's hour
MARKERS_MAX = 1000  # markers a run or a status reads at most
MarkerState = Literal["moving", "failed", "retry"]


def cursor_blob(tenant: str) -> str:
    return f"attachments/cursors/{tenant}.json"


def markers_prefix(tenant: str) -> str:
    return f"{tenant}/attachments/"


def marker_blob(tenant: str, source: Source, attachment_id: str) -> str:
    return f"{markers_prefix(tenant)}{source}/{attachment_id}.json"


class Cursor(BaseModel):
    model_config = ConfigDict(extra="forbid")

    job_version: str = ""
    notes: int = 0
    email: int = 0
    paused_until: datetime | None = None
    last_run: dict[str, Any] | None = None


class Marker(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Source
    id: str = Field(pattern=r"^[0-9a-f-]{36}$")
    size: int
    state: MarkerState
    reason: str | None = None
    at: datetime

    def public(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


@dataclass
class Progress:
    storage: Storage
    clock: Clock

    # -- the cursor -------------------------------------------------------------------------

    def cursor(self, tenant: str) -> Cursor:
        body, _ = self.storage.read_json(REGISTRY, cursor_blob(tenant))
        return Cursor.model_validate(body) if body is not None else Cursor()

    def save_cursor(self, tenant: str, cursor: Cursor) -> None:
        with storage_errors():
            self.storage.container(REGISTRY).upload_blob(
                cursor_blob(tenant), cursor.model_dump_json().encode(), overwrite=True, content_settings=JSON_CONTENT
            )

    def forget(self, tenant: str) -> None:
        """The cursor and every marker of the tenant (its job was deleted)."""
        with storage_errors():
            registry = self.storage.container(REGISTRY)
            with contextlib.suppress(ResourceNotFoundError):
                registry.delete_blob(cursor_blob(tenant))
            names = [b.name for b in self.storage.container(STATE).list_blobs(name_starts_with=markers_prefix(tenant))]
        self.storage.delete_names(STATE, names)

    # -- markers ----------------------------------------------------------------------------

    def mark(
        self, tenant: str, source: Source, attachment_id: str, size: int, state: MarkerState, reason: str | None = None
    ) -> Marker:
        now = self.clock.now()
        marker = Marker(source=source, id=attachment_id, size=size, state=state, reason=reason, at=now)
        tags = {TAG_TENANT: tenant, TAG_EXPIRES: tag_time(now + MARKER_TTL)}
        with storage_errors():
            self.storage.container(STATE).upload_blob(
                marker_blob(tenant, source, attachment_id),
                marker.model_dump_json().encode(),
                overwrite=True,
                tags=tags,
                content_settings=JSON_CONTENT,
            )
        return marker

    def done(self, tenant: str, source: Source, attachment_id: str) -> None:
        self.storage.delete_names(STATE, [marker_blob(tenant, source, attachment_id)])

    def markers(self, tenant: str, limit: int = MARKERS_MAX) -> list[Marker]:
        """The tenant's markers (at most `limit`), oldest name first."""
        with storage_errors():
            listed = self.storage.container(STATE).list_blobs(name_starts_with=markers_prefix(tenant))
            names = []
            for blob in listed:
                names.append(blob.name)
                if len(names) >= limit:
                    break
        found = []
        for body in self.storage.read_json_each(STATE, names):
            if body is not None:
                found.append(Marker.model_validate(body))
        return found

    def retry(self, tenant: str, ids: set[str] | None) -> tuple[int, int]:
        """Mark refused files (those of `ids`, or all) for the next run; answers (marked, not refused)."""
        refused = {m.id: m for m in self.markers(tenant) if m.state in ("failed", "retry")}
        wanted = set(refused) if ids is None else ids
        marked = 0
        for attachment_id in sorted(wanted):
            marker = refused.get(attachment_id)
            if marker is not None:
                self.mark(tenant, marker.source, marker.id, marker.size, "retry", marker.reason)
                marked += 1
        return marked, len(wanted) - marked
