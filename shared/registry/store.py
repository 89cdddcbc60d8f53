"""The purpose registry: tenants and their datasets, as JSON blobs in the `registry` container.

Reads go through an in-process cache with a short time-to-live (settings.registry_cache_ttl_seconds),
so the capture hot path does no storage read; a change made through the manage API is seen by every
instance within that time (at once by the instance that made it).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from datetime import datetime
from itertools import islice
from typing import TypeVar

from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from cachetools import TTLCache
from pydantic import BaseModel, ConfigDict

from shared.core.clock import Clock
from shared.core.errors import Conflict, NotFound
from shared.core.keys import hash_api_key, new_api_key, new_generation
from shared.core.settings import Region
from shared.registry.models import Dataset, DatasetDoc, Tenant, TenantIn
from shared.storage.blobs import (
    JSON_CONTENT,
    RECORDS,
    REGISTRY,
    STATE,
    Storage,
    only_if_unchanged,
    storage_errors,
    tag_query,
)

CACHE_MAX_ENTRIES = 10_000  # bounds memory when someone probes random ids (absences are cached too)

T = TypeVar("T", bound=BaseModel)
_MISSING = object()


def tenant_state_prefix(tenant: str) -> str:
    """Personal state a capability keeps for a tenant outside records lives under this prefix of `state`.

    `state` is for personal data only: the storage lifecycle rule deletes its blobs 30 days after creation.
    """
    return f"{tenant}/"


def sequence_prefix(tenant: str) -> str:
    """Long-lived state without personal data (auto-number sequences) lives in `registry`, beyond that rule."""
    return f"sequences/{tenant}/"


def dataset_state_prefix(tenant: str, dataset: str) -> str:
    """State that belongs to one dataset (idempotency markers, last-known locations, ...)."""
    return f"{tenant}/datasets/{dataset}/"


def tenant_blob(tenant: str) -> str:
    return f"tenants/{tenant}.json"


def datasets_prefix(tenant: str) -> str:
    return f"datasets/{tenant}/"


def dataset_blob(tenant: str, dataset: str) -> str:
    return f"{datasets_prefix(tenant)}{dataset}.json"


def registration_blob(tenant: str) -> str:
    """A pack registration, kept by the home deployment only (shared/registration/engine.py)."""
    return f"registrations/{tenant}.json"


class _Registered(BaseModel):
    """The one fact of a registration every request may need: the region its tenant is homed in."""

    # Built on first use (~1 ms): only a request for a tenant unknown here reads it, never a known tenant's capture.
    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)

    region: Region


class _Read:
    """A cached read under way, which requests for the same document wait for instead of reading it again."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._value: BaseModel | None = None
        self._error: BaseException | None = None

    def succeed(self, value: BaseModel | None) -> None:
        self._value = value
        self._done.set()

    def fail(self, error: BaseException) -> None:
        self._error = error
        self._done.set()

    def answer(self) -> BaseModel | None:
        """The leader's document, or its error (a storage outage: each waiting request answers 503 at once,
        instead of each trying in turn)."""
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._value


