"""Data-subject requests (GDPR art. 15, 17, 20): export and erase one person's data in this region.

Records and personal state are found through the keyed subject hash in their blob index tags, never by
reading every record. The subject of a request is normalised with each dataset's subject field, as capture
normalised it, so every spelling capture accepts finds the same records (`shared/subjects.py`).

Audit entries carry a random request id and counts, never the subject nor its hash: a per-person value in
the audit would link a person's requests for as long as the audit is kept (400 days), far past the data.
The id is answered to the caller, so the controller can match the entry with its own log.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import AzureError, ResourceNotFoundError
from pydantic import BaseModel, ConfigDict, Field

from shared.audit import AuditLog
from shared.blobs import RECORDS, STATE, Storage, tag_filter
from shared.errors import StorageUnavailable
from shared.generations import Generations, drop_stale
from shared.personal_state import parse_state_name
from shared.registry import Registry
from shared.subjects import request_tags


class SubjectRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    subject: str = Field(min_length=1, max_length=1024, description="the value of the datasets' subject field")


@dataclass(frozen=True)
class Found:
    """The names of one subject's records and personal state."""

    records: list[str]
    state: list[str]


@dataclass(frozen=True)
class Erased:
    request_id: str
    records: int
    state: int


def new_request_id() -> str:
    return str(uuid.uuid4())


class SubjectRequests:
    def __init__(self, storage: Storage, registry: Registry, audit: AuditLog, master_key: str) -> None:
        self._storage = storage
        self._registry = registry
        self._audit = audit
        self._master_key = master_key

    def _find(self, tenant: str, subject: str) -> Found:
        """Everything tagged with any of the subject's tags (one per distinct normalisation), without a scan."""
        tags = request_tags(self._master_key, tenant, self._registry.list_datasets(tenant), subject)
        records: set[str] = set()
        state: set[str] = set()
        for tag in sorted(tags):
            where = tag_filter(t=tenant, sub=tag)
            records.update(self._storage.find_by_tags(RECORDS, where))
            state.update(self._storage.find_by_tags(STATE, where))
        return Found(sorted(records), sorted(state))

    def export(self, tenant: str, subject: str) -> dict[str, Any]:
        request_id = new_request_id()
        try:
            found = self._find(tenant, subject)
            records = self._read_all(RECORDS, found.records)
            state = self._read_state(tenant, found.state)
            # Never a record of a deleted tenant or dataset generation (deleted instead): see shared/generations.py.
            records = drop_stale(self._storage, self._audit, Generations.read(self._registry, tenant), tenant, records)
        except AzureError:
            raise StorageUnavailable() from None
        datasets: dict[str, dict[str, Any]] = {}
        for record in records:
            self._dataset_entry(datasets, tenant, record["dataset"])["records"].append(record)
        for dataset_id, item in state:
            self._dataset_entry(datasets, tenant, dataset_id)["state"].append(item)
        self._audit.append(tenant, "export", request=request_id, records=len(records), state=len(state))
        return {
            "tenant": tenant,
            "request_id": request_id,
            "record_count": len(records),
            "state_count": len(state),
            "datasets": datasets,
        }

    def erase(self, tenant: str, subject: str) -> Erased:
        request_id = new_request_id()
        try:
            found = self._find(tenant, subject)
            deleted = self._storage.delete_names(RECORDS, found.records)
            state = self._storage.delete_names(STATE, found.state)
        except AzureError:
            raise StorageUnavailable() from None
        self._audit.append(tenant, "erasure", request=request_id, records=deleted, state=state)
        return Erased(request_id, deleted, state)

    def _dataset_entry(self, datasets: dict[str, dict[str, Any]], tenant: str, dataset_id: str) -> dict[str, Any]:
        if dataset_id not in datasets:
            doc = self._registry.get_dataset(tenant, dataset_id)
            datasets[dataset_id] = {
                "purpose": doc.purpose if doc else None,
                "legal_basis": doc.legal_basis if doc else None,
                "retention_days": doc.retention_days if doc else None,
                "controller": doc.controller.model_dump() if doc else None,
                "records": [],
                "state": [],
            }
        return datasets[dataset_id]

    def _read_all(self, container: str, names: list[str]) -> list[dict[str, Any]]:
        return [body for name in names if (body := self._read(container, name)) is not None]

    def _read_state(self, tenant: str, names: list[str]) -> list[tuple[str, dict[str, Any]]]:
        """Each personal state blob with its dataset and kind; one outside any dataset is still handed out."""
        held = []
        for name in names:
            body = self._read(STATE, name)
            if body is not None:
                dataset_id, kind = parse_state_name(tenant, name) or ("-", "other")
                held.append((dataset_id, {"kind": kind, "content": body}))
        return held

    def _read(self, container: str, name: str) -> dict[str, Any] | None:
        try:
            return dict(json.loads(self._storage.container(container).download_blob(name).readall()))
        except ResourceNotFoundError:
            return None
