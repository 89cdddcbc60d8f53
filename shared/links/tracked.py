"""Tracked links (the Powers pack): a short link to a shared asset that redirects to it and records the visit.

A link is a small state blob, `{tenant}/links/{link}.json` in `state`, found by the tenant and the link id alone
(the short URL names no dataset), tagged with its dataset, its expiry and, for a link made for a contact, the
contact's keyed hash: the purge deletes it when it expires, an erasure for the contact deletes it, an export
hands it out.

A visit is answered with the stored target only, never a URL from the request, so a link is no open redirect;
it is recorded under the pixel's rules (shared/capture/visitors.py), through the capture store. Links are read
through an in-process cache with the registry's time-to-live (`PACKCLOUD_REGISTRY_CACHE_TTL_SECONDS`), so a
followed link costs one storage request, the visit's record. Expiry is checked on every visit with the clock;
an erasure or a deleted dataset counts at once on the instance that made it, on others within the TTL, as every
registry change does.
"""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from azure.core.exceptions import ResourceExistsError
from cachetools import TTLCache
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.capture.personal_state import TRACKED_LINK
from shared.capture.store import CaptureStore, Target
from shared.capture.subjects import CONTACT_ID, subject_tag
from shared.capture.visitors import is_bot, tracking_refused
from shared.core.clock import Clock, IsoDatetime
from shared.core.errors import PackCloudError, StorageUnavailable, field_problems
from shared.core.ids import is_valid_id
from shared.core.net import client_ip
from shared.core.settings import Settings
from shared.core.urls import is_loopback, parse_web_url, without_query
from shared.registry.models import LINK_SUBJECT, MAX_RETENTION_DAYS, origin_of_url
from shared.registry.store import Registry
from shared.storage.blobs import JSON_CONTENT, STATE, Storage, index_tags, storage_errors

# 24 characters of secrets.token_urlsafe (144 random bits); links made by a later version may be longer.
LINK_ID_BYTES = 18
LINK_ID_PATTERN = r"^[A-Za-z0-9_-]{22,64}$"
_LINK_ID = re.compile(LINK_ID_PATTERN)
MAX_TARGET_LENGTH = 2048
CONTACT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,127}$"
# A link made for no contact holds no personal data, but lives in `state`, which the storage backstop empties
# at 30 days: that is its longest life too.
MAX_LINK_DAYS = MAX_RETENTION_DAYS
MAX_USER_AGENT = 512
# Links cached per instance: bounds memory when someone probes random ids (absences are cached too).
CACHE_MAX_ENTRIES = 10_000
# Browsers fetch a page ahead of a click that may never come: such a fetch is no visit.
PREFETCH = re.compile(r"prefetch|prerender", re.IGNORECASE)


def is_link_id(value: object) -> bool:
    # fullmatch on str only: re's $ would accept a trailing newline.
    return isinstance(value, str) and _LINK_ID.fullmatch(value) is not None


def new_link_id() -> str:
    return secrets.token_urlsafe(LINK_ID_BYTES)


def link_blob(tenant: str, link: str) -> str:
    return f"{TRACKED_LINK.prefix(tenant, '')}{link}.json"


class LinkRequest(BaseModel):
    """`POST /api/links/{tenant}/{dataset}`: what the CRM side asks a link for."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)

    target_url: str = Field(min_length=1, max_length=MAX_TARGET_LENGTH, description="absolute https URL")
    contact_id: str | None = Field(default=None, pattern=CONTACT_ID_PATTERN, description="makes the link personal")
    expires_at: IsoDatetime | None = Field(default=None, description="ISO 8601 with a zone; in the future")


class Link(BaseModel):
    """A link as stored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=LINK_ID_PATTERN)
    tenant: str
    dataset: str
    tenant_generation: str = ""
    dataset_generation: str = ""
    target_url: str
    contact_id: str | None = None
    created_at: datetime
    expires_at: datetime

    @property
    def personal(self) -> bool:
        return self.contact_id is not None

    def public(self, base_url: str) -> dict[str, object]:
        """The answer to its creation: the short link and what it does (the target and the contact are the
        caller's own values)."""
        return {
            "link": self.id,
            "url": f"{base_url}/go/{self.tenant}/{self.id}",
            "target_url": self.target_url,
            "personal": self.personal,
            "expires_at": self.expires_at.isoformat().replace("+00:00", "Z"),
        }


@dataclass(frozen=True)
class Opened:
    """A link that may be followed now, with where its visits are recorded."""

    link: Link
    target: Target


@dataclass(frozen=True)
class Visit:
    headers: Mapping[str, str]  # lower-case names


def invalid_link(field: str, reason: str) -> PackCloudError:
    return field_problems("invalid_link", "invalid link", [{"field": field, "reason": reason}], between=" ")


def checked_target(text: str, allowed_origins: tuple[str, ...]) -> str:
    """The target as a browser reads it: absolute https (http only for this machine), and on one of the dataset's
    allowed_origins when it declares any. Refused, never repaired (shared/core/urls.py)."""
    try:
        url = parse_web_url(text)
    except ValueError as reason:
        raise invalid_link("target_url", str(reason)) from None
    if url.scheme != "https" and not is_loopback(url):
        raise invalid_link("target_url", "must use https (http only for localhost)")
    if allowed_origins and origin_of_url(str(url)) not in allowed_origins:
        raise invalid_link("target_url", "must be on one of the dataset's allowed_origins")
    return str(url)


