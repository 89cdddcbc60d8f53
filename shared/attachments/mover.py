"""The mover: each tenant's new attachments, from Dynamics 365 into its SharePoint library, verified, then linked.

A run (the timer `attachment_mover`, PACKCLOUD_ATTACHMENT_SCHEDULE, or `python -m shared.cli attachments`) takes
each tenant of this deployment with an attachment job and a delivery target, several at once, and for each file
listed after its cursor (shared/attachments/sources.py):

1. a file over the job's size limit is refused (`too_large`) without being read;
2. a marker says the file is `moving` (id and size only: shared/attachments/progress.py);
3. the SharePoint item `{folder}/{attachment id} {file name}` is looked up: a run that died after uploading finds
   it and uploads nothing; otherwise the file is uploaded through Graph, its bytes read from Dataverse range by
   range as Graph asks for them (never the whole file in memory, never on disk);
4. the item's size and QuickXorHash are compared with the source's, hashed from the same ranges as they pass (and,
   when Graph already had the item, by reading the source once more);
5. only then the link is recorded in Dynamics 365 and, in link mode, the file removed there (one PATCH with
   If-Match, sources.py: a note gets the link as a line of its text, and in link mode loses its file; an e-mail
   attachment in link mode becomes an Internet shortcut to the copy); then the marker is deleted.

A file Graph refuses, or whose copy differs, keeps a `failed` marker with its reason and is listed in the job's
status and the DPO report until retried (`POST .../attachments/retry`). The cursor moves on after each page, so a
run killed anywhere is finished by the next: a file is uploaded at most once (its item name carries its id), and
no body is removed before its copy was verified. A 429 from either service (beyond the waits allowed) pauses that
tenant until its Retry-After; the other tenants go on. Logs and reports hold ids, sizes, counts and codes only.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

import requests

from shared.attachments.config import AttachmentJob, AttachmentJobs, Source
from shared.attachments.graph import DriveItem, GraphClient, GraphRefused, GraphThrottled, graph_tokens
from shared.attachments.progress import Cursor, Marker, Progress
from shared.attachments.quickxor import QuickXorHash
from shared.attachments.sources import BLOCK_BYTES, Attachment, DataverseFiles, Gone, OpenFile, Refused
from shared.core.clock import Clock
from shared.core.errors import StorageUnavailable
from shared.dataverse.client import DataverseClient, DeliveryProblem, Throttled, TokenSource
from shared.dataverse.targets import Target, Targets
from shared.registry.store import Registry
from shared.storage.audit import AuditLog

log = logging.getLogger("packcloud.attachments")
T = TypeVar("T")

TENANTS_AT_ONCE = 4
DEFAULT_BUDGET_S = 240.0  # within the 5-minute function timeout; no file starts after it
NAME_MAX = 200  # characters of the file name kept in the SharePoint item's name
PATH_MAX = 400  # SharePoint's limit on a path (GraphClient refuses longer ones)
_UNSAFE = re.compile(r'["*:<>?/\\|#%\x00-\x1f]')  # characters SharePoint refuses in a name, and control characters


def item_name(attachment: Attachment, room: int = NAME_MAX) -> str:
    """`{attachment id} {file name}`: the id makes the name unique and findable by the next run; the file name is
    cut to `room` characters (never the id)."""
    name = _UNSAFE.sub("_", attachment.file_name).strip(" .")[: max(0, min(NAME_MAX, room))].strip(" .")
    return f"{attachment.id} {name}" if name else attachment.id


def item_path(job: AttachmentJob, attachment: Attachment) -> str:
    """The item's path in the library, at most PATH_MAX characters when the folder leaves room for the id."""
    values = {"table": attachment.table, "record_id": attachment.record_id, "source": attachment.source}
    folder = job.folder
    for name, value in values.items():
        folder = folder.replace("{" + name + "}", value)
    room = PATH_MAX - len(folder) - 1 - len(attachment.id) - 1
    return f"{folder}/{item_name(attachment, room)}"


@dataclass
class TenantMove:
    tenant: str
    state: str = "ok"  # ok, paused, throttled, failing, skipped, storage_unavailable
    error: str | None = None
    moved: int = 0
    bytes_moved: int = 0
    already_there: int = 0  # found in SharePoint from an earlier run: not uploaded again
    failed: int = 0
    gone: int = 0
    listed: int = 0
    already_linked: int = 0  # notes listed again after their link was recorded (copy mode): skipped unread
    pending: int = 0  # copied, but Graph had no hash of the copy yet: checked again by the next run

    def counts(self) -> dict[str, int]:
        return {
            "moved": self.moved,
            "bytes_moved": self.bytes_moved,
            "already_there": self.already_there,
            "failed": self.failed,
            "gone": self.gone,
            "listed": self.listed,
            "already_linked": self.already_linked,
            "pending": self.pending,
        }


