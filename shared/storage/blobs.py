"""The Blob Storage account of this deployment: one client, its containers, and a request counter.

Locally it is Azurite through a connection string; in Azure an account URL with the managed identity,
so no account key exists anywhere.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qs, urlsplit

import requests
from azure.core import MatchConditions
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.core.paging import PageIterator
from azure.core.pipeline.transport import HttpRequest, HttpResponse, RequestsTransport
from azure.core.rest import HttpRequest as RestHttpRequest
from azure.core.rest import HttpResponse as RestHttpResponse
from azure.storage.blob import BlobServiceClient, ContainerClient, ContentSettings, FilteredBlob, LinearRetry

from shared.core.clock import tag_time
from shared.core.errors import StorageUnavailable
from shared.core.settings import Settings
from shared.storage.identity import app_credential

if TYPE_CHECKING:
    from shared.storage.emulated_tags import TagQuery

REGISTRY = "registry"
RECORDS = "records"
STATE = "state"
AUDIT = "audit"
CONTAINERS = (REGISTRY, RECORDS, STATE, AUDIT)

# Bounds so that slow storage gives a clear 503 instead of a hanging request: one storage call gives up
# after (1 + RETRY_TOTAL) attempts of at most CONNECTION_TIMEOUT_S + settings.storage_timeout_seconds each.
CONNECTION_TIMEOUT_S = 5
RETRY_TOTAL = 2
RETRY_BACKOFF_S = 0.5
# The storage SDK's default backoff waits 15 s, then 18 s: a storage outage would hold every request
# ~45 s before its 503. Short waits keep the answer to an outage within a few seconds. The sync and the aio
# LinearRetry take the same arguments (backoff and jitter are annotated int, but it waits random.uniform seconds).
RETRY: dict[str, Any] = {"backoff": RETRY_BACKOFF_S, "retry_total": RETRY_TOTAL, "random_jitter_range": 0.2}
POOL_SIZE = 64
BATCH_DELETE_MAX = 256  # Blob batch takes at most 256 sub-requests.
# Names one tag-query request answers at most (the service's maximum). (Azurite looks at only that many blobs of
# the container after the marker, matching or not: on it the queries take the path of emulated_tags.py.)
FIND_PAGE_MAX = 5000
READERS = 8  # blobs read at once by read_json_each
# Every JSON blob PackCloud writes (registry documents, records, personal state) is served as JSON.
JSON_CONTENT = ContentSettings(content_type="application/json")
EMULATOR_ACCOUNT = "devstoreaccount1"  # Azurite's one account: never a real account's name

# The blob index tags of records and personal state, the one vocabulary their writers and the tag queries (purge,
# data-subject requests, deletions) share. Values are ids, fixed-width UTC times (`tag_time`, so that range
# queries compare them as text) or keyed hashes: never personal data.
TAG_TENANT = "t"  # a blob tagged with tenant X is named under `X/` (records and state): emulated_tags scopes by it
TAG_DATASET = "d"
TAG_CAPTURED = "cap"  # records only: the purge deletes what a lowered retention no longer allows
TAG_EXPIRES = "exp"
TAG_SUBJECT = "sub"  # where the blob is about a data subject: capture/subjects.py
TAG_DEAD_LETTER = "dl"  # records Dynamics 365 refused: dataverse/dead_letters.py

log = logging.getLogger("packcloud.storage")


class storage_errors:  # lower case, as contextlib's context managers are
    """The one mapping of storage trouble to an answer: any Azure SDK error raised in its block becomes
    StorageUnavailable (503 with Retry-After), as httpx maps transport errors to its own. The exception types
    given pass through unchanged, for the caller that handles them (an existing blob, a changed ETag); a block
    can also catch those itself, inside the `with`. `unavailable` makes the error raised instead (the secret
    store names its operation). The log names the SDK's error type only: its message may quote blob names."""

    __slots__ = ("_passing", "_unavailable")

    def __init__(
        self, *passing: type[AzureError], unavailable: Callable[[], StorageUnavailable] = StorageUnavailable
    ) -> None:
        self._passing = passing
        self._unavailable = unavailable

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if isinstance(error, AzureError) and not isinstance(error, self._passing):
            log.warning("storage request failed: %s", type(error).__name__)
            raise self._unavailable() from None


def index_tags(
    tenant: str,
    dataset: str,
    *,
    expires: datetime,
    captured: datetime | None = None,
    subject: str | None = None,
) -> dict[str, str]:
    """The index tags of a record (`captured` given) or of personal state, with `subject` where there is one."""
    tags = {TAG_TENANT: tenant, TAG_DATASET: dataset}
    if captured is not None:
        tags[TAG_CAPTURED] = tag_time(captured)
    tags[TAG_EXPIRES] = tag_time(expires)
    if subject is not None:
        tags[TAG_SUBJECT] = subject
    return tags


