"""Auto-number sequences that never hand out the same number twice.

One blob per sequence (`registry/sequences/{tenant}/{sequence}.json`: counters hold no personal data, and
the retention purge never touches them) holds the definition, the next number, and the recent idempotency
keys (hashed). Every change is a compare-and-swap: read with the ETag, write back with If-Match; a stale
ETag (412) means another caller won, so read again after a jittered back-off. Counter and idempotency record
change in the same write, so a retried request either sees its earlier answer or consumes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Literal

from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.storage.blob import BlobClient
from pydantic import BaseModel, ConfigDict, Field

from shared.autonumber.format import DateTimeUtc, parse_format, render
from shared.core.clock import Clock
from shared.core.errors import Conflict, NotFound, StorageUnavailable, field_problems
from shared.core.keys import derive_key
from shared.registry.store import sequence_prefix
from shared.storage.blobs import JSON_CONTENT, REGISTRY, Storage, only_if_unchanged, storage_errors

Reset = Literal["never", "yearly", "monthly", "daily"]
MAX_COUNT = 1000
IDEMPOTENCY_WINDOW = timedelta(hours=24)
MAX_RECENT = 500  # idempotency keys kept per sequence within the window (bounds the blob's size)
CAS_BUDGET_S = 10.0  # after this, 503 with Retry-After, having consumed nothing
BACKOFF_BASE_S, BACKOFF_CAP_S = 0.002, 0.1
_PERIOD = {"never": "", "yearly": "%Y", "monthly": "%Y-%m", "daily": "%Y-%m-%d"}
# What a format must show so that values from different periods can never be equal.
_PERIOD_NEEDS = {"yearly": ("%Y", "%y"), "monthly": ("%m",), "daily": ("%d",)}


Change = Callable[[tuple["SequenceState", str] | None], tuple["SequenceState", str | None] | None]


class SequenceDefinition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    format: str = Field(min_length=1, max_length=100)
    start: int = Field(default=1000, ge=0, le=10**15)
    increment: int = Field(default=1, ge=1, le=10**6)
    reset: Reset = "never"


class Issued(BaseModel):
    """One answered request. Format and increment are kept only where they differ from the definition's
    (they are written out when the definition changes), which keeps the blob every request rewrites small."""

    key: str
    at: datetime
    first: int
    count: int
    increment: int | None = None
    format: str | None = None

    def pinned(self, definition: SequenceDefinition) -> Issued:
        return self.model_copy(
            update={"increment": self.increment or definition.increment, "format": self.format or definition.format}
        )


class SequenceState(BaseModel):
    tenant: str
    sequence: str
    definition: SequenceDefinition
    period: str
    next: int
    issued_in_period: bool = False
    recent: list[Issued] = Field(default_factory=list)


class NextRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: int = Field(default=1, ge=1, le=MAX_COUNT)


class Allocation(BaseModel):
    values: list[str]
    seq: list[int]


def check_definition(definition: SequenceDefinition) -> None:
    tokens = parse_format(definition.format)
    shown = "".join(token.strftime for token in tokens if isinstance(token, DateTimeUtc))
    periods = ("yearly", "monthly", "daily")
    needed = periods[: periods.index(definition.reset) + 1] if definition.reset != "never" else ()
    for period in needed:
        if not any(code in shown for code in _PERIOD_NEEDS[period]):
            unit = {"yearly": "year", "monthly": "month", "daily": "day"}[period]
            reason = f"a {definition.reset} reset needs {{DATETIMEUTC:...}} showing the {unit}, or values would repeat"
            raise field_problems("invalid_format", None, [{"field": "format", "reason": reason}])


def period_of(reset: Reset, when: datetime) -> str:
    return when.strftime(_PERIOD[reset]) if _PERIOD[reset] else ""


class SequenceStore:
    def __init__(self, storage: Storage, clock: Clock, master_key: str, sleep: Callable[[float], None] = time.sleep):
        self._storage = storage
        self._clock = clock
        self._master_key = master_key
        self._sleep = sleep
        self._lock = threading.Lock()
        self.retries = 0  # conflicts seen (benchmarks report retries per number)

    def _blob(self, tenant: str, sequence: str) -> BlobClient:
        return self._storage.container(REGISTRY).get_blob_client(f"{sequence_prefix(tenant)}{sequence}.json")

    def _read(self, tenant: str, sequence: str) -> tuple[SequenceState, str] | None:
        blob = self._blob(tenant, sequence)
        with storage_errors():
            try:
                download = blob.download_blob()
                return SequenceState.model_validate_json(download.readall()), str(download.properties.etag)
            except ResourceNotFoundError:
                return None

    def _write(self, state: SequenceState, etag: str | None) -> None:
        """A conflict (written or created since `etag` was read) passes through, for the compare-and-swap."""
        data = state.model_dump_json(exclude_none=True).encode()
        blob = self._blob(state.tenant, state.sequence)
        with storage_errors(ResourceModifiedError, ResourceExistsError):
            blob.upload_blob(data, content_settings=JSON_CONTENT, **only_if_unchanged(etag))

    def _cas(self, tenant: str, sequence: str, change: Change) -> SequenceState | None:
        """Apply `change` (current state and ETag -> new state and the ETag to match, or None to write
        nothing) as one compare-and-swap, retrying on conflict within a bounded time."""
        deadline = time.monotonic() + CAS_BUDGET_S
        attempt = 0
        while True:
            try:
                outcome = change(self._read(tenant, sequence))
                if outcome is None:
                    return None
                self._write(outcome[0], outcome[1])
                return outcome[0]
            except (ResourceModifiedError, ResourceExistsError):
                with self._lock:
                    self.retries += 1
            attempt += 1
            if time.monotonic() > deadline:
                raise StorageUnavailable("the sequence is busy; nothing was consumed, retry later", retry_after=1)
            self._sleep(random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt)))

    # -- public ---------------------------------------------------------------------------------

    def get(self, tenant: str, sequence: str) -> SequenceState:
        found = self._read(tenant, sequence)
        if found is None:
            raise NotFound("unknown_sequence", "the tenant has no sequence with this id")
        return found[0]

    def delete(self, tenant: str, sequence: str) -> bool:
        blob = self._blob(tenant, sequence)
        with storage_errors():
            try:
                blob.delete_blob()
                return True
            except ResourceNotFoundError:
                return False

    def put(self, tenant: str, sequence: str, definition: SequenceDefinition) -> tuple[SequenceState, bool]:
        check_definition(definition)
        now = self._clock.now()
        created = False

        def change(current: tuple[SequenceState, str] | None) -> tuple[SequenceState, str | None] | None:
            nonlocal created
            if current is None:
                created = True
                period = period_of(definition.reset, now)
                return SequenceState(
                    tenant=tenant, sequence=sequence, definition=definition, period=period, next=definition.start
                ), None
            state, etag = current
            next_number = state.next
            if definition.start != state.definition.start:
                last = state.next - state.definition.increment
                if state.issued_in_period and definition.start <= last:
                    raise Conflict(
                        "start_below_issued", f"start must be above {last}, the last number handed out in this period"
                    )
                next_number = definition.start
            # Answers given under the old definition must render the same after the change.
            recent = [entry.pinned(state.definition) for entry in state.recent]
            return state.model_copy(update={"definition": definition, "next": next_number, "recent": recent}), etag

        state = self._cas(tenant, sequence, change)
        assert state is not None
        return state, created

    def next(self, tenant: str, sequence: str, count: int, idempotency_key: str | None) -> Allocation:
        key = self._key_hash(tenant, sequence, idempotency_key) if idempotency_key else None
        now = self._clock.now()
        answer: Allocation | None = None

        def change(current: tuple[SequenceState, str] | None) -> tuple[SequenceState, str | None] | None:
            nonlocal answer
            if current is None:
                raise NotFound("unknown_sequence", "the tenant has no sequence with this id")
            state, etag = current
            recent = [entry for entry in state.recent if entry.at > now - IDEMPOTENCY_WINDOW]
            if key is not None:
                earlier = next((entry for entry in recent if entry.key == key), None)
                if earlier is not None:
                    answer = self._render(tenant, sequence, earlier.pinned(state.definition))
                    return None  # answered before: consume nothing
            definition = state.definition
            period = period_of(definition.reset, now)
            first = state.next if period == state.period else definition.start
            issued = Issued(key=key or "", at=now, first=first, count=count)
            if key is not None:
                recent = [*recent[-(MAX_RECENT - 1) :], issued]
            answer = self._render(tenant, sequence, issued.pinned(definition))
            updated = state.model_copy(
                update={
                    "period": period,
                    "next": first + count * definition.increment,
                    "issued_in_period": True,
                    "recent": recent,
                }
            )
            return updated, etag

        self._cas(tenant, sequence, change)
        assert answer is not None
        return answer

    def _render(self, tenant: str, sequence: str, issued: Issued) -> Allocation:
        assert issued.format is not None and issued.increment is not None  # pinned by the caller
        tokens = parse_format(issued.format)
        rand_key = derive_key(self._master_key, f"randstring:{sequence}", tenant)
        seqs = [issued.first + n * issued.increment for n in range(issued.count)]
        return Allocation(values=[render(tokens, seq, issued.at, rand_key) for seq in seqs], seq=seqs)

    def _key_hash(self, tenant: str, sequence: str, key: str) -> str:
        secret = derive_key(self._master_key, "idempotency", tenant)
        return hmac.new(secret, f"{sequence}\n{key}".encode(), hashlib.sha256).hexdigest()[:32]