@dataclass
class MoveReport:
    started_at: datetime
    dry_run: bool
    duration_s: float = 0.0
    tenants: dict[str, TenantMove] = field(default_factory=dict)
    would_move: list[str] = field(default_factory=list)

    def total(self, name: str) -> int:
        return sum(getattr(t, name) for t in self.tenants.values())


class _Hasher:
    """The source's QuickXorHash, from the ranges as Graph asks for them: in order, each byte is hashed once (a
    range asked again, as a retried chunk, is not hashed twice)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.hashed = 0
        self._hash = QuickXorHash()

    def feed(self, offset: int, data: bytes) -> None:
        end = offset + len(data)
        if offset <= self.hashed < end:
            self._hash.update(memoryview(data)[self.hashed - offset :])
            self.hashed = end

    def finish(self, read: Callable[[int, int], bytes], block: int) -> str:
        """The hash, reading from the source whatever was not hashed yet (all of it, when Graph had the file)."""
        while self.hashed < self.size:
            self.feed(self.hashed, read(self.hashed, min(block, self.size - self.hashed)))
        return self._hash.b64digest()


class _Stop(Exception):
    """The tenant's run ends here (throttled, a service failing, out of time); its cursor stays where it is."""

    def __init__(self, state: str, error: str, retry_after: float | None = None) -> None:
        super().__init__(error)
        self.state = state
        self.error = error
        self.retry_after = retry_after


