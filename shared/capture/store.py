"""The capture store: every capability writes personal data only through `CaptureStore.capture`.

On each write it enforces the GDPR rules of the dataset: the tenant is homed in this region (the rule
itself: registry/residency.py), only declared fields are kept (validated by type and length), the record
expires after the dataset's retention, and the subject is indexed by a keyed hash so one person's data is
found without a scan. One blob per record, one storage request per capture.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError

from shared.capture.counts import CaptureCounts
from shared.capture.subjects import stored_subject_tag, subject_field
from shared.core.clock import Clock
from shared.core.errors import NotFound, StorageUnavailable, field_problems
from shared.core.fieldtypes import InvalidValue, StoredValue
from shared.core.ids import check_id, new_record_id
from shared.core.settings import Settings
from shared.registry.models import Capability, DatasetDoc, Record, Tenant
from shared.registry.residency import Residency
from shared.registry.store import Registry
from shared.storage.aio_blobs import AsyncBlobs
from shared.storage.blobs import JSON_CONTENT, RECORDS, Storage, index_tags, storage_errors

# A record that took longer than this to commit is withdrawn (503, the caller retries): so every record
# is visible within this time of its id's timestamp, and the delivery feed can page by id without skipping.
COMMIT_DEADLINE = timedelta(seconds=10)


def record_blob(tenant: str, dataset: str, record_id: str) -> str:
    # Ids only: a blob name never carries personal data.
    return f"{tenant}/{dataset}/{record_id}.json"


@dataclass(frozen=True)
class Captured:
    record: Record
    dropped_fields: tuple[str, ...]


@dataclass(frozen=True)
class Target:
    tenant: Tenant
    dataset: DatasetDoc


class CaptureStore:
    def __init__(
        self,
        storage: Storage,
        registry: Registry,
        settings: Settings,
        clock: Clock,
        counts: CaptureCounts | None = None,
        residency: Residency | None = None,
        aio: AsyncBlobs | None = None,
    ) -> None:
        self._storage = storage
        self._aio = aio or AsyncBlobs(settings, storage.transport)
        self._registry = registry
        self._settings = settings
        self._clock = clock
        self._counts = counts
        self._residency = residency or Residency(registry, settings)

    async def upload_new_async(self, container: str, name: str, body: bytes, tags: dict[str, str]) -> None:
        """A new blob written by the aio client, never replacing one (ResourceExistsError when it is there): every
        async write of a capture, its record's and a form's idempotency marker's. The containers are not checked
        first: in Azure the Bicep has made them, and a new instance's first write would wait for a check that finds
        them all. A write whose container is missing (a fresh Azurite) makes them, then is sent once more."""
        client = await self._aio.container(container)
        for last in (False, True):
            try:
                await client.upload_blob(name, body, overwrite=False, tags=tags, content_settings=JSON_CONTENT)
                return
            except ResourceNotFoundError as missing:
                # The storage SDK sets error_code on the errors it raises; azure.core does not declare it.
                if last or getattr(missing, "error_code", None) != "ContainerNotFound":
                    raise
                await asyncio.to_thread(self._storage.ensure_containers)

    def resolve(self, tenant_id: str, dataset_id: str, capability: Capability) -> Target:
        """The tenant and dataset a capture goes to, or the reason it may not be stored here."""
        check_id("tenant", tenant_id)
        check_id("dataset", dataset_id)
        tenant = self._registry.get_tenant(tenant_id)
        if tenant is None:
            self._residency.misdirect_unknown(tenant_id)
            raise NotFound("unknown_tenant", "no such tenant in this deployment")
        self._residency.require_home(tenant)
        return self.target(tenant, self._registry.get_dataset(tenant_id, dataset_id), capability)

    async def resolve_async(self, tenant_id: str, dataset_id: str, capability: Capability) -> Target:
        """`resolve` for an async function: from the registry cache on the event loop, or, on a cold cache
        (a storage read), in worker threads, so a slow read never holds the loop's other requests. There the
        tenant and the dataset are read side by side, and the aio SDK the capture's write needs is imported
        meanwhile: a cold start's first request waits for one round trip of storage before its write, and the
        import (~20 ms of CPU) is done while it waits instead of after."""
        check_id("tenant", tenant_id)
        check_id("dataset", dataset_id)
        cached = self._registry.cached_pair(tenant_id, dataset_id)
        if cached is None:
            await asyncio.gather(
                # First: the longest of the three (its thread holds the GIL for most of ~20 ms, and each thread
                # started after another waits for that one to let go of it, up to the 5 ms switch interval).
                *(() if self._aio.open else (self._aio.load_sdk(),)),
                asyncio.to_thread(self._registry.get_tenant, tenant_id),
                asyncio.to_thread(self._registry.get_dataset, tenant_id, dataset_id),
            )
            cached = self._registry.cached_pair(tenant_id, dataset_id)
            if cached is None:  # an unknown tenant (where it lives may take a read), or the cache is off
                return await asyncio.to_thread(self.resolve, tenant_id, dataset_id, capability)
        tenant, dataset = cached
        self._residency.require_home(tenant)
        return self.target(tenant, dataset, capability)

    @staticmethod
    def target(tenant: Tenant, dataset: DatasetDoc | None, capability: Capability) -> Target:
        """Where a capture of this capability goes, when the dataset exists and is of that capability."""
        if dataset is None or dataset.capability != capability:
            raise NotFound("unknown_dataset", f"the tenant has no {capability} dataset with this id")
        return Target(tenant, dataset)

    def capture(
        self,
        target: Target,
        values: Mapping[str, object],
        *,
        lenient: bool = False,
        meta: Mapping[str, Any] | None = None,
    ) -> Captured:
        """Validate against the declaration and store one record.

        Strict (forms, APIs): any invalid or missing required field is a 422 naming each field.
        Lenient (the pixel, which must never fail a page): invalid optional fields are left out.
        """
        captured = self.prepare(target, values, lenient=lenient, meta=meta)
        self.commit(target, captured.record)
        return captured

    async def capture_async(
        self,
        target: Target,
        values: Mapping[str, object],
        *,
        lenient: bool = False,
        meta: Mapping[str, Any] | None = None,
    ) -> Captured:
        """`capture` for an async function: the same record, written by the aio client on the event loop."""
        captured = self.prepare(target, values, lenient=lenient, meta=meta)
        await self.commit_async(target, captured.record)
        return captured

    def prepare(
        self,
        target: Target,
        values: Mapping[str, object],
        *,
        lenient: bool = False,
        meta: Mapping[str, Any] | None = None,
    ) -> Captured:
        """The record a capture would store, validated, with nothing written yet."""
        fields, dropped = keep_declared(target.dataset, values, lenient=lenient)
        now = self._clock.now()
        record = Record(
            id=new_record_id(now),
            tenant=target.tenant.id,
            dataset=target.dataset.id,
            captured_at=now,
            expires_at=target.dataset.expires_at(now),
            fields=fields,
            dropped_fields=len(dropped),
            meta=dict(meta or {}),
            # What the record was validated under: delivery and export never hand it to a later generation,
            # and the feed shows which declaration it was validated against.
            tenant_generation=target.tenant.generation,
            dataset_generation=target.dataset.generation,
            declaration_revision=target.dataset.declaration_revision,
        )
        return Captured(record, dropped)

    def commit(self, target: Target, record: Record, *, subject: str | None = None) -> None:
        """Store a prepared record: one request. `subject`: the record's `sub` tag where the capability, not the
        dataset's subject_field, says who the record is about (sms: the other party's number)."""
        tags = self._tags(record, target.dataset)
        if subject is not None:
            tags = index_tags(
                record.tenant, record.dataset, captured=record.captured_at, expires=record.expires_at, subject=subject
            )
        self._write(record, tags)
        if self._counts is not None:
            self._counts.add(record.tenant, record.dataset, record.captured_at)

    async def commit_async(self, target: Target, record: Record) -> None:
        """`commit` for an async function; the counts' flush at the turn of an hour (an audit append, sync
        storage) goes to a worker thread."""
        await self._write_async(record, self._tags(record, target.dataset))
        if self._counts is not None:
            due = self._counts.count(record.tenant, record.dataset, record.captured_at)
            if due is not None:
                await asyncio.to_thread(self._counts.flush, due)

    def exists(self, tenant: str, dataset: str, record_id: str) -> bool:
        blob = self._storage.container(RECORDS).get_blob_client(record_blob(tenant, dataset, record_id))
        with storage_errors():
            try:
                blob.get_blob_properties()
            except ResourceNotFoundError:
                return False
        return True

    def _tags(self, record: Record, dataset: DatasetDoc) -> dict[str, str]:
        subject = self.subject_tag(dataset, record)
        return index_tags(
            record.tenant, record.dataset, captured=record.captured_at, expires=record.expires_at, subject=subject
        )

    def subject_tag(self, dataset: DatasetDoc, record: Record) -> str | None:
        """The `sub` tag of a prepared record, for it and for any state kept about the same submission."""
        spec = subject_field(dataset)
        stored = record.fields.get(spec.name) if spec is not None else None
        if spec is None or stored is None or stored == "":
            return None
        return stored_subject_tag(self._settings.master_key.get_secret_value(), record.tenant, stored)

    def _write(self, record: Record, tags: dict[str, str]) -> None:
        name, body = record_blob(record.tenant, record.dataset, record.id), record_body(record)
        container = self._storage.container(RECORDS)
        # overwrite=False: a record id is never reused, so an existing blob is never replaced. Existing, it is
        # this very record, stored by an attempt whose answer was lost (the SDK retried it): the capture did succeed.
        with storage_errors(), contextlib.suppress(ResourceExistsError):
            container.upload_blob(name, body, overwrite=False, tags=tags, content_settings=JSON_CONTENT)
        if self._too_late(record):
            with contextlib.suppress(AzureError):
                container.delete_blob(name)
            raise StorageUnavailable("storage is too slow, retry later")

    async def _write_async(self, record: Record, tags: dict[str, str]) -> None:
        """`_write` with the aio client: the same blob, body, tags, conditions, deadline and error mapping."""
        name, body = record_blob(record.tenant, record.dataset, record.id), record_body(record)
        with storage_errors(), contextlib.suppress(ResourceExistsError):
            await self.upload_new_async(RECORDS, name, body, tags)
        if self._too_late(record):
            container = await self._aio.container(RECORDS)
            with contextlib.suppress(AzureError):
                await container.delete_blob(name)
            raise StorageUnavailable("storage is too slow, retry later")

    def _too_late(self, record: Record) -> bool:
        return self._clock.now() - record.captured_at > COMMIT_DEADLINE


def record_body(record: Record) -> bytes:
    return record.model_dump_json().encode("utf-8")


def keep_declared(
    dataset: DatasetDoc, values: Mapping[str, object], *, lenient: bool
) -> tuple[dict[str, StoredValue], tuple[str, ...]]:
    """Data minimisation: declared fields, validated and normalised; the names of the others."""
    kept: dict[str, StoredValue] = {}
    problems: list[dict[str, str]] = []
    for spec in dataset.fields:
        raw = values.get(spec.name)
        if raw is None or (isinstance(raw, str) and raw.strip() == ""):
            if spec.required:
                problems.append({"field": spec.name, "reason": "is required"})
            continue
        try:
            kept[spec.name] = spec.normalise(raw)
        except InvalidValue as reason:
            if spec.required or not lenient:
                problems.append({"field": spec.name, "reason": str(reason)})
    if problems:
        raise field_problems("invalid_fields", "the submission does not fit the dataset", problems, between=" ")
    declared = dataset.field_names
    dropped = tuple(sorted(name for name in values if name not in declared))
    return kept, dropped
