"""A tenant's attachment job: which Dynamics 365 files go to which SharePoint library, and what stays behind.

The job holds no secret: PackCloud signs in to Microsoft Graph as the same Entra application it delivers with (the
tenant's delivery target, shared/dataverse/targets.py), whose `Sites.Selected` grant on the one site decides where
it may write. The document lives in `registry/attachments/jobs/{tenant}.json` and belongs to one generation of its
tenant, as the target does. Every field is checked here, before anything is stored: a bad one is a 422 naming it.
"""

from __future__ import annotations

import re
from datetime import datetime
from secrets import token_hex
from typing import Any, Literal

from azure.core.exceptions import ResourceNotFoundError
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from shared.core.clock import Clock
from shared.core.errors import Conflict
from shared.dataverse.targets import Targets
from shared.registry.models import Tenant
from shared.storage.audit import AuditLog
from shared.storage.blobs import JSON_CONTENT, REGISTRY, Storage, storage_errors

Source = Literal["notes", "email"]
Mode = Literal["link", "copy"]

# Dataverse's own ceiling for a note's or an e-mail attachment's file (131,072 KB).
MAX_FILE_BYTES = 131_072 * 1024
FOLDER_MAX_CHARS = 200
FOLDER_MAX_SEGMENTS = 8
PLACEHOLDERS = ("table", "record_id", "source")
# A table or column logical name in Dataverse: lower-case letters, digits, underscores.
LOGICAL_NAME = r"^[a-z][a-z0-9_]{0,63}$"
# Microsoft Graph: a site id is `hostname,site collection guid,web guid`; a drive id is opaque (`b!` and base64url).
SITE_ID = r"^[A-Za-z0-9.-]{1,253},[0-9A-Fa-f-]{36},[0-9A-Fa-f-]{36}$"
DRIVE_ID = r"^[A-Za-z0-9!_-]{8,200}$"
# Folder segments: placeholders and plain text that SharePoint takes in a name as it is.
_SEGMENT = re.compile(r"^(?:\{[a-z_]+\}|[A-Za-z0-9 _.-])+$")
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


def job_blob(tenant: str) -> str:
    return f"attachments/jobs/{tenant}.json"


def check_folder(pattern: str) -> str:
    """`{table}/{record_id}`: segments of plain text and known placeholders, bounded, never `.` or `..`."""
    if len(pattern) > FOLDER_MAX_CHARS:
        raise ValueError(f"at most {FOLDER_MAX_CHARS} characters")
    segments = pattern.strip("/").split("/")
    if len(segments) > FOLDER_MAX_SEGMENTS:
        raise ValueError(f"at most {FOLDER_MAX_SEGMENTS} folders")
    for segment in segments:
        if segment.strip(" .") == "" or ".." in segment:
            raise ValueError("every folder needs a name, and none may be '.' or hold '..'")
        if segment != segment.strip(" ") or segment.endswith("."):
            raise ValueError("a folder may not begin or end with a space, nor end with '.'")
        if not _SEGMENT.fullmatch(segment):
            raise ValueError(
                "use letters, digits, ' ', '_', '.', '-' and the placeholders {table}, {record_id}, {source}"
            )
        unknown = [name for name in _PLACEHOLDER.findall(segment) if name not in PLACEHOLDERS]
        if unknown:
            raise ValueError("only the placeholders {table}, {record_id} and {source} are known")
    return "/".join(segments)