class Mover:
    def __init__(
        self,
        registry: Registry,
        jobs: AttachmentJobs,
        targets: Targets,
        progress: Progress,
        audit: AuditLog,
        clock: Clock,
        *,
        region: str,
        graph_url: str,
        session: requests.Session,
        budget_s: float = DEFAULT_BUDGET_S,
        max_wait_s: float = 10.0,
        page_size: int = 100,
        chunk_size: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._registry = registry
        self._jobs = jobs
        self._targets = targets
        self._progress = progress
        self._audit = audit
        self._clock = clock
        self._region = region
        self._graph_url = graph_url.rstrip("/")
        self._session = session
        self._budget_s = budget_s
        self._max_wait_s = max_wait_s
        self._page_size = page_size
        self._chunk_size = chunk_size
        self._sleep = sleep
        self._tokens: dict[tuple[str, str], tuple[TokenSource, TokenSource]] = {}
        self._tokens_lock = threading.Lock()

    def run(self, *, dry_run: bool = False) -> MoveReport:
        started = time.monotonic()
        report = MoveReport(started_at=self._clock.now(), dry_run=dry_run)
        deadline = started + self._budget_s
        tenants = self._jobs.all()
        with ThreadPoolExecutor(max_workers=TENANTS_AT_ONCE) as pool:
            for outcome, lines in pool.map(lambda t: self._tenant(t, deadline, dry_run), tenants):
                if outcome is not None:
                    report.tenants[outcome.tenant] = outcome
                    report.would_move.extend(lines)
        report.duration_s = time.monotonic() - started
        return report

    # -- one tenant -------------------------------------------------------------------------

    def _tenant(self, tenant_id: str, deadline: float, dry_run: bool) -> tuple[TenantMove | None, list[str]]:
        outcome = TenantMove(tenant_id)
        lines: list[str] = []
        try:
            tenant = self._registry.get_tenant(tenant_id, fresh=True)
            if tenant is None or tenant.region != self._region:
                return None, lines
            job, target = self._jobs.get(tenant), self._targets.get(tenant)
            if job is None or target is None:
                return None, lines
            cursor = self._progress.cursor(tenant_id)
            if cursor.job_version != job.version:
                cursor = Cursor(job_version=job.version)  # a changed job reads every source from the beginning
            if cursor.paused_until is not None and cursor.paused_until > self._clock.now():
                outcome.state = "paused"
                return outcome, lines
            cursor.paused_until = None
            files, graph = self._clients(target)
            if files is None or graph is None:
                outcome.state, outcome.error = "failing", "no_secret"
                return outcome, lines
            try:
                if not dry_run:
                    _check_drive(graph, job)
                    self._retries(tenant_id, job, files, graph, outcome, deadline)
                for source in job.sources:
                    self._source(tenant_id, job, source, cursor, files, graph, outcome, deadline, dry_run, lines)
            except _Stop as stop:
                outcome.state, outcome.error = stop.state, stop.error
                if stop.retry_after is not None:
                    cursor.paused_until = self._clock.now() + timedelta(seconds=stop.retry_after)
            if not dry_run:
                cursor.last_run = {
                    "at": self._clock.now().isoformat(),
                    "state": outcome.state,
                    "error": outcome.error,
                    **outcome.counts(),
                }
                self._progress.save_cursor(tenant_id, cursor)
                if outcome.moved or outcome.failed:
                    # Counts and codes: what left Dynamics 365 for SharePoint, never which file.
                    self._audit.append(tenant_id, "attachments", state=outcome.state, **outcome.counts())
        except StorageUnavailable:
            outcome.state, outcome.error = "storage_unavailable", "storage_unavailable"
        except Exception as error:  # one tenant's surprise must not end the others' run
            outcome.state, outcome.error = "failing", "internal"
            log.error("attachments for tenant %s failed: %s", tenant_id, type(error).__name__)
        if outcome.failed or outcome.state not in ("ok", "paused"):
            log.warning(
                "attachments for tenant %s: %s (%s), %d refused",
                tenant_id,
                outcome.state,
                outcome.error,
                outcome.failed,
            )
        return outcome, lines

    def _clients(self, target: Target) -> tuple[DataverseFiles | None, GraphClient | None]:
        credentials = self._targets.credentials(target)
        if credentials is None:
            return None, None
        with self._tokens_lock:
            key = (target.tenant, target.version)
            if key not in self._tokens:
                self._tokens[key] = (
                    TokenSource(credentials, target.organization_url, self._session),
                    graph_tokens(credentials, self._graph_url, self._session),
                )
            dataverse_tokens, graph_tokens_ = self._tokens[key]
        client = DataverseClient(self._session, target.organization_url, dataverse_tokens)
        files = DataverseFiles(client, page_size=self._page_size, max_wait_s=self._max_wait_s, sleep=self._sleep)
        options: dict[str, Any] = {"max_wait_s": self._max_wait_s, "sleep": self._sleep}
        if self._chunk_size is not None:
            options["chunk_size"] = self._chunk_size
        graph = GraphClient(self._session, self._graph_url, graph_tokens_, **options)
        return files, graph

    def _source(
        self,
        tenant: str,
        job: AttachmentJob,
        source: Source,
        cursor: Cursor,
        files: DataverseFiles,
        graph: GraphClient,
        outcome: TenantMove,
        deadline: float,
        dry_run: bool,
        lines: list[str],
    ) -> None:
        after = getattr(cursor, source)
        for page in _guarded(lambda: files.pages(job, source, after)):
            for attachment in page:
                outcome.listed += 1
                if dry_run:
                    if not (attachment.linked and job.mode == "copy"):
                        lines.append(f"{tenant} {source} {attachment.id} {attachment.size}")
                    continue
                if time.monotonic() > deadline:
                    raise _Stop(outcome.state, "time_budget_spent")
                self._one(tenant, job, attachment, files, graph, outcome)
            if page and not dry_run:
                # Every file of the page is moved or refused (with its marker): the next run starts after it.
                setattr(cursor, source, max(getattr(cursor, source), max(a.version for a in page)))
                self._progress.save_cursor(tenant, cursor)

    def _retries(
        self,
        tenant: str,
        job: AttachmentJob,
        files: DataverseFiles,
        graph: GraphClient,
        outcome: TenantMove,
        deadline: float,
    ) -> None:
        """Refused files: those asked for again are tried first; the others' markers are written again, so that
        they stay listed while the job runs."""
        for marker in self._progress.markers(tenant):
            if marker.source not in job.sources:
                continue
            if marker.state != "retry":
                self._progress.mark(tenant, marker.source, marker.id, marker.size, marker.state, marker.reason)
                continue
            if time.monotonic() > deadline:
                raise _Stop(outcome.state, "time_budget_spent")
            attachment = _guarded_value(functools.partial(files.get, marker.source, marker.id))
            if attachment is None:
                self._progress.done(tenant, marker.source, marker.id)
                outcome.gone += 1
                continue
            self._one(tenant, job, attachment, files, graph, outcome)

    # -- one file ---------------------------------------------------------------------------

    def _one(
        self,
        tenant: str,
        job: AttachmentJob,
        attachment: Attachment,
        files: DataverseFiles,
        graph: GraphClient,
        outcome: TenantMove,
    ) -> None:
        source, attachment_id = attachment.source, attachment.id
        if attachment.linked and job.mode == "copy":
            outcome.already_linked += 1  # moved by an earlier run: its own change listed it again
            return
        # (Linked in copy mode, now in link mode: the copy is found, checked, and only then the file removed.)
        if attachment.size > job.max_file_bytes:
            self._refuse(tenant, attachment, "too_large", outcome)
            return
        if len(item_path(job, attachment)) > PATH_MAX:
            self._refuse(tenant, attachment, "path_too_long", outcome)  # a folder pattern of long placeholders
            return
        self._progress.mark(tenant, source, attachment_id, attachment.size, "moving")
        try:
            item, uploaded, source_hash, size = self._copy(job, attachment, files, graph)
        except GraphRefused as refused:
            if refused.status == 0 or refused.status >= 500:
                raise _Stop("failing", f"graph_{refused.status}") from None  # Graph unavailable: the next run
            self._refuse(tenant, attachment, f"sharepoint_{refused.status}_{_code(refused.code)}", outcome)
            return
        except Gone:
            self._progress.done(tenant, source, attachment_id)
            outcome.gone += 1
            return
        if item.size == size and item.quick_xor_hash is None:
            # Graph has not computed the copy's hash yet: nothing is cleared; the next run checks it again.
            self._progress.mark(tenant, source, attachment_id, attachment.size, "retry", "hash_pending")
            log.debug("attachment %s %s: copy's hash pending", source, attachment_id)
            outcome.pending += 1
            return
        if item.size != size or item.quick_xor_hash != source_hash:
            self._refuse(tenant, attachment, "copy_differs", outcome)
            return
        try:
            _guarded_value(lambda: files.record_link(job, attachment, item.web_url))
        except Gone:
            # Changed or deleted in Dynamics 365 since it was listed: its body stays; a change lists it again.
            self._progress.done(tenant, source, attachment_id)
            outcome.gone += 1
            return
        except Refused as refused:
            self._refuse(tenant, attachment, refused.code, outcome)
            return
        self._progress.done(tenant, source, attachment_id)
        # Ids and sizes only, at DEBUG: `make run DEBUG=1` shows each file's way, never its name.
        log.debug("attachment %s %s: moved (%d bytes, uploaded: %s)", source, attachment_id, size, uploaded)
        outcome.moved += 1
        if uploaded:
            outcome.bytes_moved += size
        else:
            outcome.already_there += 1

    def _copy(
        self, job: AttachmentJob, attachment: Attachment, files: DataverseFiles, graph: GraphClient
    ) -> tuple[DriveItem, bool, str, int]:
        """The verified copy's item, whether it was uploaded now, the source's hash and size."""
        path = item_path(job, attachment)
        opened: OpenFile = _guarded_value(lambda: files.open(attachment))
        hasher = _Hasher(opened.size)

        def content(offset: int, length: int) -> bytes:
            data = _guarded_value(lambda: files.read(opened, offset, length))
            hasher.feed(offset, data)
            return data

        existing = _graph(lambda: graph.find_item(job.drive_id, path))
        uploaded = existing is None
        item = existing or _graph(lambda: graph.upload(job.drive_id, path, content, opened.size))
        source_hash = hasher.finish(
            lambda offset, length: _guarded_value(lambda: files.read(opened, offset, length)), BLOCK_BYTES
        )
        return item, uploaded, source_hash, opened.size

    def _refuse(self, tenant: str, attachment: Attachment, reason: str, outcome: TenantMove) -> Marker:
        log.debug("attachment %s %s: refused (%s, %d bytes)", attachment.source, attachment.id, reason, attachment.size)
        outcome.failed += 1
        return self._progress.mark(tenant, attachment.source, attachment.id, attachment.size, "failed", reason)


def _check_drive(graph: GraphClient, job: AttachmentJob) -> None:
    try:
        _graph(lambda: graph.check_drive(job.site_id, job.drive_id))
    except GraphRefused as refused:
        raise _Stop("failing", f"drive_{refused.status}") from None


def _code(code: str) -> str:
    """Graph's error code as a reason: letters and digits only, bounded."""
    return re.sub(r"[^A-Za-z0-9]", "", code)[:40] or "refused"


def _graph(call: Callable[[], T]) -> T:
    try:
        return call()
    except GraphThrottled as throttled:
        raise _Stop("throttled", "graph_throttled", throttled.retry_after) from None
    except Throttled as throttled:  # the token endpoint
        raise _Stop("throttled", "token_throttled", throttled.retry_after) from None
    except DeliveryProblem as problem:  # a token refused or unavailable
        raise _Stop("failing", f"graph_{problem.code}") from None
    except (requests.RequestException, OSError):
        raise _Stop("failing", "graph_unavailable") from None


def _guarded_value(call: Callable[[], T]) -> T:
    """A Dataverse call: throttling and failures end the tenant's run (Gone passes through)."""
    try:
        return call()
    except Throttled as throttled:
        raise _Stop("throttled", "dataverse_throttled", throttled.retry_after) from None
    except DeliveryProblem as problem:
        raise _Stop("failing", problem.code) from None


def _guarded(pages: Callable[[], Iterable[list[Attachment]]]) -> Iterable[list[Attachment]]:
    iterator = iter(pages())
    while True:
        try:
            page = next(iterator)
        except StopIteration:
            return
        except Throttled as throttled:
            raise _Stop("throttled", "dataverse_throttled", throttled.retry_after) from None
        except DeliveryProblem as problem:
            raise _Stop("failing", problem.code) from None
        yield page