# The kinds of storage request the price list bills apart (docs/capacity.md): Put Blob and Put Block List are
# writes, Get Blob a read, List Blobs and Create Container "list and create container", Find Blobs by Tags is
# billed as a list but counted apart here, Delete Blob is free; the rest (properties, tags, leases) is "other".
WRITE_COMPS = {"", "block", "blocklist", "appendblock", "page"}


def request_kind(method: str, url: str) -> str:
    """One of write, read, list, tag_query, delete, batch, other: what a storage request is billed as."""
    query = parse_qs(urlsplit(url).query)
    comp = query.get("comp", [""])[0]
    container = query.get("restype", [""])[0] == "container"
    method = method.upper()
    if method == "PUT":
        return "list" if container and not comp else "write" if comp in WRITE_COMPS and not container else "other"
    if method == "GET":
        if comp == "blobs":
            return "tag_query"
        if comp == "list":
            return "list"
        return "read" if not comp and not container else "other"
    if method == "DELETE":
        return "delete"
    if method == "POST" and comp == "batch":
        return "batch"
    return "other"


# What the HTTP libraries read from the environment when told to: a proxy (requests and aiohttp), and a CA
# bundle (requests only; a proxy that inspects TLS needs one). Lower-case spellings of the proxies too, as both read
# them; the bundle's in upper case only, as requests reads it.
PROXY_SETTINGS = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY")
CA_BUNDLE_SETTINGS = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


def environment_names(names: Iterable[str], environ: Mapping[str, str] | None = None) -> bool:
    """Whether the environment sets any of `names` (in either case) to something.

    The storage transports read proxy settings from the environment only when it names any. Told to, requests
    and aiohttp look them up again at every request (and read ~/.netrc): aiohttp in two trips to a worker thread
    each time, a third of an upload's CPU (bench/README.md, "Storage transports"). A function app's environment
    does not change while it runs, so deciding once loses nothing; storage requests are signed by the account
    key or the managed identity, never a netrc password."""
    wanted = set(names)
    return any(name.upper() in wanted for name, value in (os.environ if environ is None else environ).items() if value)


def ca_bundle_named(environ: Mapping[str, str] | None = None) -> str | None:
    """The CA bundle the environment names for requests, in requests' own order; None: the default trust store."""
    environ = os.environ if environ is None else environ
    return next((environ[name] for name in CA_BUNDLE_SETTINGS if environ.get(name)), None)


# azure.core exports RequestsTransport through a module __getattr__, which mypy reads as Any.
class CountingTransport(RequestsTransport):  # type: ignore[misc]  # subclassing Any: see the line above
    """Counts the HTTP requests the SDK sends: benchmarks and tests check storage round trips."""

    def __init__(self, **kwargs: object) -> None:
        session = requests.Session()
        session.trust_env = environment_names(PROXY_SETTINGS)
        if not session.trust_env and (bundle := ca_bundle_named()) is not None:
            # The bundle requests would take from the environment, taken once: trusting the environment only for
            # it made requests look up proxies and ~/.netrc at every request too (a fifth of a form post's CPU).
            kwargs.setdefault("connection_verify", bundle)
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=POOL_SIZE)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        super().__init__(session=session, session_owner=True, **kwargs)
        self._lock = threading.Lock()
        self.sent = 0
        self.kinds: Counter[str] = Counter()  # by request_kind, for the cost model (bench/cost.py)

    def send(self, request: HttpRequest | RestHttpRequest, **kwargs: Any) -> HttpResponse | RestHttpResponse:
        self.note(request.method, request.url)
        response: HttpResponse | RestHttpResponse = super().send(request, **kwargs)
        return response

    def note(self, method: str, url: str) -> None:
        """Count one request (also those the aio transport of aio_blobs.py sends, so the counts stay whole)."""
        kind = request_kind(method, url)
        with self._lock:
            self.sent += 1
            self.kinds[kind] += 1


def make_transport(settings: Settings) -> CountingTransport:
    # The timeouts belong to the transport: given to the client next to a transport of one's own, the SDK
    # ignores them and the transport's defaults (300 s each) apply.
    return CountingTransport(connection_timeout=CONNECTION_TIMEOUT_S, read_timeout=settings.storage_timeout_seconds)


def make_service_client(settings: Settings, transport: CountingTransport) -> BlobServiceClient:
    retry = LinearRetry(**RETRY)
    if settings.storage_connection_string is not None:
        return BlobServiceClient.from_connection_string(
            settings.storage_connection_string.get_secret_value(), transport=transport, retry_policy=retry
        )
    return BlobServiceClient(
        str(settings.storage_account_url), credential=app_credential(settings), transport=transport, retry_policy=retry
    )


