"""The outbox of DPO events: one blob per event in `registry/dpo/outbox/{tenant}/`, in the order they happened.

Events hold no personal value (shared/core/events.py), so they sit with the registry's definitions, not with
records. A blob's name starts with the wall-clock nanoseconds of its creation, so a listing gives a tenant's events
in order. An event that could not be delivered for `GIVE_UP_AFTER` moves to `registry/dpo/failed/{tenant}/`, where
the webhook's state and the DPO report show it, for `FAILED_KEPT` (the longest retention: the event of an erasure
carries the subject's keyed hash, which must not outlive the data it was about).

Back-off is clock-driven: an event's `next_attempt_at` comes from the injectable clock, so tests walk 24 hours
without sleeping.
"""

from __future__ import annotations

import json
import secrets
import time
from datetime import datetime, timedelta
from itertools import islice
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.storage.blobs import JSON_CONTENT, REGISTRY, Storage, storage_errors

OUTBOX_PREFIX = "dpo/outbox/"
FAILED_PREFIX = "dpo/failed/"
FIRST_RETRY = timedelta(minutes=1)
MAX_RETRY = timedelta(hours=3)
GIVE_UP_AFTER = timedelta(hours=24)
FAILED_KEPT = timedelta(days=30)
LISTED_MAX = 1000  # events a state or report lists at most


def outbox_prefix(tenant: str) -> str:
    return f"{OUTBOX_PREFIX}{tenant}/"


def failed_prefix(tenant: str) -> str:
    return f"{FAILED_PREFIX}{tenant}/"


def retry_delay(attempts: int) -> timedelta:
    """After the n-th failed attempt: 1 minute, doubling, at most 3 hours (16 attempts until one is past 24 h)."""
    return min(FIRST_RETRY * (1 << min(max(attempts - 1, 0), 20)), MAX_RETRY)


class OutboxEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^evt_[0-9a-f]{24}$")
    type: str
    tenant: str
    region: str
    created_at: datetime
    data: dict[str, Any]
    attempts: int = 0
    next_attempt_at: datetime
    last_attempt_at: datetime | None = None
    last_error: str | None = None
    failed_at: datetime | None = None

    def body(self) -> bytes:
        """What is sent and signed: the same bytes on every attempt."""
        payload = {
            "id": self.id,
            "type": self.type,
            "created_at": self.created_at.isoformat(),
            "tenant": self.tenant,
            "region": self.region,
            "data": self.data,
        }
        return json.dumps(payload, separators=(",", ":"), sort_keys=True, default=str).encode("utf-8")

    def public(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"data", "tenant", "region"})


def new_event(tenant: str, region: str, kind: str, data: dict[str, Any], now: datetime) -> OutboxEvent:
    return OutboxEvent(
        id="evt_" + secrets.token_hex(12),
        type=kind,
        tenant=tenant,
        region=region,
        created_at=now,
        data=data,
        next_attempt_at=now,
    )


class Outbox:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    def add(self, event: OutboxEvent) -> str:
        name = f"{outbox_prefix(event.tenant)}{time.time_ns():020d}-{secrets.token_hex(4)}.json"
        self.write(name, event)
        return name

    def write(self, name: str, event: OutboxEvent) -> None:
        with storage_errors():
            self._storage.container(REGISTRY).upload_blob(
                name, event.model_dump_json().encode(), overwrite=True, content_settings=JSON_CONTENT
            )

    def read(self, name: str) -> OutboxEvent | None:
        body, _ = self._storage.read_json(REGISTRY, name)
        return OutboxEvent.model_validate(body) if body is not None else None

    def names(self, prefix: str, at_most: int) -> list[str]:
        """The first names under a prefix, in order."""
        with storage_errors():
            listed = self._storage.container(REGISTRY).list_blobs(name_starts_with=prefix, results_per_page=at_most)
            return [blob.name for blob in islice(listed, at_most)]

    def give_up(self, name: str, event: OutboxEvent) -> None:
        """Into the failed events, then out of the outbox: a crash between the two leaves it in both, never none."""
        self.write(FAILED_PREFIX + name[len(OUTBOX_PREFIX) :], event)
        self.remove([name])

    def remove(self, names: list[str]) -> int:
        return self._storage.delete_names(REGISTRY, names) if names else 0

    def tenants(self) -> list[str]:
        """Tenants with events waiting: one listing of the outbox's folders."""
        with storage_errors():
            container = self._storage.container(REGISTRY)
            return [
                p.name[len(OUTBOX_PREFIX) :].rstrip("/") for p in container.walk_blobs(OUTBOX_PREFIX, delimiter="/")
            ]

    def failed(self, tenant: str) -> list[tuple[str, OutboxEvent]]:
        names = self.names(failed_prefix(tenant), LISTED_MAX)
        docs = self._storage.read_json_each(REGISTRY, names)
        return [(name, OutboxEvent.model_validate(doc)) for name, doc in zip(names, docs, strict=True) if doc]

    def pending(self, tenant: str) -> list[OutboxEvent]:
        names = self.names(outbox_prefix(tenant), LISTED_MAX)
        docs = self._storage.read_json_each(REGISTRY, names)
        return [OutboxEvent.model_validate(doc) for doc in docs if doc]

    def forget_old_failures(self, now: datetime, at_most: int = 5000) -> int:
        """Failed events created more than FAILED_KEPT ago (by the clock), across tenants; a bounded number a run."""
        names = self.names(FAILED_PREFIX, at_most)
        docs = self._storage.read_json_each(REGISTRY, names)
        old = [
            name
            for name, doc in zip(names, docs, strict=True)
            if doc is not None and OutboxEvent.model_validate(doc).created_at < now - FAILED_KEPT
        ]
        return self.remove(old)

    def clear(self, tenant: str) -> int:
        """Every event of a tenant, waiting or failed (its webhook is gone)."""
        removed = 0
        for prefix in (outbox_prefix(tenant), failed_prefix(tenant)):
            while names := self.names(prefix, LISTED_MAX):
                removed += self.remove(names)
        return removed