class Registry:
    def __init__(self, storage: Storage, clock: Clock, region: Region, cache_ttl_seconds: float) -> None:
        self._storage = storage
        self._clock = clock
        self._region = region
        self._lock = threading.Lock()
        self._changes = 0  # raised by every write through this registry, so a slower read cannot undo it
        self._reads: dict[str, _Read] = {}  # cached reads under way, by blob name: `_cached`
        self._cache: TTLCache[str, BaseModel | None] | None = (
            TTLCache(maxsize=CACHE_MAX_ENTRIES, ttl=cache_ttl_seconds) if cache_ttl_seconds > 0 else None
        )

    # -- reads (cached) -------------------------------------------------------------------------

    def get_tenant(self, tenant: str, *, fresh: bool = False) -> Tenant | None:
        """`fresh`: read storage, not the cache (and refresh it), where another instance's change must count
        at once: a deleted or re-created tenant, a rotated API key."""
        return self._fresh(tenant_blob(tenant), Tenant) if fresh else self._cached(tenant_blob(tenant), Tenant)

    def get_dataset(self, tenant: str, dataset: str, *, fresh: bool = False) -> DatasetDoc | None:
        name = dataset_blob(tenant, dataset)
        return self._fresh(name, DatasetDoc) if fresh else self._cached(name, DatasetDoc)

    def cached_pair(self, tenant: str, dataset: str) -> tuple[Tenant, DatasetDoc | None] | None:
        """The tenant and its dataset (None: no such dataset) from the cache alone, with no storage request; None
        unless both are cached and the tenant exists (an unknown tenant may need a read to say where it lives)."""
        if self._cache is None:
            return None
        with self._lock:  # one lookup each, under one hold: neither can expire between them
            found_tenant = self._cache.get(tenant_blob(tenant), _MISSING)
            found_dataset = self._cache.get(dataset_blob(tenant, dataset), _MISSING)
        if not isinstance(found_tenant, Tenant) or found_dataset is _MISSING:
            return None
        return found_tenant, found_dataset  # type: ignore[return-value]  # a dataset blob holds a DatasetDoc or None

    def registered_region(self, tenant: str) -> Region | None:
        """Where a tenant unknown here is homed, when this is the home deployment that registered it."""
        registered = self._cached(registration_blob(tenant), _Registered)
        return registered.region if registered is not None else None

    def forget_registration(self, tenant: str) -> None:
        """After the registration engine changed it: the next read goes to storage."""
        if self._cache is not None:
            with self._lock:
                self._cache.pop(registration_blob(tenant), None)
                self._changes += 1

    def list_tenants(self) -> list[Tenant]:
        """Every tenant of this deployment, read afresh (the purge and reports; not a hot path)."""
        container = self._storage.container(REGISTRY)
        with storage_errors():
            names = [blob.name for blob in container.list_blobs(name_starts_with="tenants/")]
        return [doc for name in names if (doc := self._read(name, Tenant)) is not None]

    def list_datasets(self, tenant: str) -> list[DatasetDoc]:
        names = self.dataset_names(tenant)
        return [doc for name in names if (doc := self._read(name, DatasetDoc)) is not None]

    def dataset_names(self, tenant: str, at_most: int | None = None) -> list[str]:
        """The blob names of the tenant's datasets, without reading them; `at_most`: one listing request."""
        container = self._storage.container(REGISTRY)
        with storage_errors():
            listed = container.list_blobs(name_starts_with=datasets_prefix(tenant))
            return [blob.name for blob in islice(listed, at_most)]

    # -- writes ---------------------------------------------------------------------------------

    def put_tenant(self, tenant: str, change: TenantIn) -> tuple[Tenant, str | None]:
        """Create (answering the new API key, the only time it exists in clear) or update a tenant."""
        now = self._clock.now()
        existing = self._read(tenant_blob(tenant), Tenant)
        if existing is not None:
            if change.region is not None and change.region != existing.region:
                raise Conflict(
                    "region_change",
                    "a tenant's region cannot change: its data stays where the customer chose; "
                    "delete the tenant and create it in the new region",
                )
            updated = existing.model_copy(update={"name": change.name or existing.name, "updated_at": now})
            self._write(tenant_blob(tenant), updated, overwrite=True)
            return updated, None
        api_key = new_api_key()
        created = Tenant(
            id=tenant,
            region=change.region or self._region,
            name=change.name,
            api_key_sha256=hash_api_key(api_key),
            generation=new_generation(),
            created_at=now,
            updated_at=now,
        )
        try:
            self._write(tenant_blob(tenant), created, overwrite=False)
        except ResourceExistsError:
            raise Conflict("tenant_exists", "the tenant was created by a concurrent request; retry") from None
        return created, api_key

    def update_tenant(self, tenant: str, change: Callable[[Tenant, datetime], Tenant]) -> Tenant:
        """Apply `change` (given the stored tenant and the clock's now) and store the result, only if no one
        changed the tenant meanwhile (409 then): two key rotations never both answer keys."""
        existing, etag = self._read_tagged(tenant_blob(tenant), Tenant)
        if existing is None:
            raise NotFound("unknown_tenant", "no such tenant in this deployment")
        updated = change(existing, self._clock.now())
        self._write_unchanged(tenant_blob(tenant), updated, etag)
        return updated

    def put_dataset(self, tenant: str, dataset: str, declaration: Dataset) -> tuple[DatasetDoc, bool]:
        now = self._clock.now()
        existing, etag = self._read_tagged(dataset_blob(tenant, dataset), DatasetDoc)
        if existing is not None and existing.capability != declaration.capability:
            raise Conflict(
                "capability_change",
                f"dataset {dataset} is a {existing.capability} dataset; delete it to reuse the id",
            )
        doc = DatasetDoc(
            **declaration.model_dump(),
            tenant=tenant,
            id=dataset,
            created_at=existing.created_at if existing else now,
            updated_at=now,
            generation=existing.generation if existing else new_generation(),
            declaration_revision=_next_revision(existing, declaration),
        )
        # Conditional: two concurrent replacements must not both claim the same next revision.
        self._write_unchanged(dataset_blob(tenant, dataset), doc, etag)
        return doc, existing is None

    def delete_dataset(self, tenant: str, dataset: str) -> bool:
        """Deletes the dataset's records first, so a failure halfway leaves a dataset that can be deleted again."""
        if self._read(dataset_blob(tenant, dataset), DatasetDoc) is None:
            return False
        self._delete_records(tag_query(tenant=tenant, dataset=dataset))
        self._delete_state(dataset_state_prefix(tenant, dataset))
        # State kept per tenant but for this dataset (tracked links) is found by its tags.
        where = tag_query(tenant=tenant, dataset=dataset)
        self._storage.delete_names(STATE, self._storage.find_by_tags(STATE, where))
        self._delete_blob(dataset_blob(tenant, dataset))
        return True

    def delete_tenant(self, tenant: str) -> bool:
        if self._read(tenant_blob(tenant), Tenant) is None:
            return False
        self._delete_records(tag_query(tenant=tenant))
        self._delete_state(tenant_state_prefix(tenant))
        self._delete_prefix(REGISTRY, sequence_prefix(tenant))
        for doc in self.list_datasets(tenant):
            self._delete_blob(dataset_blob(tenant, doc.id))
        self._delete_blob(tenant_blob(tenant))
        return True

    def forget(self) -> None:
        """Drop the cache (tests, and after bulk changes)."""
        if self._cache is not None:
            with self._lock:
                self._cache.clear()
                self._changes += 1

    # -- plumbing -------------------------------------------------------------------------------

    def _cached(self, name: str, model: type[T]) -> T | None:
        """From the cache, or read once however many ask at once: at a cold start or when an entry expires, every
        request in flight on the instance (16 at the Bicep's concurrency) misses together, and without this each
        would read the same document. The first reads; the others wait for its answer, or its error."""
        if self._cache is None:
            return self._read(name, model)
        with self._lock:
            # One lookup: `in` then `[]` could see an entry expire in between (a KeyError, a 500).
            found = self._cache.get(name, _MISSING)
            changes = self._changes
            flight = None if found is not _MISSING else self._reads.get(name)
            leads = found is _MISSING and flight is None
            if leads:
                flight = self._reads[name] = _Read()
        if found is not _MISSING:
            return found  # type: ignore[return-value]  # a blob name holds one model: `model`
        assert flight is not None
        if not leads:
            return flight.answer()  # type: ignore[return-value]  # the leader read the same name: `model`
        try:
            value = self._read(name, model)
        except BaseException as error:
            with self._lock:
                del self._reads[name]
            flight.fail(error)
            raise
        with self._lock:
            # A write or deletion on this instance while the read was under way may have cached a newer
            # document: the older one read here must not replace it (the instance that made a change sees it).
            if self._changes == changes:
                self._cache[name] = value
            del self._reads[name]  # with the entry cached: a request from here on finds one or the other
        flight.succeed(value)
        return value

    def _fresh(self, name: str, model: type[T]) -> T | None:
        value = self._read(name, model)
        self._invalidate(name, value)
        return value

    def _read(self, name: str, model: type[T]) -> T | None:
        return self._read_tagged(name, model)[0]

    def _read_tagged(self, name: str, model: type[T]) -> tuple[T | None, str | None]:
        """The document and its ETag, for a conditional write."""
        body, etag = self._storage.read_json(REGISTRY, name)
        return (model.model_validate(body), etag) if body is not None else (None, None)

    def _write_unchanged(self, name: str, doc: BaseModel, etag: str | None) -> None:
        """Write only if the blob is still the one read (absent, when `etag` is None); else 409."""
        body = doc.model_dump_json().encode("utf-8")
        container = self._storage.container(REGISTRY)
        with storage_errors():
            try:
                container.upload_blob(name, body, content_settings=JSON_CONTENT, **only_if_unchanged(etag))
            except (ResourceExistsError, ResourceModifiedError):
                raise Conflict("concurrent_change", "it was changed by a concurrent request; retry") from None
        self._invalidate(name, doc)

    def _write(self, name: str, doc: BaseModel, *, overwrite: bool) -> None:
        """ResourceExistsError passes through when `overwrite` is False and the blob exists."""
        body = doc.model_dump_json().encode("utf-8")
        container = self._storage.container(REGISTRY)
        with storage_errors(ResourceExistsError):
            container.upload_blob(name, body, overwrite=overwrite, content_settings=JSON_CONTENT)
        self._invalidate(name, doc)

    def _delete_blob(self, name: str) -> None:
        container = self._storage.container(REGISTRY)
        with storage_errors(), contextlib.suppress(ResourceNotFoundError):
            container.delete_blob(name)
        self._invalidate(name, None)

    def _delete_records(self, where: str) -> int:
        return self._storage.delete_names(RECORDS, self._storage.find_by_tags(RECORDS, where))

    def _delete_state(self, prefix: str) -> int:
        return self._delete_prefix(STATE, prefix)

    def _delete_prefix(self, container: str, prefix: str) -> int:
        # Per-tenant state is small (per-user markers, sequences), so listing its prefix is cheap; the listing
        # is read as the deletion goes, inside delete_names' mapping of storage errors.
        names = (blob.name for blob in self._storage.container(container).list_blobs(name_starts_with=prefix))
        return self._storage.delete_names(container, names)

    def _invalidate(self, name: str, value: BaseModel | None) -> None:
        if self._cache is not None:
            with self._lock:
                self._cache[name] = value
                self._changes += 1


def _next_revision(existing: DatasetDoc | None, declaration: Dataset) -> int:
    """Records name the revision they were validated against, so any change of the declaration is a new one."""
    if existing is None:
        return 1
    if existing.declaration() == declaration:
        return existing.declaration_revision
    return existing.declaration_revision + 1