@dataclass(frozen=True)
class TagPage:
    """One page of a tag query: its names and where the next page starts (None: the query is done)."""

    names: list[str]
    marker: str | None


@dataclass
class Storage:
    """The account's containers, created once per process (not on the hot path)."""

    service: BlobServiceClient
    transport: CountingTransport
    _ready: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # Azurite answers tag queries from the container's first page only: on it, they are evaluated over a
    # listing instead (emulated_tags.py). Known once, from the account's name.
    _emulated_tags: bool = field(init=False)

    def __post_init__(self) -> None:
        self._emulated_tags = self.service.account_name == EMULATOR_ACCOUNT

    @classmethod
    def from_settings(cls, settings: Settings) -> Storage:
        transport = make_transport(settings)
        return cls(make_service_client(settings, transport), transport)

    def container(self, name: str) -> ContainerClient:
        self.ensure_containers()
        return self.service.get_container_client(name)

    @property
    def ready(self) -> bool:
        """Whether the containers exist (so `ensure_containers` makes no request)."""
        return self._ready

    def ensure_containers(self) -> None:
        if self._ready:
            return
        with self._lock:
            if self._ready:
                return
            # The first sync write of an instance. In Azure the Bicep has made the containers, so one listing
            # (a page; the capture account holds no others) finds them all: four creates answered 409 cost a cold
            # start about twice the CPU and a thread pool. Missing ones (a fresh Azurite) are created at once.
            with storage_errors():
                present = {container.name for container in self.service.list_containers()}
            missing = [name for name in CONTAINERS if name not in present]
            if missing:
                with ThreadPoolExecutor(max_workers=len(missing)) as pool:
                    list(pool.map(self._create_container, missing))
            self._ready = True

    def _create_container(self, name: str) -> None:
        with storage_errors(), contextlib.suppress(ResourceExistsError):
            self.service.create_container(name)

    def read_json(self, container: str, name: str) -> tuple[dict[str, Any] | None, str | None]:
        """A JSON blob and its ETag, or (None, None) when it does not exist.

        A read does not make sure of the containers first: one that is missing holds nothing, which Blob Storage
        answers as not found as well. So a cold start's registry reads need not wait for the containers' check
        (an async capture's write makes none: `CaptureStore.upload_new_async`)."""
        return _read_json(self.service.get_container_client(container), name)

    def read_json_each(self, container: str, names: list[str]) -> list[dict[str, Any] | None]:
        """Each JSON blob in order, None where it does not exist (deleted meanwhile); a few requests at a time,
        as a page of the feed or of an export may name hundreds."""
        client = self.container(container)

        def read(name: str) -> dict[str, Any] | None:
            return _read_json(client, name)[0]

        if len(names) <= 1:
            return [read(name) for name in names]
        with ThreadPoolExecutor(max_workers=READERS) as pool:
            return list(pool.map(read, names))

    def find_by_tags(self, container: str, where: str, *, read_timeout: float | None = None) -> Iterator[str]:
        """Names of the blobs whose index tags match; uses the tag index, never lists blobs (in Azure: on the
        emulator, see emulated_tags.py).

        `read_timeout` replaces the request timeout of the settings for a job that may wait (the purge)."""
        emulated = _emulated_query(where) if self._emulated_tags else None
        if emulated is not None:
            query, prefix = emulated
            from shared.storage import emulated_tags  # the emulator's only: Azure never loads it

            with storage_errors():
                client = self.container(container)
                yield from emulated_tags.matching(client, query, prefix, None, _timeout(read_timeout))
            return
        with storage_errors():
            for item in self.container(container).find_blobs_by_tags(where, **_timeout(read_timeout)):
                yield item.name

    def find_page_by_tags(
        self, container: str, where: str, *, marker: str | None = None, page_size: int = FIND_PAGE_MAX
    ) -> TagPage:
        """One page of a tag query (at most `page_size` names, FIND_PAGE_MAX at most) from `marker`, a
        `TagPage.marker` of the same query, on: one storage request, however many blobs the query matches."""
        emulated = _emulated_query(where) if self._emulated_tags else None
        if emulated is not None:
            query, prefix = emulated
            from shared.storage import emulated_tags  # the emulator's only: Azure never loads it

            with storage_errors():
                client = self.container(container)
                names, next_marker = emulated_tags.find_page(
                    client, query, prefix, marker, min(page_size, FIND_PAGE_MAX)
                )
            return TagPage(names, next_marker)
        with storage_errors():
            found = self.container(container).find_blobs_by_tags(where, results_per_page=min(page_size, FIND_PAGE_MAX))
            # by_page answers a PageIterator (it keeps the continuation token); its annotation says only Iterator.
            pages = cast(PageIterator[FilteredBlob], found.by_page(marker))
            names = [item.name for item in next(pages, [])]
            return TagPage(names, pages.continuation_token or None)

    def delete_names(self, container: str, names: Iterable[str], *, read_timeout: float | None = None) -> int:
        """Batch-delete (256 per request); a name already gone counts as deleted, so reruns are harmless."""
        deleted, already_gone = self.delete_each(container, names, read_timeout=read_timeout)
        return deleted + already_gone

    def delete_each(
        self, container: str, names: Iterable[str], *, read_timeout: float | None = None
    ) -> tuple[int, int]:
        """Batch-delete; answers how many were deleted now and how many were already gone."""
        client = self.container(container)
        options = _timeout(read_timeout)
        deleted = already_gone = 0
        batch: list[str] = []
        with storage_errors():
            for name in names:
                batch.append(name)
                if len(batch) == BATCH_DELETE_MAX:
                    now_gone, before = _delete_batch(client, batch, options)
                    deleted, already_gone, batch = deleted + now_gone, already_gone + before, []
            if batch:
                now_gone, before = _delete_batch(client, batch, options)
                deleted, already_gone = deleted + now_gone, already_gone + before
        return deleted, already_gone


