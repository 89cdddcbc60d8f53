"""Web-form capture: a customer's site posts a form; PackCloud keeps what the dataset declares.

One request in, one answer out, shaped for the two kinds of caller: a `fetch` from the snippet (JSON,
CORS) and a plain HTML post with no JavaScript (a 303 redirect, to the thank-you page on success and
back to the form's page with an error code on failure). The rules, in order:

1. the dataset exists here and is a webform dataset (404 / 421), and the page's Origin is allowed (403);
2. a per-client courtesy rate limit (429);
3. the body: size first (413), then type (415) and syntax (400);
4. a filled honeypot is answered as a success and nothing is stored;
5. consent given, when the dataset asks for it, and every declared field valid (422, one list);
6. with an idempotency key, a marker claims the submission first, so a retry stores nothing new and
   answers the same id; without one, exactly one storage write.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceModifiedError

from shared.capture.personal_state import SUBMISSION_MARKER
from shared.capture.store import COMMIT_DEADLINE, CaptureStore, Target
from shared.core.clock import Clock
from shared.core.errors import (
    Conflict,
    Forbidden,
    PackCloudError,
    StorageUnavailable,
    TooManyRequests,
    Unprocessable,
    field_problems,
)
from shared.core.fieldtypes import InvalidValue, normalise
from shared.core.idempotency import check_idempotency_key
from shared.core.ids import new_record_id
from shared.core.keys import derive_key
from shared.core.names import shown_names
from shared.core.net import client_ip
from shared.core.settings import Settings
from shared.core.snippets import render_script
from shared.registry.models import DatasetDoc, Record, origin_of_url
from shared.storage.blobs import JSON_CONTENT, STATE, Storage, index_tags, only_if_unchanged, storage_errors
from shared.webform.body import FormValue, parse_form
from shared.webform.rate_limit import RateLimiter

SNIPPET = Path(__file__).with_name("snippet.js")

CONTROL_PREFIX = "_packcloud_"
SUBMISSION_FIELD = "_packcloud_submission"  # the snippet's submission id: an idempotency key in the form
RETURN_FIELD = "_packcloud_return"  # the form's page, for plain posts whose browser sends no full Referer
MARKER_TTL = timedelta(hours=24)
CLAIM_ROUNDS = 3  # a marker that keeps changing under a claim: a 503 after this many tries
PREFLIGHT_HEADERS = ("accept", "content-type", "idempotency-key")
PREFLIGHT_MAX_AGE = "600"


@dataclass(frozen=True)
class FormPost:
    tenant: str
    dataset: str
    body: bytes
    headers: Mapping[str, str]  # lower-case names


@dataclass(frozen=True)
class Accepted:
    """A submission that passed every check: its record (None: the honeypot was filled, nothing is stored),
    its idempotency key and the names of the undeclared fields it carried."""

    record: Record | None
    key: str | None
    dropped: tuple[str, ...]


@dataclass(frozen=True)
class Stored:
    record_id: str
    dropped: tuple[str, ...]
    replayed: bool = False


@dataclass(frozen=True)
class FormAnswer:
    status: int
    body: dict[str, Any] | None
    headers: dict[str, str] = field(default_factory=dict)


def is_navigation(headers: Mapping[str, str]) -> bool:
    """A plain HTML form post (the browser will show the answer as a page), not a script's request."""
    mode = headers.get("sec-fetch-mode")
    if mode is not None:
        return mode == "navigate"
    accept = headers.get("accept", "")
    return "text/html" in accept and "application/json" not in accept


def cors_headers(origin: str) -> dict[str, str]:
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Expose-Headers": "Retry-After, Idempotent-Replayed",
        "Vary": "Origin",
    }


def allowed_origin(dataset: DatasetDoc, headers: Mapping[str, str]) -> str:
    """The request's Origin when the dataset allows it; a browser always sends one on a POST."""
    origin = headers.get("origin")
    if not origin or origin == "null":
        raise Forbidden("origin_not_allowed", "the request has no Origin this form accepts")
    normalised = origin_of_url(origin)
    if normalised is None or normalised not in dataset.allowed_origins:
        raise Forbidden("origin_not_allowed", "this form does not accept submissions from that site")
    return normalised


