"""Auto-number sequences that never hand out the same number twice.

One blob per sequence (`registry/sequences/{tenant}/{sequence}.json`: counters hold no personal data, and
the retention purge never touches them) holds the definition, the next number, and the recent idempotency
keys (hashed). Every change is a compare-and-swap: read with the ETag, write back with If-Match; a stale
ETag (412) means another instance won, so read again after a jittered back-off. Counter and idempotency records
change in the same write, so a retried request either sees its earlier answer or consumes nothing. On one
instance, the callers of a sequence share swaps (group commit, `SequenceStore`), so contention costs waiting
for one swap in flight, not a retry per caller.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.storage.blob import BlobClient
from cachetools import LRUCache
from pydantic import BaseModel, ConfigDict, Field

from shared.autonumber.format import DateTimeUtc, parse_format, render
from shared.core.clock import Clock
from shared.core.errors import Conflict, NotFound, PackCloudError, field_problems
from shared.core.keys import derive_key
from shared.registry.store import sequence_prefix
from shared.storage.blobs import JSON_CONTENT, REGISTRY, Storage, only_if_unchanged, storage_errors

Reset = Literal["never", "yearly", "monthly", "daily"]
MAX_COUNT = 1000
IDEMPOTENCY_WINDOW = timedelta(hours=24)
MAX_RECENT = 500  # idempotency keys kept per sequence within the window (bounds the blob's size)
CAS_BUDGET_S = 10.0  # after this, 503 sequence_busy with Retry-After, having consumed nothing
MAX_GROUP = 256  # callers served by one swap (below MAX_RECENT, so a group never evicts its own keys)
KNOWN_SEQUENCES = 256  # sequences whose last state this instance keeps, to skip the read before a swap
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


class SequenceBusy(PackCloudError):
    """The compare-and-swap lost to other instances for CAS_BUDGET_S: contention, not an outage."""

    status = 503

    def __init__(self) -> None:
        super().__init__("sequence_busy", "the sequence is busy; nothing was consumed, retry later", retry_after=1)


@dataclass(eq=False)
class _Ask:
    """One caller's request, waiting for the swap that serves it."""

    count: int
    key: str | None
    done: threading.Event = field(default_factory=threading.Event)
    lead: bool = False  # set when the caller is handed the next swap of its sequence
    answer: Allocation | None = None
    error: BaseException | None = None


@dataclass(eq=False)
class _Queue:
    """The callers of one sequence on this instance: while one of them swaps, the others wait here."""

    waiting: list[_Ask] = field(default_factory=list)
    swapping: bool = False


