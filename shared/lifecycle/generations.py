"""Generations: a record is handed out only to the tenant and dataset generation it was captured for.

A tenant or dataset gets a random generation when it is created, and a new one when it is deleted and
created again. Another instance's registry cache may still hold the deleted one for up to its time-to-live
and keep capturing for it; those records carry the old generation. Their purpose is gone, so they can never
be delivered or exported to the new tenant or dataset (possibly another controller, another purpose):
whoever meets one deletes it. Records stored before generations existed carry none (""), as do the tenants
and datasets of that time, so they still match.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from shared.capture.store import record_blob
from shared.registry.models import DatasetDoc, Tenant
from shared.registry.store import Registry
from shared.storage.audit import AuditLog
from shared.storage.blobs import RECORDS, Storage


class Generations:
    """The current generations of one tenant and its datasets, from the documents as stored now.

    Never from the cache: a cached document may be the deleted generation itself, and judging by it would
    delete the records of the new one.
    """

    def __init__(self, registry: Registry, tenant: Tenant | None, datasets: Iterable[DatasetDoc] = ()) -> None:
        """`tenant` and `datasets`: documents the caller has just read with `fresh=True`; other datasets are
        read fresh when a record of theirs is judged."""
        self._registry = registry
        self._tenant = tenant
        self._datasets: dict[str, DatasetDoc | None] = {doc.id: doc for doc in datasets}

    @classmethod
    def read(cls, registry: Registry, tenant_id: str) -> Generations:
        return cls(registry, registry.get_tenant(tenant_id, fresh=True))

    def is_current(self, record: Mapping[str, Any]) -> bool:
        if self._tenant is None or record.get("tenant") != self._tenant.id:
            return False
        dataset = self._dataset(str(record.get("dataset", "")))
        return (
            dataset is not None
            and record.get("tenant_generation", "") == self._tenant.generation
            and record.get("dataset_generation", "") == dataset.generation
        )

    def _dataset(self, dataset_id: str) -> DatasetDoc | None:
        if dataset_id not in self._datasets:
            tenant = self._tenant
            self._datasets[dataset_id] = (
                self._registry.get_dataset(tenant.id, dataset_id, fresh=True) if tenant is not None else None
            )
        return self._datasets[dataset_id]


def drop_stale(
    storage: Storage, audit: AuditLog, generations: Generations, tenant_id: str, records: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The records of the current generations; the others are deleted (and counted in the audit trail)."""
    judged = [(record, generations.is_current(record)) for record in records]
    current = [record for record, is_current in judged if is_current]
    stale = [record for record, is_current in judged if not is_current]
    if not stale:
        return current
    names = [record_blob(str(r["tenant"]), str(r["dataset"]), str(r["id"])) for r in stale]
    deleted = storage.delete_names(RECORDS, names)
    datasets = sorted({str(record["dataset"]) for record in stale})
    audit.append(tenant_id, "stale_generation", datasets=datasets, deleted=deleted)
    return current
