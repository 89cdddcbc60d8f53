"""Geo-login (PowerGeoLog): sign-ins located offline, kept minimally, compared with the user's last one.

The last sign-in of each user is a small state blob, `{tenant}/datasets/{dataset}/last/<subject hash>.json`,
tagged like the records (tenant, dataset, expiry, subject hash): the purge removes it with the records, an
erasure request removes it with the person's records, and looking it up reads one blob, never the dataset.
It holds the time, the country and the coordinates of the last sign-in, nothing else.
"""

from __future__ import annotations

import contextlib
import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from azure.core import MatchConditions
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from cachetools import LRUCache
from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.capture.personal_state import LAST_SIGN_IN
from shared.capture.store import CaptureStore, Target
from shared.capture.subjects import USER_ID, subject_tag
from shared.core.clock import Clock, IsoDatetime
from shared.core.errors import StorageUnavailable, field_problems
from shared.core.net import client_ip
from shared.core.settings import Settings
from shared.geologin.locator import NOWHERE, IPAddress, Location, Locator, parse_ip
from shared.geologin.travel import Sighting, TravelAlert, TravelRule, impossible_travel
from shared.storage.blobs import JSON_CONTENT, STATE, Storage, index_tags, only_if_unchanged, storage_errors

MAX_FUTURE = timedelta(minutes=5)
MAX_USER_AGENT = 512
STATE_ROUNDS = 3