class Links:
    def __init__(
        self, capture: CaptureStore, storage: Storage, registry: Registry, settings: Settings, clock: Clock
    ) -> None:
        self._capture = capture
        self._storage = storage
        self._registry = registry
        self._settings = settings
        self._clock = clock
        ttl = settings.registry_cache_ttl_seconds
        self._cache: TTLCache[str, Link | None] | None = (
            TTLCache(maxsize=CACHE_MAX_ENTRIES, ttl=ttl) if ttl > 0 else None
        )
        self._lock = threading.Lock()

    def create(self, target: Target, request: LinkRequest) -> Link:
        now = self._clock.now()
        longest = target.dataset.expires_at(now) if request.contact_id else now + timedelta(days=MAX_LINK_DAYS)
        if request.expires_at is not None and request.expires_at <= now:
            raise invalid_link("expires_at", "is not in the future")
        contact = target.dataset.field(LINK_SUBJECT)
        if request.contact_id is None and contact is not None and contact.required:
            raise invalid_link("contact_id", "is required by the dataset")
        expires = min(request.expires_at or longest, longest)
        subject = None
        if request.contact_id is not None:
            master = self._settings.master_key.get_secret_value()
            subject = subject_tag(master, target.tenant.id, CONTACT_ID, request.contact_id)
        tags = index_tags(target.tenant.id, target.dataset.id, expires=expires, subject=subject)
        target_url = checked_target(request.target_url, target.dataset.allowed_origins)
        container = self._storage.container(STATE)
        for _ in range(3):  # 144 random bits never collide in practice; a collision gets a new id, never a reuse
            link = Link(
                id=new_link_id(),
                tenant=target.tenant.id,
                dataset=target.dataset.id,
                tenant_generation=target.tenant.generation,
                dataset_generation=target.dataset.generation,
                target_url=target_url,
                contact_id=request.contact_id,
                created_at=now,
                expires_at=expires,
            )
            body = link.model_dump_json().encode("utf-8")
            with storage_errors():
                try:
                    container.upload_blob(
                        link_blob(link.tenant, link.id), body, overwrite=False, tags=tags, content_settings=JSON_CONTENT
                    )
                except ResourceExistsError:
                    continue
            self._remember(link_blob(link.tenant, link.id), link)
            return link
        raise StorageUnavailable("no new link id could be stored, retry later", retry_after=1)

    def open(self, tenant_id: str, link_id: str) -> Opened | None:
        """The link if it may be followed now; None for a bad id, an unknown, expired or orphaned link alike.
        Raises StorageUnavailable when the link cannot be read."""
        if not (is_valid_id(tenant_id) and is_link_id(link_id)):
            return None
        tenant = self._registry.get_tenant(tenant_id)
        if tenant is None or tenant.region != self._settings.region:
            return None  # a link is served by the region it was made in; anything else is unknown here
        link = self._read(link_blob(tenant_id, link_id))
        if link is None:
            return None
        dataset = self._registry.get_dataset(tenant_id, link.dataset)
        now = self._clock.now()
        if (
            link.id != link_id
            or link.tenant != tenant_id
            or now >= link.expires_at
            or link.tenant_generation != tenant.generation
            or dataset is None
            or dataset.capability != "link"
            or link.dataset_generation != dataset.generation
            # A lowered retention shortens a contact's link at once, before the purge gets to it.
            or (link.personal and now >= dataset.expires_at(link.created_at))
        ):
            return None
        return Opened(link, Target(tenant, dataset))

    def forget(self, tenant_id: str) -> None:
        """Drop the tenant's cached links (after an erasure, so this instance sees it at once)."""
        if self._cache is not None:
            prefix = link_blob(tenant_id, "")[: -len(".json")]
            with self._lock:
                for name in [name for name in self._cache if name.startswith(prefix)]:
                    self._cache.pop(name, None)

    def _read(self, name: str) -> Link | None:
        if self._cache is not None:
            with self._lock:
                if name in self._cache:
                    return self._cache[name]
        body, _ = self._storage.read_json(STATE, name)
        try:
            link = None if body is None else Link.model_validate(body)
        except ValidationError:
            link = None
        self._remember(name, link)
        return link

    def _remember(self, name: str, link: Link | None) -> None:
        if self._cache is not None:
            with self._lock:
                self._cache[name] = link

    def record_visit(self, opened: Opened, visit: Visit) -> bool:
        """Record the visit if the rules allow; False when they do not. Storage trouble raises (the caller
        still redirects: the visitor came for the asset)."""
        headers = visit.headers
        if tracking_refused(headers) or is_bot(headers.get("user-agent")) or _prefetch(headers):
            return False
        link, now = opened.link, self._clock.now()
        values: dict[str, object] = {
            "link_id": link.id,
            "contact_id": link.contact_id,
            "visited_at": now.isoformat().replace("+00:00", "Z"),
            # The asset's own query (a token, a campaign id) and the referring page's stay out of the record.
            "target_url": without_query(link.target_url),
            "referrer": without_query(headers["referer"]) if headers.get("referer") else None,
            "ip": client_ip(headers.get("x-forwarded-for"), self._settings.trusted_proxies),
            "user_agent": headers.get("user-agent", "")[:MAX_USER_AGENT],
        }
        kept = {name: value for name, value in values.items() if value}
        try:
            self._capture.capture(opened.target, kept, lenient=True)
        except PackCloudError as error:
            if error.status >= 500:
                raise
            return False  # a field the dataset requires is missing from this visit (a referrer, say)
        return True


def _prefetch(headers: Mapping[str, str]) -> bool:
    return any(PREFETCH.search(headers.get(name, "")) for name in ("sec-purpose", "purpose", "x-moz"))
