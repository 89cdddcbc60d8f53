"""The deliverer: PackCloud upserts the records of `dataverse` datasets into Dynamics 365 and deletes them once
Dataverse has them (GDPR storage limitation: kept only until delivered).

A run (the timer `dataverse_delivery`, PACKCLOUD_DELIVERY_SCHEDULE, or `python -m shared.cli deliver`) takes each
tenant homed here that has a delivery target, in parallel, and for each of its `dataverse` datasets:

1. lists the dataset's records by prefix, in capture order (never another dataset's), leaving out dead letters
   (shared/dataverse/dead_letters.py) and records younger than the feed's settling time (lifecycle/delivery.py:
   a capture slower than its commit deadline is withdrawn, and must not have been delivered);
2. reads them, and hands on only those of the tenant's and dataset's current generations (lifecycle/generations.py,
   which deletes the others): a deleted tenant's records never reach the tenant created in its place;
3. sends them in `$batch` requests of up to PACKCLOUD_DELIVERY_BATCH_SIZE upserts by alternate key, at most as many
   at once as Dataverse's `x-ms-dop-hint` advises (8 at most, 1 until it has said);
4. writes the batch's receipt, then deletes what Dataverse stored exactly as an acknowledgement does
   (`Delivery.acknowledge`); a record is never deleted before Dataverse answered that it has it, so a run that dies
   anywhere leaves only records that the next run upserts again, onto the same rows.

Failures: a 429 pauses the tenant for its Retry-After (waited out in the run when short, else until a later run),
other tenants go on; 5xx, timeouts and refused connections are retried with back-off, then the tenant is `failing`
until a later run succeeds; a 403, or a 401 after a fresh token, or Entra ID refusing the application, `stops` the
tenant (one audit entry) until its target is given again; a 400 for one record makes it a dead letter, the others
go on. Records keep expiring meanwhile: retention always wins over delivery. Each run writes one audit entry per
dataset it delivered to, with counts, never values.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice
from typing import Any

import requests

from shared.core.clock import Clock
from shared.core.errors import StorageUnavailable
from shared.core.events import DELIVERY_STOPPED, NO_EVENTS, Events
from shared.core.ids import is_record_id, record_id_time
from shared.dataverse import dead_letters, receipts
from shared.dataverse.client import (
    CredentialsRefused,
    DataverseClient,
    DeliveryProblem,
    Throttled,
    TokenSource,
    Transient,
    make_session,
)
from shared.dataverse.odata import BatchAnswer, OpResult, Upsert, build_batch, entity_names, scrub_message
from shared.dataverse.targets import Target, Targets, TargetStatus
from shared.lifecycle.delivery import SETTLE, Delivery
from shared.lifecycle.generations import Generations, drop_stale
from shared.registry.delivery_mapping import DeliveryMapping, row_values
from shared.registry.models import DatasetDoc, Tenant
from shared.registry.store import Registry
from shared.storage.audit import AuditLog
from shared.storage.blobs import RECORDS, Storage, storage_errors

log = logging.getLogger("packcloud.delivery")

TENANTS_AT_ONCE = 8
MAX_DOP = 8  # Dataverse's own advice (x-ms-dop-hint) is followed up to this
READERS = 16
DEFAULT_BUDGET_S = 240.0  # within the 5-minute function timeout; no batch starts after it
MAX_INLINE_WAIT_S = 10.0  # a Retry-After up to this long is waited out in the run; a longer one pauses the tenant
MAX_THROTTLED_RETRIES = 5
BACKOFF_S = (1.0, 2.0, 4.0)
DEFAULT_RETRY_AFTER_S = 5.0  # a 429 that says no Retry-After
# The deliverer is a job, as the purge is: a batch deletion may wait longer than a request would (Azurite holding
# many blobs takes tens of seconds for 256), rather than fail and send the same records again next run.
STORAGE_READ_TIMEOUT_S = 120.0
# As many batches of a tenant are read (or deleted) while its `dop` batches are at Dataverse: when a request slot
# frees, a batch is ready for it, and the storage work overlaps the organisation's.
READ_AHEAD_PER_SLOT = 1


@dataclass
class DatasetPush:
    delivered: int = 0  # upserts Dataverse confirmed
    deleted: int = 0
    already_gone: int = 0
    refused: int = 0  # dead-lettered
    stale: int = 0  # records of an earlier generation, deleted instead
    requests: int = 0  # $batch requests sent
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: int) -> None:
        """Batches of one dataset run concurrently: every count goes up under the lock."""
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)


@dataclass
class TenantPush:
    tenant: str
    state: str = "ok"  # ok, failing, stopped, paused, skipped, storage_unavailable
    error: str | None = None
    datasets: dict[str, DatasetPush] = field(default_factory=dict)


@dataclass
class PushReport:
    started_at: datetime
    dry_run: bool
    duration_s: float = 0.0
    complete: bool = True
    tenants: dict[str, TenantPush] = field(default_factory=dict)
    would_send: list[str] = field(default_factory=list)
    deleted_at: dict[str, datetime] = field(default_factory=dict)  # record id -> when it was deleted

    def _total(self, name: str) -> int:
        return sum(getattr(d, name) for t in self.tenants.values() for d in t.datasets.values())

    @property
    def delivered(self) -> int:
        return self._total("delivered")

    @property
    def deleted(self) -> int:
        return self._total("deleted")

    @property
    def refused(self) -> int:
        return self._total("refused")

    @property
    def requests(self) -> int:
        return self._total("requests")


@dataclass
class _Sent:
    """What one batch's records became: delivered (record id -> row id), refused (dead letters), left for later."""

    delivered: dict[str, str | None] = field(default_factory=dict)
    refused: list[tuple[Upsert, OpResult]] = field(default_factory=list)
    problem: DeliveryProblem | None = None