def preflight(dataset: DatasetDoc, headers: Mapping[str, str]) -> dict[str, str]:
    """CORS preflight: only the dataset's origins, only POST, only the headers the snippet sends."""
    origin = allowed_origin(dataset, headers)
    if headers.get("access-control-request-method", "").upper() != "POST":
        raise Forbidden("method_not_allowed", "forms accept POST only")
    requested = {name.strip().lower() for name in headers.get("access-control-request-headers", "").split(",")}
    requested.discard("")
    if not requested <= set(PREFLIGHT_HEADERS):
        raise Forbidden("header_not_allowed", f"forms accept only the headers {', '.join(PREFLIGHT_HEADERS)}")
    return {
        **cors_headers(origin),
        "Access-Control-Allow-Methods": "POST",
        "Access-Control-Allow-Headers": ", ".join(PREFLIGHT_HEADERS),
        "Access-Control-Max-Age": PREFLIGHT_MAX_AGE,
        "Vary": "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
    }


def _with_query(url: str, extra: Mapping[str, str]) -> str:
    parts = urlsplit(url)
    kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not k.startswith("packcloud_")]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode([*kept, *extra.items()]), ""))


def _tame_name(name: str) -> str | None:
    return name if re.fullmatch(r"[A-Za-z0-9_.\-\[\]]{1,64}", name) else None