class SignInRequest(BaseModel):
    """What the CRM side reports about one sign-in."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)

    user_id: UUID = Field(description="The Dynamics 365 systemuser id (a GUID).")
    signed_in_at: IsoDatetime | None = Field(default=None, description="ISO 8601 with a zone; default: now.")
    ip: str | None = Field(default=None, max_length=64, description="IPv4 or IPv6; default: the caller's address.")
    user_agent: str | None = Field(default=None, max_length=MAX_USER_AGENT)

    @field_validator("ip")
    @classmethod
    def _an_address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            parse_ip(value)
        except ValueError:
            raise ValueError("is not an IPv4 or IPv6 address") from None
        return value


@dataclass(frozen=True)
class SignInResult:
    id: str
    location: Location
    alerts: tuple[TravelAlert, ...]

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "location": self.location.public(),
            "alerts": [alert.model_dump() for alert in self.alerts],
        }


@dataclass(frozen=True)
class _Last:
    sighting: Sighting
    etag: str
    generation: str = ""  # of the dataset it was kept for ("" before generations existed)


class LastSignIns:
    """The per-user last-sign-in state, with an in-process cache of what this instance last wrote or read.

    Every write is conditional on the ETag the comparison was made against, so a stale cache entry (another
    instance saw the user since) is found out before the record is stored, and the comparison is redone.
    """

    def __init__(self, storage: Storage, master_key: str, cache_size: int = 50_000) -> None:
        self._storage = storage
        self._master_key = master_key
        self._cache: LRUCache[str, _Last] = LRUCache(maxsize=cache_size)
        self._lock = threading.Lock()

    def subject(self, tenant: str, user_id: str) -> str:
        # The same tag as the records' when user_id is the subject field: one erasure finds both.
        return subject_tag(self._master_key, tenant, USER_ID, user_id)

    @staticmethod
    def name(target: Target, subject: str) -> str:
        return f"{LAST_SIGN_IN.prefix(target.tenant.id, target.dataset.id)}{subject}.json"

    def get(self, target: Target, subject: str, *, fresh: bool = False) -> _Last | None:
        name = self.name(target, subject)
        if not fresh:
            with self._lock:
                cached = self._cache.get(name)
            if cached is not None:
                return cached
        body, etag = self._storage.read_json(STATE, name)
        if body is None or etag is None:
            self._forget(name)
            return None
        last = _Last(_sighting_of(body), etag, str(body.get("generation", "")))
        self._remember(name, last)
        return last

    def put(self, target: Target, subject: str, sighting: Sighting, previous: _Last | None, expires: datetime) -> str:
        """Write the new last sign-in if `previous` is still the stored one; raises _Moved if not."""
        name = self.name(target, subject)
        body = json.dumps(_body_of(sighting, target.dataset.generation)).encode()
        tags = self._tags(target, subject, expires)
        client = self._storage.container(STATE).get_blob_client(name)
        condition = only_if_unchanged(previous.etag if previous else None)
        with storage_errors():
            try:
                written = client.upload_blob(body, tags=tags, content_settings=JSON_CONTENT, **condition)
            except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
                # Written since, or deleted since (erasure, purge) while this instance still had it cached.
                raise _Moved() from None
        etag = str(written["etag"])
        self._remember(name, _Last(sighting, etag, target.dataset.generation))
        return etag

    def restore(
        self, target: Target, subject: str, previous: _Last | None, written_etag: str, expires: datetime
    ) -> None:
        """Best effort: put back the state a failed capture replaced, unless someone wrote since."""
        name = self.name(target, subject)
        self._forget(name)
        client = self._storage.container(STATE).get_blob_client(name)
        unchanged: dict[str, Any] = {"etag": written_etag, "match_condition": MatchConditions.IfNotModified}
        with contextlib.suppress(AzureError):
            if previous is None:
                client.delete_blob(**unchanged)
            else:
                body = json.dumps(_body_of(previous.sighting, previous.generation)).encode()
                tags = self._tags(target, subject, expires)
                client.upload_blob(body, overwrite=True, content_settings=JSON_CONTENT, tags=tags, **unchanged)

    @staticmethod
    def _tags(target: Target, subject: str, expires: datetime) -> dict[str, str]:
        return index_tags(target.tenant.id, target.dataset.id, expires=expires, subject=subject)

    def _remember(self, name: str, last: _Last) -> None:
        with self._lock:
            self._cache[name] = last

    def _forget(self, name: str) -> None:
        with self._lock:
            self._cache.pop(name, None)


class _Moved(Exception):
    """The stored last sign-in changed since it was read."""


def _body_of(sighting: Sighting, generation: str) -> dict[str, Any]:
    where = sighting.location
    return {
        "generation": generation,
        "at": sighting.at.isoformat(),
        "country": where.country,
        "latitude": where.latitude,
        "longitude": where.longitude,
    }


def _sighting_of(body: dict[str, Any]) -> Sighting:
    return Sighting(
        at=datetime.fromisoformat(body["at"]),
        location=Location(country=body.get("country"), latitude=body.get("latitude"), longitude=body.get("longitude")),
    )


class GeoLogins:
    def __init__(
        self, capture: CaptureStore, storage: Storage, locator: Locator, settings: Settings, clock: Clock
    ) -> None:
        self._capture = capture
        self._locator = locator
        self._settings = settings
        self._clock = clock
        self._last = LastSignIns(storage, settings.master_key.get_secret_value())
        self._rule = TravelRule(
            max_speed_kmh=settings.travel_speed_kmh, country_window=timedelta(hours=settings.travel_window_hours)
        )

    def sign_in(self, target: Target, request: SignInRequest, forwarded_for: str | None) -> SignInResult:
        now = self._clock.now()
        at = self._when(target, request, now)
        address = self._address(request, forwarded_for)
        location = self._locator.locate(address) if address is not None else NOWHERE
        user_id = str(request.user_id)
        values: dict[str, object] = {
            "user_id": user_id,
            "signed_in_at": at.isoformat().replace("+00:00", "Z"),
            "country": location.country,
            "region": location.region,
            "city": location.city,
            "ip": str(address) if address is not None else None,
            "user_agent": request.user_agent,
        }
        sighting = Sighting(at, location)
        subject = self._last.subject(target.tenant.id, user_id)
        expires = target.dataset.expires_at(now)
        previous, written, alert = self._compare_and_keep(target, subject, sighting, expires)
        meta = {"alerts": [alert.model_dump()]} if alert else {}
        record = self._capture.prepare(target, {k: v for k, v in values.items() if v is not None}, meta=meta).record
        try:
            self._capture.commit(target, record)
        except Exception:
            if written is not None:
                self._last.restore(target, subject, previous, written, expires)
            raise
        return SignInResult(record.id, location, (alert,) if alert else ())

    def _compare_and_keep(
        self, target: Target, subject: str, sighting: Sighting, expires: datetime
    ) -> tuple[_Last | None, str | None, TravelAlert | None]:
        """Compare with the stored last sign-in and make this one the last, if it is the later one."""
        fresh = False
        for _ in range(STATE_ROUNDS):
            previous = self._last.get(target, subject, fresh=fresh)
            # One kept for a deleted generation of the dataset (a stale instance wrote it) is not compared with.
            current = previous is not None and previous.generation == target.dataset.generation
            seen = previous.sighting if previous is not None and current else None
            if seen is not None and seen.at >= sighting.at:
                if not fresh:  # no write will check a cached state here: check it was not erased or replaced
                    fresh = True
                    continue
                # A late report: compared, but the stored one stays the last.
                return previous, None, impossible_travel(seen, sighting, self._rule)
            alert = impossible_travel(seen, sighting, self._rule) if seen else None
            try:
                return previous, self._last.put(target, subject, sighting, previous, expires), alert
            except _Moved:
                fresh = True
        raise StorageUnavailable("the user's last sign-in keeps changing, retry later", retry_after=1)

    def _when(self, target: Target, request: SignInRequest, now: datetime) -> datetime:
        at = (request.signed_in_at or now).astimezone(UTC)
        if at > now + MAX_FUTURE:
            reason = "is more than 5 minutes in the future"
        elif target.dataset.expires_at(at) < now:
            reason = "is older than the dataset's retention"
        else:
            return at
        raise field_problems(
            "invalid_sign_in", "invalid sign-in", [{"field": "signed_in_at", "reason": reason}], between=" "
        )

    def _address(self, request: SignInRequest, forwarded_for: str | None) -> IPAddress | None:
        text = request.ip or client_ip(forwarded_for, self._settings.trusted_proxies)
        return parse_ip(text) if text else None