class _Gate:
    """One tenant's pace during a run, shared by its concurrent batches: a 429 pauses them all."""

    def __init__(self, deadline: float, max_wait_s: float, sleep: Callable[[float], None], dop: int = 1) -> None:
        self.dop = dop
        self._deadline = deadline
        self._max_wait_s = max_wait_s
        self._sleep = sleep
        self._resume_at = 0.0
        self._halted: DeliveryProblem | None = None
        self._lock = threading.Lock()
        self._sending = 0
        self._slots = threading.Condition()

    @contextlib.contextmanager
    def sending(self) -> Iterator[None]:
        """At most `dop` requests of the tenant at Dataverse at once, whatever else its batches are doing."""
        with self._slots:
            self._slots.wait_for(lambda: self._sending < self.dop)
            self._sending += 1
        try:
            yield
        finally:
            with self._slots:
                self._sending -= 1
                self._slots.notify_all()

    def before_send(self) -> None:
        with self._lock:
            halted, wait_s = self._halted, self._resume_at - time.monotonic()
        if halted is not None:
            raise halted
        if wait_s > 0:
            if wait_s > self._max_wait_s or time.monotonic() + wait_s > self._deadline:
                raise Throttled(wait_s)
            self._sleep(wait_s)

    def throttle(self, retry_after: float) -> None:
        with self._lock:
            self._resume_at = max(self._resume_at, time.monotonic() + retry_after)

    def can_wait(self, seconds: float) -> bool:
        return seconds <= self._max_wait_s and time.monotonic() + seconds < self._deadline

    def advise(self, dop_hint: int | None) -> None:
        if dop_hint:
            with self._slots:
                self.dop = max(1, min(MAX_DOP, dop_hint))
                self._slots.notify_all()

    def halt(self, problem: DeliveryProblem) -> None:
        with self._lock:
            self._halted = self._halted or problem

    @property
    def halted(self) -> DeliveryProblem | None:
        return self._halted


class _Retries:
    """The one rule for sending a `$batch` again: each kind of problem has its waits, one a try (a 429 its Retry-After,
    MAX_THROTTLED_RETRIES times; a transient failure the back-off steps), and no wait goes past what the run can
    afford; anything else is final."""

    def __init__(self, backoff_s: tuple[float, ...]) -> None:
        self._backoff_s = backoff_s
        self._tries: Counter[type[DeliveryProblem]] = Counter()

    def wait_s(self, problem: DeliveryProblem, gate: _Gate) -> float | None:
        """The wait before the next try after `problem`, or None when there is none."""
        kind: type[DeliveryProblem]
        waits: tuple[float, ...]
        if isinstance(problem, Throttled):
            kind, waits = Throttled, (problem.retry_after,) * MAX_THROTTLED_RETRIES
        elif isinstance(problem, Transient):
            kind, waits = Transient, self._backoff_s
        else:
            return None
        self._tries[kind] += 1
        if self._tries[kind] > len(waits):
            return None
        wait_s = waits[self._tries[kind] - 1]
        return wait_s if gate.can_wait(wait_s) else None