class FormIntake:
    def __init__(self, capture: CaptureStore, storage: Storage, settings: Settings, clock: Clock) -> None:
        self._capture = capture
        self._storage = storage
        self._settings = settings
        self._clock = clock
        self._limiter = RateLimiter(settings.form_rate_per_minute, clock)

    def target(self, tenant: str, dataset: str) -> Target:
        return self._capture.resolve(tenant, dataset, "webform")

    def preflight(self, tenant: str, dataset: str, headers: Mapping[str, str]) -> FormAnswer:
        return FormAnswer(204, None, preflight(self.target(tenant, dataset).dataset, headers))

    async def preflight_async(self, tenant: str, dataset: str, headers: Mapping[str, str]) -> FormAnswer:
        target = await self._capture.resolve_async(tenant, dataset, "webform")
        return FormAnswer(204, None, preflight(target.dataset, headers))

    def submit(self, post: FormPost) -> FormAnswer:
        target = self.target(post.tenant, post.dataset)
        origin = allowed_origin(target.dataset, post.headers)
        values: dict[str, FormValue] = {}
        try:
            values = self._values(post)
            stored = self._store(target, self._accepted(target, values, post.headers))
        except PackCloudError as error:
            return self._failure(error, target.dataset, origin, is_navigation(post.headers), values, post.headers)
        return self._success(target.dataset, origin, values, post.headers, stored)

    async def submit_async(self, post: FormPost) -> FormAnswer:
        """`submit` for an async function: the same rules in the same order, the same answers; the registry
        look-up and the writes awaited on the aio client (a cold registry read, and the rare replay of a
        submission already claimed, in a worker thread: see `_store_async`)."""
        target = await self._capture.resolve_async(post.tenant, post.dataset, "webform")
        origin = allowed_origin(target.dataset, post.headers)
        values: dict[str, FormValue] = {}
        try:
            values = self._values(post)
            stored = await self._store_async(target, self._accepted(target, values, post.headers))
        except PackCloudError as error:
            return self._failure(error, target.dataset, origin, is_navigation(post.headers), values, post.headers)
        return self._success(target.dataset, origin, values, post.headers, stored)

    def _values(self, post: FormPost) -> dict[str, FormValue]:
        """The courtesy limit, then the body (size, type, syntax)."""
        self._limit(post)
        return parse_form(post.body, post.headers.get("content-type"), self._settings.max_body_bytes)

    def _success(
        self,
        dataset: DatasetDoc,
        origin: str,
        values: Mapping[str, FormValue],
        headers: Mapping[str, str],
        stored: Stored,
    ) -> FormAnswer:
        if is_navigation(headers):
            location = dataset.redirect_url or self._return_page(dataset, values, headers)
            if location:
                return FormAnswer(303, None, {"Location": _with_query(location, {"packcloud_status": "sent"})})
        answer_headers = {**cors_headers(origin), **({"Idempotent-Replayed": "true"} if stored.replayed else {})}
        body: dict[str, Any] = {"id": stored.record_id, "dropped_fields": list(stored.dropped)}
        if dataset.redirect_url:
            body["redirect_url"] = dataset.redirect_url
        return FormAnswer(201, body, answer_headers)

    def _limit(self, post: FormPost) -> None:
        address = client_ip(post.headers.get("x-forwarded-for"), self._settings.trusted_proxies) or "unknown"
        wait = self._limiter.take(f"{post.tenant}|{address}")
        if wait is not None:
            raise TooManyRequests(
                "rate_limited", "too many submissions from this client, wait and retry", retry_after=wait
            )

    def _accepted(self, target: Target, values: Mapping[str, FormValue], headers: Mapping[str, str]) -> Accepted:
        """Every check of the submission itself, nothing stored yet: its key, its dropped names, its record."""
        dataset = target.dataset
        key = self._idempotency_key(values, headers)
        dropped = self._dropped(dataset, values)
        if dataset.honeypot_field and str(values.get(dataset.honeypot_field) or "").strip():
            # Answered like a success so a bot learns nothing; nothing is stored.
            return Accepted(None, key, dropped)
        return Accepted(self._prepare(target, values), key, dropped)

    def _store(self, target: Target, accepted: Accepted) -> Stored:
        """One write; with an idempotency key, the marker's claim first (a retry stores nothing new)."""
        record, key, dropped = accepted.record, accepted.key, accepted.dropped
        if record is None:
            return Stored(new_record_id(self._clock.now()), dropped)
        if key is None:
            self._capture.commit(target, record)
            return Stored(record.id, dropped)
        markers = self._markers()
        claimed = markers.claim(target, key, record.id, dropped, self._capture.subject_tag(target.dataset, record))
        if claimed is not None:
            return Stored(claimed, tuple(markers.dropped_of(target, key)), replayed=True)
        try:
            self._capture.commit(target, record)
        except PackCloudError:
            markers.release(target, key)  # the retry the client makes must not find a marker without a record
            raise
        return Stored(record.id, dropped)

    async def _store_async(self, target: Target, accepted: Accepted) -> Stored:
        """`_store` with the aio client: the same writes in the same order. A marker already there (a retry) is
        read and judged by the sync code in a worker thread: rare, and then several requests."""
        record, key, dropped = accepted.record, accepted.key, accepted.dropped
        if record is None:
            return Stored(new_record_id(self._clock.now()), dropped)
        if key is None:
            await self._capture.commit_async(target, record)
            return Stored(record.id, dropped)
        markers = self._markers()
        subject = self._capture.subject_tag(target.dataset, record)
        claimed = await markers.claim_async(target, key, record.id, dropped, subject)
        if claimed is not None:
            earlier = await asyncio.to_thread(markers.dropped_of, target, key)
            return Stored(claimed, tuple(earlier), replayed=True)
        try:
            await self._capture.commit_async(target, record)
        except PackCloudError:
            await asyncio.to_thread(markers.release, target, key)
            raise
        return Stored(record.id, dropped)

    def _markers(self) -> SubmissionMarkers:
        return SubmissionMarkers(self._storage, self._capture, self._settings, self._clock)

    def _prepare(self, target: Target, values: Mapping[str, FormValue]) -> Record:
        """The record to store, with its proof of consent; every problem, consent included, in one 422."""
        dataset = target.dataset
        missing_consent = dataset.consent_field is not None and not _given(values.get(dataset.consent_field))
        # The form's machinery (control fields, the trap, an undeclared consent box) is not data, nor "dropped".
        machinery = {dataset.honeypot_field, dataset.consent_field} - dataset.field_names
        data = {k: v for k, v in values.items() if k not in machinery and not k.startswith(CONTROL_PREFIX)}
        problems: list[dict[str, str]] = []
        if missing_consent and dataset.consent_field is not None:
            problems.append({"field": dataset.consent_field, "reason": "consent must be given"})
        meta = {}
        if dataset.consent_field is not None:
            meta["consent"] = {"given": True, "text_version": dataset.consent_text_version, "at": _iso(self._clock)}
        try:
            record = self._capture.prepare(target, data, meta=meta).record
        except Unprocessable as error:
            problems += [p for p in error.extra.get("errors", []) if p["field"] != dataset.consent_field]
        if problems:
            raise field_problems("invalid_fields", "the submission does not fit the form", problems, between=" ")
        return record

    @staticmethod
    def _idempotency_key(values: Mapping[str, FormValue], headers: Mapping[str, str]) -> str | None:
        key = headers.get("idempotency-key") or values.get(SUBMISSION_FIELD)
        if key is None or key == "":
            return None
        return check_idempotency_key(key)

    @staticmethod
    def _dropped(dataset: DatasetDoc, values: Mapping[str, FormValue]) -> tuple[str, ...]:
        machinery = {dataset.honeypot_field, dataset.consent_field}
        return shown_names(
            name
            for name in values
            if name not in dataset.field_names and name not in machinery and not name.startswith(CONTROL_PREFIX)
        )

    @staticmethod
    def _return_page(dataset: DatasetDoc, values: Mapping[str, FormValue], headers: Mapping[str, str]) -> str | None:
        """The form's page, when it is on an allowed origin: never redirect anywhere else."""
        for candidate in (values.get(RETURN_FIELD), headers.get("referer")):
            if isinstance(candidate, str) and origin_of_url(candidate) in dataset.allowed_origins:
                return candidate
        return None

    def _failure(
        self,
        error: PackCloudError,
        dataset: DatasetDoc,
        origin: str,
        navigation: bool,
        values: Mapping[str, FormValue],
        headers: Mapping[str, str],
    ) -> FormAnswer:
        page = self._return_page(dataset, values, headers) if navigation else None
        if page is not None:
            query = {"packcloud_error": error.code}
            fields = [p["field"] for p in error.extra.get("errors", []) if _tame_name(str(p["field"]))]
            if fields:
                query["packcloud_fields"] = ",".join(fields)
            return FormAnswer(303, None, {"Location": _with_query(page, query)})
        return FormAnswer(error.status, error.body(), {**error.headers, **cors_headers(origin)})