class AttachmentJobIn(BaseModel):
    """`PUT /api/manage/tenants/{tenant}/attachments`."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    sources: list[Source] = Field(min_length=1, max_length=2, description="notes with files, e-mail attachments")
    note_tables: list[str] = Field(
        default_factory=list,
        max_length=50,
        validate_default=True,
        description="the tables (logical names) whose notes' files move",
    )
    site_id: str = Field(pattern=SITE_ID, description="the SharePoint site (Graph site id)")
    drive_id: str = Field(pattern=DRIVE_ID, description="the document library (Graph drive id)")
    folder: str = Field(default="{table}/{record_id}", min_length=1, max_length=FOLDER_MAX_CHARS)
    mode: Mode = Field(description="link: replace the file in Dynamics 365 by a link once copied; copy: keep both")
    # No link column to choose: the note table takes no column of one's own (CanCreateAttributes is false), so the
    # link goes into the note's text (shared/attachments/sources.py).
    max_file_bytes: int = Field(default=MAX_FILE_BYTES, ge=1, le=MAX_FILE_BYTES)

    @field_validator("sources")
    @classmethod
    def _distinct_sources(cls, value: list[Source]) -> list[Source]:
        if len(set(value)) != len(value):
            raise ValueError("each source once")
        return value

    @field_validator("note_tables")
    @classmethod
    def _tables(cls, value: list[str], info: ValidationInfo) -> list[str]:
        notes = "notes" in (info.data.get("sources") or ())
        if notes and not value:
            raise ValueError("give at least one table when notes are a source")
        if value and not notes:
            raise ValueError("only with the notes source")
        pattern = re.compile(LOGICAL_NAME)
        for table in value:
            if not pattern.fullmatch(table):
                raise ValueError("each table is a logical name: lower-case letters, digits and '_', 1 to 64")
        if len(set(value)) != len(value):
            raise ValueError("each table once")
        return value

    @field_validator("folder")
    @classmethod
    def _folder(cls, value: str) -> str:
        return check_folder(value)


class AttachmentJob(AttachmentJobIn):
    """As stored."""

    tenant: str
    tenant_generation: str
    version: str = Field(pattern=r"^[0-9a-f]{16}$")
    created_at: datetime
    updated_at: datetime

    def public(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"tenant_generation"})


class AttachmentJobs:
    def __init__(self, storage: Storage, targets: Targets, audit: AuditLog, clock: Clock) -> None:
        self._storage = storage
        self._targets = targets
        self._audit = audit
        self._clock = clock

    def put(self, tenant: Tenant, change: AttachmentJobIn) -> tuple[AttachmentJob, bool]:
        if self._targets.get(tenant) is None:
            # The Entra application that Graph signs in as is the delivery target's: without it nothing can move.
            raise Conflict("no_target", "the tenant has no delivery target: PUT .../delivery first")
        existing = self.get(tenant)
        now = self._clock.now()
        job = AttachmentJob(
            **change.model_dump(),
            tenant=tenant.id,
            tenant_generation=tenant.generation,
            version=token_hex(8),
            created_at=existing.created_at if existing else now,
            updated_at=now,
        )
        with storage_errors():
            self._storage.container(REGISTRY).upload_blob(
                job_blob(tenant.id), job.model_dump_json().encode(), overwrite=True, content_settings=JSON_CONTENT
            )
        self._audit.append(
            tenant.id,
            "attachment_job",
            change="replaced" if existing else "created",
            sources=list(job.sources),
            mode=job.mode,
            site=job.site_id,
            version=job.version,
        )
        return job, existing is None

    def get(self, tenant: Tenant) -> AttachmentJob | None:
        body, _ = self._storage.read_json(REGISTRY, job_blob(tenant.id))
        if body is None:
            return None
        job = AttachmentJob.model_validate(body)
        return job if job.tenant_generation == tenant.generation else None

    def delete(self, tenant_id: str) -> bool:
        with storage_errors(ResourceNotFoundError):
            try:
                self._storage.container(REGISTRY).delete_blob(job_blob(tenant_id))
            except ResourceNotFoundError:
                return False
        return True

    def remove(self, tenant_id: str) -> bool:
        if not self.delete(tenant_id):
            return False
        self._audit.append(tenant_id, "attachment_job", change="deleted")
        return True

    def all(self) -> list[str]:
        """The tenants of this deployment with a job: one listing."""
        with storage_errors():
            names = [b.name for b in self._storage.container(REGISTRY).list_blobs(name_starts_with="attachments/jobs/")]
        return [name.rsplit("/", 1)[-1].removesuffix(".json") for name in names]