@dataclass
class _Run:
    report: PushReport
    deadline: float
    readers: ThreadPoolExecutor
    lock: threading.Lock = field(default_factory=threading.Lock)


class Deliverer:
    def __init__(
        self,
        storage: Storage,
        registry: Registry,
        audit: AuditLog,
        clock: Clock,
        targets: Targets,
        delivery: Delivery,
        *,
        region: str,
        batch_size: int,
        budget_s: float = DEFAULT_BUDGET_S,
        max_inline_wait_s: float = MAX_INLINE_WAIT_S,
        backoff_s: tuple[float, ...] = BACKOFF_S,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        events: Events = NO_EVENTS,
    ) -> None:
        self._storage = storage
        self._registry = registry
        self._audit = audit
        self._clock = clock
        self._targets = targets
        self._delivery = delivery
        self._region = region
        self._batch_size = batch_size
        self._budget_s = budget_s
        self._max_inline_wait_s = max_inline_wait_s
        self._backoff_s = backoff_s
        self._session = session or make_session()
        self._sleep = sleep
        self._events = events
        # Tokens outlive a run (the deliverer is built once per process): one source per target version.
        self._token_sources: dict[tuple[str, str], TokenSource] = {}
        self._tokens_lock = threading.Lock()
        # Each organisation's last x-ms-dop-hint, so that a run starts where the previous one left off.
        self._dop: dict[str, int] = {}

    # -- a run ------------------------------------------------------------------------------

    def run(self, *, dry_run: bool = False) -> PushReport:
        started = time.monotonic()
        report = PushReport(started_at=self._clock.now(), dry_run=dry_run)
        targets = self._targets.all()
        with ThreadPoolExecutor(READERS) as readers:
            run = _Run(report, started + self._budget_s, readers)
            with ThreadPoolExecutor(TENANTS_AT_ONCE) as pool:
                for outcome in pool.map(lambda target: self._tenant(run, target), targets):
                    if outcome is not None:
                        report.tenants[outcome.tenant] = outcome
        report.duration_s = time.monotonic() - started
        report.complete = time.monotonic() <= run.deadline
        return report

    def tokens(self, target: Target) -> TokenSource:
        """The token source of a target's version (CredentialsRefused when its secret is gone)."""
        key = (target.tenant, target.version)
        with self._tokens_lock:
            source = self._token_sources.get(key)
            if source is None:
                credentials = self._targets.credentials(target)
                if credentials is None:
                    raise CredentialsRefused("secret_missing", "token")
                for old in [k for k in self._token_sources if k[0] == target.tenant]:
                    del self._token_sources[old]
                source = TokenSource(credentials, target.organization_url, self._session)
                self._token_sources[key] = source
            return source

    def client(self, target: Target) -> DataverseClient:
        return DataverseClient(self._session, target.organization_url, self.tokens(target))

    def _tenant(self, run: _Run, target: Target) -> TenantPush | None:
        outcome = TenantPush(target.tenant)
        try:
            tenant = self._registry.get_tenant(target.tenant, fresh=True)
            if tenant is None or tenant.generation != target.tenant_generation:
                if not run.report.dry_run:
                    self._targets.delete(target.tenant)  # outlived its tenant: the target and its secret go
                return None
            if tenant.region != self._region:
                return None
            datasets = [d for d in self._registry.list_datasets(tenant.id) if d.delivery.mode == "dataverse"]
            if run.report.dry_run:
                for dataset in datasets:
                    run.report.would_send.extend(self._would_send(tenant, dataset))
                return outcome
            status = self._targets.status(target)
            if status.state == "stopped" or (status.paused_until and self._clock.now() < status.paused_until):
                outcome.state = "stopped" if status.state == "stopped" else "paused"
                return outcome
            if datasets:
                self._deliver_tenant(run, target, tenant, datasets, status, outcome)
        except StorageUnavailable as error:
            log.warning("delivery for a tenant stopped by storage: %s", type(error).__name__)
            outcome.state, outcome.error = "storage_unavailable", "storage_unavailable"
        # Ids, states, codes and counts only: never a value, a secret or an answer's text.
        delivered = sum(counts.delivered for counts in outcome.datasets.values())
        log.debug(
            "delivery for tenant %s: %s (%s), %d delivered", target.tenant, outcome.state, outcome.error, delivered
        )
        return outcome

    def _deliver_tenant(
        self,
        run: _Run,
        target: Target,
        tenant: Tenant,
        datasets: list[DatasetDoc],
        status: TargetStatus,
        outcome: TenantPush,
    ) -> None:
        gate = _Gate(run.deadline, self._max_inline_wait_s, self._sleep, self._dop.get(target.organization_url, 1))
        generations = Generations(self._registry, tenant, datasets)
        problem: DeliveryProblem | None = None
        try:
            client = self.client(target)
            for dataset in datasets:
                counts = outcome.datasets.setdefault(dataset.id, DatasetPush())
                try:
                    self._deliver_dataset(run, target, tenant, dataset, client, gate, generations, counts)
                finally:
                    self._audit_dataset(tenant.id, dataset.id, counts)
        except DeliveryProblem as met:
            problem = met
        self._dop[target.organization_url] = gate.dop
        self._settle(target, status, problem, outcome)

    def _deliver_dataset(
        self,
        run: _Run,
        target: Target,
        tenant: Tenant,
        dataset: DatasetDoc,
        client: DataverseClient,
        gate: _Gate,
        generations: Generations,
        counts: DatasetPush,
    ) -> None:
        names = self._pending(tenant.id, dataset.id)
        running: set[Future[None]] = set()
        with ThreadPoolExecutor(MAX_DOP * (1 + READ_AHEAD_PER_SLOT)) as pool:
            try:
                while gate.halted is None and time.monotonic() < run.deadline:
                    chunk = list(islice(names, self._batch_size))
                    if not chunk:
                        break
                    while len(running) >= gate.dop * (1 + READ_AHEAD_PER_SLOT):
                        done, running = wait(running, return_when=FIRST_COMPLETED)
                        _raise_first(done)
                    work = (run, target, tenant, dataset, client, gate, generations, counts, chunk)
                    running.add(pool.submit(self._batch, *work))
            finally:
                done, _ = wait(running)
        _raise_first(done)
        if gate.halted is not None:
            raise gate.halted

    def _batch(
        self,
        run: _Run,
        target: Target,
        tenant: Tenant,
        dataset: DatasetDoc,
        client: DataverseClient,
        gate: _Gate,
        generations: Generations,
        counts: DatasetPush,
        names: list[str],
    ) -> None:
        try:
            records = [r for r in run.readers.map(self._read, names) if r is not None]
            current = drop_stale(self._storage, self._audit, generations, tenant.id, records)
            mapping = dataset.delivery
            ops = [Upsert(str(record["id"]), row_values(mapping, record)) for record in current]
            sent = self._send(client, target, mapping, ops, gate, counts) if ops else _Sent()
            self._keep(run, tenant, dataset, sent, counts)
            counts.add(stale=len(records) - len(current))
            if sent.problem is not None:
                raise sent.problem
        except DeliveryProblem as problem:
            gate.halt(problem)
            raise

    # -- sending ----------------------------------------------------------------------------

    def _send(
        self,
        client: DataverseClient,
        target: Target,
        mapping: DeliveryMapping,
        ops: list[Upsert],
        gate: _Gate,
        counts: DatasetPush,
    ) -> _Sent:
        """Atomic first (one change set: all or none). When Dataverse refuses an operation, the one it named is
        refused and the rest go again isolated (one change set each, continue on error), so that every other
        refusal is found by that one more request and each record gets its own answer."""
        sent = _Sent()
        answer = self._post(client, target, mapping, ops, gate, counts, isolated=False)
        results = _by_operation(answer, ops)
        if 200 <= answer.status < 300 and all(r is not None and r.status < 300 for r in results):
            sent.delivered = {op.record_id: r.row_id for op, r in zip(ops, results, strict=True) if r is not None}
            return sent
        rest = []
        for op, result in zip(ops, results, strict=True):
            if result is not None and _refusal(result.status):
                sent.refused.append((op, result))
            else:
                rest.append(op)
        if not sent.refused and answer.status < 300:
            sent.problem = Transient("answer_incomplete")  # a 200 that does not answer every operation
            return sent
        if rest:
            self._send_isolated(client, target, mapping, rest, gate, counts, sent)
        return sent

    def _send_isolated(
        self,
        client: DataverseClient,
        target: Target,
        mapping: DeliveryMapping,
        ops: list[Upsert],
        gate: _Gate,
        counts: DatasetPush,
        sent: _Sent,
    ) -> None:
        answer = self._post(client, target, mapping, ops, gate, counts, isolated=True)
        if not answer.results:
            sent.problem = Transient(f"batch_refused_{answer.status}")  # nothing per record: not theirs to carry
            return
        throttled = False
        for op, result in zip(ops, _by_operation(answer, ops), strict=True):
            if result is None:
                continue  # unanswered: left for a later run
            if result.status < 300:
                sent.delivered[op.record_id] = result.row_id
            elif _refusal(result.status):
                sent.refused.append((op, result))
            else:
                throttled = throttled or result.status == 429
        if throttled:
            retry_after = answer.retry_after or DEFAULT_RETRY_AFTER_S
            gate.throttle(retry_after)
            sent.problem = Throttled(retry_after)

    def _post(
        self,
        client: DataverseClient,
        target: Target,
        mapping: DeliveryMapping,
        ops: list[Upsert],
        gate: _Gate,
        counts: DatasetPush,
        *,
        isolated: bool,
    ) -> BatchAnswer:
        """One `$batch`, sent again after a short 429 (the whole tenant waits) or a transient failure (back-off);
        Throttled, CredentialsRefused or Transient when that does not help within the run."""
        assert mapping.table is not None and mapping.key is not None
        headers, body = build_batch(target.organization_url, mapping.table, mapping.key, ops, isolated=isolated)
        retries = _Retries(self._backoff_s)
        while True:
            gate.before_send()
            try:
                with gate.sending():
                    answer = client.batch(headers, body, len(ops))
                problem = _problem_of(answer)
            except Transient as met:
                problem = met
            finally:
                counts.add(requests=1)
            if problem is None:
                gate.advise(answer.dop_hint)
                return answer
            if isinstance(problem, Throttled):
                gate.throttle(problem.retry_after)  # the whole tenant pauses: its next sends wait in before_send
            wait_s = retries.wait_s(problem, gate)
            if wait_s is None:
                raise problem
            if not isinstance(problem, Throttled):
                self._sleep(wait_s)  # a transient failure holds back this request only

    # -- what a batch leaves ----------------------------------------------------------------

    def _keep(self, run: _Run, tenant: Tenant, dataset: DatasetDoc, sent: _Sent, counts: DatasetPush) -> None:
        """Receipt, then deletion of what Dataverse has; dead letters for what it refused."""
        mapping = dataset.delivery
        if sent.delivered:
            assert mapping.table is not None
            receipts.write(self._storage, tenant.id, dataset.id, mapping.table, sent.delivered, self._clock.now())
            ids = list(sent.delivered)
            deleted, gone = self._delivery.acknowledge(
                tenant.id, dataset.id, ids, audit=False, read_timeout=STORAGE_READ_TIMEOUT_S
            )
            now = self._clock.now()
            counts.add(delivered=len(ids), deleted=deleted, already_gone=gone)
            with run.lock:
                run.report.deleted_at.update(dict.fromkeys(ids, now))
        names = entity_names(mapping.table or "", [column for _, column in mapping.sent_columns()])
        for op, result in sent.refused:
            message = scrub_message(result.error_message, [op.record_id, *op.row.values()], names)
            marked = dead_letters.mark(
                self._storage,
                tenant.id,
                dataset.id,
                op.record_id,
                result.status,
                result.error_code,
                message,
                self._clock.now(),
            )
            counts.add(refused=int(marked))

    def _settle(
        self, target: Target, status: TargetStatus, problem: DeliveryProblem | None, outcome: TenantPush
    ) -> None:
        """The target's status after the run; one audit entry when delivery stops."""
        now = self._clock.now()
        if problem is None:
            new = status.model_copy(update={"state": "ok", "paused_until": None})
        elif isinstance(problem, Throttled):
            until = now + timedelta(seconds=problem.retry_after)
            new = status.model_copy(update={"paused_until": until, "error": problem.code, "error_at": now})
            outcome.state = "paused"
        elif isinstance(problem, CredentialsRefused):
            new = status.model_copy(update={"state": "stopped", "error": problem.code, "error_at": now})
            outcome.state = "stopped"
        else:
            new = status.model_copy(update={"state": "failing", "error": problem.code, "error_at": now})
            outcome.state = "failing"
        outcome.error = problem.code if problem is not None else None
        if new == status:
            return
        with contextlib.suppress(StorageUnavailable):
            self._targets.set_status(target, new)
            if new.state == "stopped" and status.state != "stopped":
                reason = problem.code if problem else None
                self._audit.append(target.tenant, "delivery_stopped", reason=reason, version=target.version)
                facts = {"reason": reason, "target_version": target.version, "stopped_at": now.isoformat()}
                self._events.emit(target.tenant, DELIVERY_STOPPED, facts)

    def _audit_dataset(self, tenant: str, dataset: str, counts: DatasetPush) -> None:
        if not (counts.delivered or counts.refused):
            return
        with contextlib.suppress(StorageUnavailable):
            self._audit.append(
                tenant,
                "delivery",
                dataset=dataset,
                via="dataverse",
                acknowledged=counts.delivered,
                deleted=counts.deleted,
                already_gone=counts.already_gone,
                refused=counts.refused,
                requests=counts.requests,
            )

    # -- reading ----------------------------------------------------------------------------

    def _pending(self, tenant: str, dataset: str) -> Iterator[str]:
        """The dataset's records to deliver, oldest first: no dead letter, none younger than the settling time."""
        base = f"{tenant}/{dataset}/"
        horizon = self._clock.now() - SETTLE
        container = self._storage.container(RECORDS)
        with storage_errors():  # the listing pages lazily: a failure may come at any step
            for blob in container.list_blobs(name_starts_with=base, include=["metadata"]):
                record_id = blob.name[len(base) :].removesuffix(".json")
                if not is_record_id(record_id):
                    continue
                if record_id_time(record_id) > horizon:
                    return
                if not dead_letters.is_dead(blob.metadata):
                    yield blob.name

    def _read(self, name: str) -> dict[str, Any] | None:
        body, _ = self._storage.read_json(RECORDS, name)
        return body

    def _would_send(self, tenant: Tenant, dataset: DatasetDoc) -> list[str]:
        mapping = dataset.delivery
        columns = ", ".join(column for _, column in mapping.sent_columns())
        return [
            f"{tenant.id}/{dataset.id} -> {mapping.table}({mapping.key}='{name.rsplit('/', 1)[-1][:-5]}') [{columns}]"
            for name in self._pending(tenant.id, dataset.id)
        ]