def _read_json(client: ContainerClient, name: str) -> tuple[dict[str, Any] | None, str | None]:
    with storage_errors():
        try:
            download = client.download_blob(name)
            return dict(json.loads(download.readall())), str(download.properties.etag)
        except ResourceNotFoundError:
            return None, None


def _emulated_query(where: str) -> tuple[TagQuery, str] | None:
    """The query and the name prefix its blobs live under (the tenant's), when it names a tenant; None for a
    query over the whole container (the purge's expired records and state), which Azurite answers itself.

    Listing a whole container with its tags costs about 0.45 ms a blob on Azurite (a local stack's purge over
    a test session's tens of thousands of blobs took minutes), where its own filter takes a tenth of that. Such a
    query keeps Azurite's first-page limit: on a local stack holding more than 5,000 blobs the purge can leave
    expired state and records of deleted datasets for a later run, while every tenant's retention queries and
    every data-subject request (tenant queries) see all of the tenant's blobs."""
    from shared.storage.emulated_tags import TagQuery  # the emulator's only: Azure never loads it

    query = TagQuery.parse(where)
    tenant = query.equal_to(TAG_TENANT)
    return None if tenant is None else (query, f"{tenant}/")


def _timeout(read_timeout: float | None) -> dict[str, Any]:
    """Per-call options: a read timeout other than the transport's, when one is given."""
    return {} if read_timeout is None else {"read_timeout": read_timeout}


def _delete_batch(client: ContainerClient, names: list[str], options: dict[str, Any]) -> tuple[int, int]:
    responses = client.delete_blobs(*names, raise_on_any_failure=False, **options)
    statuses = [response.status_code for response in responses]
    failed = [status for status in statuses if status not in (202, 404)]
    if failed:
        # A sub-request that failed for another reason must not count as done: the caller retries.
        raise StorageUnavailable(f"storage refused {len(failed)} of {len(names)} deletions, retry later")
    return statuses.count(202), statuses.count(404)


def only_if_unchanged(etag: str | None) -> dict[str, Any]:
    """Upload conditions for optimistic concurrency: without an ETag, create only if absent; with one,
    replace only if the blob is still the one that was read."""
    if etag is None:
        return {"overwrite": False}
    return {"overwrite": True, "etag": etag, "match_condition": MatchConditions.IfNotModified}


def tag_query(
    *,
    tenant: str | None = None,
    dataset: str | None = None,
    subject: str | None = None,
    captured_by: datetime | None = None,
    expired_by: datetime | None = None,
    dead_letter: bool = False,
) -> str:
    """A Find-Blobs-by-Tags expression over the index tags: the ids and the subject hash equal to those given,
    the capture or expiry time at or before the time given. Ids and hashes are tag-safe (never a quote)."""
    equal = {TAG_TENANT: tenant, TAG_DATASET: dataset, TAG_SUBJECT: subject}
    by = {TAG_CAPTURED: captured_by, TAG_EXPIRES: expired_by}
    terms = [(name, "=", value) for name, value in equal.items() if value is not None]
    terms += [(name, "<=", tag_time(when)) for name, when in by.items() if when is not None]
    if dead_letter:
        terms.append((TAG_DEAD_LETTER, "=", "1"))
    if not terms:
        raise ValueError("a tag query names at least one tag")
    for _, _, value in terms:
        if "'" in value or '"' in value:
            raise ValueError("tag values never contain quotes")
    return " AND ".join(f"\"{name}\" {operator} '{value}'" for name, operator, value in terms)
