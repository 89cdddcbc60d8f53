"""What a tenant's attachment job is doing: for `GET .../attachments` and the DPO report. Ids, sizes, counts and
reason codes only: never a file name or content (PackCloud does not have them)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from shared.attachments.config import AttachmentJob, AttachmentJobs
from shared.attachments.progress import MARKERS_MAX, Progress
from shared.registry.models import Tenant

GUID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


class RetryIn(BaseModel):
    """`POST .../attachments/retry`: `{"ids": [attachment id, ...]}` or `{"all": true}`."""

    model_config = ConfigDict(extra="forbid")

    ids: list[Annotated[str, Field(pattern=GUID)]] | None = Field(default=None, min_length=1, max_length=MARKERS_MAX)
    all: StrictBool = False

    @model_validator(mode="after")
    def _one(self) -> RetryIn:
        if (self.ids is None) == (not self.all):
            raise ValueError('give either "ids" or "all": true')
        return self


def job_status(progress: Progress, job: AttachmentJob) -> dict[str, Any]:
    cursor = progress.cursor(job.tenant)
    markers = progress.markers(job.tenant)
    current = cursor.job_version == job.version
    return {
        "last_run": cursor.last_run,
        "paused_until": cursor.paused_until.isoformat() if cursor.paused_until else None,
        "cursor": {"notes": cursor.notes, "email": cursor.email} if current else {"notes": 0, "email": 0},
        "moving": [m.public() for m in markers if m.state == "moving"],
        "failed": [m.public() for m in markers if m.state in ("failed", "retry")],
    }


def shown(progress: Progress, job: AttachmentJob) -> dict[str, Any]:
    return {**job.public(), "status": job_status(progress, job)}


def report_summary(jobs: AttachmentJobs, progress: Progress, tenant: Tenant) -> dict[str, Any] | None:
    """The DPO report's section: where files go, what stays in Dynamics 365, and the files refused."""
    job = jobs.get(tenant)
    if job is None:
        return None
    status = job_status(progress, job)
    return {
        "sources": list(job.sources),
        "note_tables": list(job.note_tables),
        "site_id": job.site_id,
        "drive_id": job.drive_id,
        "mode": job.mode,
        "max_file_bytes": job.max_file_bytes,
        "last_run": status["last_run"],
        "failed": status["failed"],
    }