def _problem_of(answer: BatchAnswer) -> DeliveryProblem | None:
    """What the whole answer says about the tenant: throttled, refused for good, or failing for now."""
    statuses = {answer.status, *(result.status for result in answer.results)}
    if 429 in statuses:
        return Throttled(answer.retry_after or DEFAULT_RETRY_AFTER_S)
    if 403 in statuses or 401 in statuses:
        return CredentialsRefused("forbidden" if 403 in statuses else "unauthorized", "permission")
    if answer.status >= 500:
        return Transient(f"dataverse_{answer.status}")
    return None


def _refusal(status: int) -> bool:
    """A refusal of the record itself (a 4xx other than throttling or a refused identity): a dead letter."""
    return 400 <= status < 500 and status not in (401, 403, 408, 429)


def _by_operation(answer: BatchAnswer, ops: list[Upsert]) -> list[OpResult | None]:
    """Each operation's result, by its Content-ID (its position), or in order when the answer names none."""
    found: list[OpResult | None] = [None] * len(ops)
    results = answer.results
    if results and all(r.content_id is None for r in results) and len(results) == len(ops):
        return list(results)
    for result in results:
        if result.content_id is not None and 1 <= result.content_id <= len(ops):
            found[result.content_id - 1] = result
    return found


def _raise_first(done: set[Future[None]]) -> None:
    for future in done:
        error = future.exception()
        if error is not None:
            raise error