def _given(raw: FormValue) -> bool:
    try:
        return raw is not None and normalise("boolean", raw, max_length=None, options=()) is True
    except InvalidValue:
        return False


def _iso(clock: Clock) -> str:
    return clock.now().isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Marker:
    """A claim's marker blob, as written, and what a later round of the claim needs to make it again."""

    name: str
    body: bytes
    tags: dict[str, str]
    at: datetime
    record_id: str
    dropped: tuple[str, ...]
    subject: str | None


class SubmissionMarkers:
    """Idempotency markers in the state container: `{tenant}/datasets/{dataset}/idem/<keyed hash>.json`.

    A marker holds the record id and the dropped field names, never submitted values; it expires with
    the purge after a day (or the dataset's retention, if shorter) and goes with its dataset. It carries the
    record's subject tag, so that an export shows it and an erasure removes it with the record.
    """

    def __init__(self, storage: Storage, capture: CaptureStore, settings: Settings, clock: Clock) -> None:
        self._storage = storage
        self._capture = capture
        self._master = settings.master_key.get_secret_value()
        self._clock = clock

    def _name(self, target: Target, key: str) -> str:
        digest = hmac.new(derive_key(self._master, "idempotency", target.tenant.id), key.encode(), hashlib.sha256)
        return f"{SUBMISSION_MARKER.prefix(target.tenant.id, target.dataset.id)}{digest.hexdigest()[:40]}.json"

    def claim(
        self,
        target: Target,
        key: str,
        record_id: str,
        dropped: tuple[str, ...],
        subject: str | None = None,
        rounds: int = CLAIM_ROUNDS,
    ) -> str | None:
        """None when this submission is new and now claimed; else the id already answered for it."""
        if rounds == 0:
            raise StorageUnavailable("the submission's marker keeps changing, retry later", retry_after=1)
        marker = self._marker(target, key, record_id, dropped, subject)
        with storage_errors():
            try:
                self._storage.container(STATE).upload_blob(
                    marker.name, marker.body, overwrite=False, tags=marker.tags, content_settings=JSON_CONTENT
                )
                return None
            except ResourceExistsError:
                pass
        return self._claimed_before(target, key, marker, rounds)

    async def claim_async(
        self, target: Target, key: str, record_id: str, dropped: tuple[str, ...], subject: str | None = None
    ) -> str | None:
        """`claim` for an async function: the new marker written by the aio client; a marker already there (a
        retry, or an attempt in progress) judged by `claim`'s own code in a worker thread."""
        marker = self._marker(target, key, record_id, dropped, subject)
        with storage_errors():
            try:
                await self._capture.upload_new_async(STATE, marker.name, marker.body, marker.tags)
                return None
            except ResourceExistsError:
                pass
        return await asyncio.to_thread(self._claimed_before, target, key, marker, CLAIM_ROUNDS)

    def _marker(
        self, target: Target, key: str, record_id: str, dropped: tuple[str, ...], subject: str | None
    ) -> Marker:
        now = self._clock.now()
        expires = min(now + MARKER_TTL, target.dataset.expires_at(now))
        body = json.dumps({"record": record_id, "dropped": list(dropped), "at": now.isoformat()}).encode()
        tags = index_tags(target.tenant.id, target.dataset.id, expires=expires, subject=subject)
        return Marker(self._name(target, key), body, tags, now, record_id, dropped, subject)

    def _claimed_before(self, target: Target, key: str, marker: Marker, rounds: int) -> str | None:
        """A marker was there: the id it answered, once its record exists; else this attempt's claim."""
        earlier, etag = self._read(target, key)
        if earlier is None:  # released meanwhile: claim again
            return self.claim(target, key, marker.record_id, marker.dropped, marker.subject, rounds - 1)
        if self._capture.exists(target.tenant.id, target.dataset.id, str(earlier["record"])):
            return str(earlier["record"])
        if marker.at - datetime.fromisoformat(earlier["at"]) <= 2 * COMMIT_DEADLINE:
            raise Conflict(
                "submission_in_progress", "the same submission is being stored, retry shortly", retry_after=2
            )
        # The earlier attempt died between its marker and its record: this one takes the marker over.
        with storage_errors():
            try:
                self._storage.container(STATE).upload_blob(
                    marker.name,
                    marker.body,
                    tags=marker.tags,
                    content_settings=JSON_CONTENT,
                    **only_if_unchanged(etag),
                )
            except ResourceModifiedError:
                return self.claim(target, key, marker.record_id, marker.dropped, marker.subject, rounds - 1)
        return None

    def dropped_of(self, target: Target, key: str) -> list[str]:
        earlier, _ = self._read(target, key)
        return list(earlier.get("dropped", [])) if earlier else []

    def release(self, target: Target, key: str) -> None:
        with contextlib.suppress(AzureError):
            self._storage.container(STATE).delete_blob(self._name(target, key))

    def _read(self, target: Target, key: str) -> tuple[dict[str, Any] | None, str | None]:
        return self._storage.read_json(STATE, self._name(target, key))


def render_snippet(forms_endpoint: str) -> str:
    """The form-enhancing script; `forms_endpoint` is the deployment's …/api/forms."""
    return render_script(SNIPPET, {"endpoint": forms_endpoint})