class SequenceStore:
    """Group commit: the callers of one sequence that arrive while a swap for it is in flight on this instance
    join the next swap, and one read-modify-write serves them all, in arrival order. Across instances the ETag
    stays the arbiter. The last state this instance committed (or read) is kept with its ETag, so an
    uncontended swap is one conditional write: a stale copy costs one 412 and a read, never a wrong number."""

    def __init__(self, storage: Storage, clock: Clock, master_key: str, sleep: Callable[[float], None] = time.sleep):
        self._storage = storage
        self._clock = clock
        self._master_key = master_key
        self._sleep = sleep
        self._lock = threading.Lock()
        self._queues: dict[tuple[str, str], _Queue] = {}
        self._known: LRUCache[tuple[str, str], tuple[SequenceState, str]] = LRUCache(maxsize=KNOWN_SEQUENCES)
        self.retries = 0  # conflicts seen (benchmarks report retries per number)
        self.swaps = 0  # successful writes of `next` (benchmarks report callers per swap)

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

    def _write(self, state: SequenceState, etag: str | None) -> str:
        """The new ETag. A conflict (written, created or deleted since `etag` was read) passes through."""
        data = state.model_dump_json(exclude_none=True).encode()
        blob = self._blob(state.tenant, state.sequence)
        with storage_errors(ResourceModifiedError, ResourceExistsError, ResourceNotFoundError):
            return str(blob.upload_blob(data, content_settings=JSON_CONTENT, **only_if_unchanged(etag))["etag"])

    def _remember(self, tenant: str, sequence: str, found: tuple[SequenceState, str] | None) -> None:
        with self._lock:
            if found is None:
                self._known.pop((tenant, sequence), None)
            else:
                self._known[(tenant, sequence)] = found

    def _recalled(self, tenant: str, sequence: str) -> tuple[SequenceState, str] | None:
        with self._lock:
            return self._known.get((tenant, sequence))

    def _conflict(self, attempt: int, deadline: float) -> None:
        with self._lock:
            self.retries += 1
        if time.monotonic() > deadline:
            raise SequenceBusy()
        self._sleep(random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt)))

    def _cas(self, tenant: str, sequence: str, change: Change) -> SequenceState | None:
        """Apply `change` (current state and ETag -> new state and the ETag to match, or None to write
        nothing) as one compare-and-swap on a fresh read, retrying on conflict within a bounded time."""
        deadline = time.monotonic() + CAS_BUDGET_S
        attempt = 0
        self._remember(tenant, sequence, None)
        while True:
            try:
                outcome = change(self._read(tenant, sequence))
                if outcome is None:
                    return None
                self._write(outcome[0], outcome[1])
                return outcome[0]
            except (ResourceModifiedError, ResourceExistsError, ResourceNotFoundError):
                attempt += 1
                self._conflict(attempt, deadline)

    # -- public ---------------------------------------------------------------------------------

    def get(self, tenant: str, sequence: str) -> SequenceState:
        found = self._read(tenant, sequence)
        if found is None:
            raise NotFound("unknown_sequence", "the tenant has no sequence with this id")
        return found[0]

    def delete(self, tenant: str, sequence: str) -> bool:
        self._remember(tenant, sequence, None)
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
        ask = _Ask(count, key)
        with self._lock:
            queue = self._queues.setdefault((tenant, sequence), _Queue())
            queue.waiting.append(ask)
            ask.lead = not queue.swapping
            queue.swapping = True
        if not ask.lead:
            ask.done.wait()  # answered by another caller's swap, or handed the next one (`lead`)
        if ask.lead:
            self._swap_for(tenant, sequence, queue)
        if ask.error is not None:
            raise ask.error
        assert ask.answer is not None
        return ask.answer

    def _swap_for(self, tenant: str, sequence: str, queue: _Queue) -> None:
        """One swap for the callers waiting now (this one first), then the next swap goes to the first caller
        that arrived meanwhile: each caller waits for at most the swap in flight and its own."""
        with self._lock:
            batch = queue.waiting[:MAX_GROUP]
            del queue.waiting[:MAX_GROUP]
        try:
            answers = self._commit(tenant, sequence, batch)
            for ask, answer in zip(batch, answers, strict=True):
                ask.answer = answer
        except BaseException as error:  # every caller of the group gets the answer its swap got
            for ask in batch:
                ask.error = error
            raise
        finally:
            with self._lock:
                if queue.waiting:
                    queue.waiting[0].lead = True
                    queue.waiting[0].done.set()
                else:
                    queue.swapping = False
                    self._queues.pop((tenant, sequence), None)
            for ask in batch:
                ask.done.set()

    def _commit(self, tenant: str, sequence: str, batch: list[_Ask]) -> list[Allocation]:
        """The group's numbers, in arrival order, and its idempotency keys, in one conditional write."""
        deadline = time.monotonic() + CAS_BUDGET_S
        attempt = 0
        current = self._recalled(tenant, sequence)
        recalled = current is not None
        while True:
            if current is None:
                current, recalled = self._read(tenant, sequence), False
            if current is None:
                self._remember(tenant, sequence, None)
                raise NotFound("unknown_sequence", "the tenant has no sequence with this id")
            updated, issued = _allocate(current[0], batch, self._clock.now())
            if updated is None and recalled:
                current = None  # replays only: answered from what storage holds now, not from memory
                continue
            try:
                if updated is not None:
                    self._remember(tenant, sequence, None)  # until the write's outcome is known
                    etag = self._write(updated, current[1])
                    self._remember(tenant, sequence, (updated, etag))
                    with self._lock:
                        self.swaps += 1
                return [self._render(tenant, sequence, entry) for entry in issued]
            except (ResourceModifiedError, ResourceExistsError, ResourceNotFoundError):
                current = None
                if not recalled:  # a copy from memory that was out of date is not contention
                    attempt += 1
                    self._conflict(attempt, deadline)

    def _render(self, tenant: str, sequence: str, issued: Issued) -> Allocation:
        assert issued.format is not None and issued.increment is not None  # pinned by the caller
        tokens = parse_format(issued.format)
        rand_key = derive_key(self._master_key, f"randstring:{sequence}", tenant)
        seqs = [issued.first + n * issued.increment for n in range(issued.count)]
        return Allocation(values=[render(tokens, seq, issued.at, rand_key) for seq in seqs], seq=seqs)

    def _key_hash(self, tenant: str, sequence: str, key: str) -> str:
        secret = derive_key(self._master_key, "idempotency", tenant)
        return hmac.new(secret, f"{sequence}\n{key}".encode(), hashlib.sha256).hexdigest()[:32]


def _allocate(state: SequenceState, batch: list[_Ask], now: datetime) -> tuple[SequenceState | None, list[Issued]]:
    """Each request's numbers (pinned to the definition they were issued under), in order, and the state to
    write; None when every request is a replay, answered before, which consumes nothing."""
    recent = [entry for entry in state.recent if entry.at > now - IDEMPOTENCY_WINDOW]
    by_key = {entry.key: entry for entry in recent}
    definition = state.definition
    period = period_of(definition.reset, now)
    following = state.next if period == state.period else definition.start
    answers: list[Issued] = []
    consumed = False
    for ask in batch:
        earlier = by_key.get(ask.key) if ask.key is not None else None
        if earlier is not None:  # answered before, maybe earlier in this very group
            answers.append(earlier.pinned(definition))
            continue
        issued = Issued(key=ask.key or "", at=now, first=following, count=ask.count)
        following += ask.count * definition.increment
        consumed = True
        if ask.key is not None:
            recent.append(issued)
            by_key[ask.key] = issued
        answers.append(issued.pinned(definition))
    if not consumed:
        return None, answers
    update = {"period": period, "next": following, "issued_in_period": True, "recent": recent[-MAX_RECENT:]}
    return state.model_copy(update=update), answers
