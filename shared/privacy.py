"""Data-subject requests (GDPR art. 15, 17, 20): export and erase one person's data in this region.

Records and personal state are found through the keyed subject hash in their blob index tags, never by
reading every record. Audit entries carry the count and the subject's hash, never the subject.
"""

from __future__ import annotations

import json
from typing import Any

from azure.core.exceptions import AzureError, ResourceNotFoundError
from pydantic import BaseModel, ConfigDict, Field

from shared.audit import AuditLog
from shared.blobs import RECORDS, STATE, Storage, tag_filter
from shared.errors import StorageUnavailable
from shared.generations import Generations, drop_stale
from shared.keys import subject_hash
from shared.registry import Registry


class SubjectRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    subject: str = Field(min_length=1, max_length=1024, description="the value of the datasets' subject field")


class SubjectRequests:
    def __init__(self, storage: Storage, registry: Registry, audit: AuditLog, master_key: str) -> None:
        self._storage = storage
        self._registry = registry
        self._audit = audit
        self._master_key = master_key

    def _find(self, tenant: str, hashed: str) -> dict[str, list[str]]:
        where = tag_filter(t=tenant, sub=hashed)
        return {container: sorted(self._storage.find_by_tags(container, where)) for container in (RECORDS, STATE)}

    def export(self, tenant: str, subject: str) -> dict[str, Any]:
        hashed = subject_hash(self._master_key, tenant, subject)
        try:
            found = self._find(tenant, hashed)
            records = [record for name in found[RECORDS] if (record := self._read(RECORDS, name)) is not None]
            # Never a record of a deleted tenant or dataset generation (deleted instead): see shared/generations.py.
            records = drop_stale(self._storage, self._audit, Generations.read(self._registry, tenant), tenant, records)
        except AzureError:
            raise StorageUnavailable() from None
        datasets: dict[str, dict[str, Any]] = {}
        for record in records:
            dataset_id = record["dataset"]
            if dataset_id not in datasets:
                doc = self._registry.get_dataset(tenant, dataset_id)
                datasets[dataset_id] = {
                    "purpose": doc.purpose if doc else None,
                    "legal_basis": doc.legal_basis if doc else None,
                    "retention_days": doc.retention_days if doc else None,
                    "controller": doc.controller.model_dump() if doc else None,
                    "records": [],
                }
            datasets[dataset_id]["records"].append(record)
        self._audit.append(tenant, "export", subject_hash=hashed, records=len(records))
        return {"tenant": tenant, "subject_hash": hashed, "record_count": len(records), "datasets": datasets}

    def erase(self, tenant: str, subject: str) -> int:
        hashed = subject_hash(self._master_key, tenant, subject)
        try:
            found = self._find(tenant, hashed)
            deleted = self._storage.delete_names(RECORDS, found[RECORDS])
            self._storage.delete_names(STATE, found[STATE])
        except AzureError:
            raise StorageUnavailable() from None
        self._audit.append(tenant, "erasure", subject_hash=hashed, records=deleted, state=len(found[STATE]))
        return deleted

    def _read(self, container: str, name: str) -> dict[str, Any] | None:
        try:
            return dict(json.loads(self._storage.container(container).download_blob(name).readall()))
        except ResourceNotFoundError:
            return None
