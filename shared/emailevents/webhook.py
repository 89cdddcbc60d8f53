"""Is this request SendGrid's? The signed Event Webhook: ECDSA (P-256, SHA-256) over the timestamp header followed
by the raw body, checked by the `sendgrid` library's own `EventWebhook` with the tenant's verification key.

The checks, each before anything is stored: both headers present (401 naming the missing one); then the timestamp
a number (400) within 5 minutes of now either way (401: a replay, or a clock far off), a key configured for the
tenant (401), the body UTF-8 text (400, as the library verifies text), and the signature (401).
"""

from __future__ import annotations

import binascii
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from cachetools import TTLCache
from sendgrid.helpers.eventwebhook import EventWebhook  # type: ignore[import-untyped]  # sendgrid ships no types
from sendgrid.helpers.eventwebhook.eventwebhook_header import EventWebhookHeader  # type: ignore[import-untyped]  # no types

from shared.core.clock import Clock
from shared.core.errors import BadRequest, Unauthorized
from shared.core.numbers import ascii_int
from shared.storage.email_keys import parse_verification_key
from shared.storage.tenant_credentials import TenantRef

SIGNATURE_HEADER = EventWebhookHeader.SIGNATURE  # X-Twilio-Email-Event-Webhook-Signature
TIMESTAMP_HEADER = EventWebhookHeader.TIMESTAMP  # X-Twilio-Email-Event-Webhook-Timestamp
MAX_SKEW = timedelta(minutes=5)
MAX_SIGNATURE_CHARS = 200  # a base64 DER ECDSA P-256 signature has at most 96
# A key is re-read from its store at most this often per instance: a new key counts within it.
KEY_TTL_S = 60
MAX_CACHED_KEYS = 10_000


class KeySource(Protocol):
    """Where the tenants' keys are kept (shared/storage/email_keys.py `VerificationKeyStore`)."""

    def get(self, tenant: TenantRef) -> str | None: ...


@dataclass(frozen=True)
class SignedRequest:
    signature: str
    timestamp: str
    body: bytes


def signed_request(headers: Callable[[str], str | None], body: bytes) -> SignedRequest:
    """The two headers, or a 401 naming the one missing (header names are case-insensitive)."""
    found: dict[str, str] = {}
    for name in (SIGNATURE_HEADER, TIMESTAMP_HEADER):
        value = headers(name.lower())
        if value is None or value.strip() == "":
            raise Unauthorized("missing_signature", f"the header {name} is required (a signed Event Webhook)")
        found[name] = value.strip()
    return SignedRequest(found[SIGNATURE_HEADER], found[TIMESTAMP_HEADER], body)


def check_fresh(timestamp: str, now: datetime) -> None:
    seconds = ascii_int(timestamp, 0, 10**11) if len(timestamp) <= 11 else None
    if seconds is None:
        raise BadRequest("invalid_timestamp", f"{TIMESTAMP_HEADER} must be Unix seconds")
    age = now.timestamp() - seconds
    if age > MAX_SKEW.total_seconds() or -age > MAX_SKEW.total_seconds():
        raise Unauthorized(
            "stale_timestamp", f"{TIMESTAMP_HEADER} is more than 5 minutes from now: a replay, or a clock far off"
        )


class VerificationKeys:
    """Each tenant's verifier, read from its store and kept for KEY_TTL_S (an absent key too): a signed batch costs
    no read while it is kept. Kept per generation of the tenant, so a tenant deleted and created again with the same
    id never meets the verifier of the one before, even within KEY_TTL_S."""

    def __init__(self, keys: KeySource) -> None:
        self._keys = keys
        self._cache: TTLCache[tuple[str, str], EventWebhook | None] = TTLCache(maxsize=MAX_CACHED_KEYS, ttl=KEY_TTL_S)
        self._lock = threading.Lock()

    def verifier(self, tenant: TenantRef) -> EventWebhook | None:
        cached = (tenant.id, tenant.generation)
        with self._lock:
            if cached in self._cache:
                return self._cache[cached]
        text = self._keys.get(tenant)
        verifier: EventWebhook | None = None
        if text is not None:
            try:
                verifier = parse_verification_key(text)
            except ValueError:
                verifier = None  # stored before it was checked: as good as none
        with self._lock:
            self._cache[cached] = verifier
        return verifier

    def forget(self, tenant: TenantRef) -> None:
        with self._lock:
            self._cache.pop((tenant.id, tenant.generation), None)


def verify(request: SignedRequest, tenant: TenantRef, keys: VerificationKeys, clock: Clock) -> str:
    """The body as text once it is proven SendGrid's, for this tenant, now; else the error the module names."""
    check_fresh(request.timestamp, clock.now())
    verifier = keys.verifier(tenant)
    if verifier is None:
        raise Unauthorized("no_verification_key", "the tenant has no SendGrid verification key configured")
    try:
        text = request.body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("invalid_json", "the body is not UTF-8 text") from None
    if len(request.signature) > MAX_SIGNATURE_CHARS or not _verified(verifier, text, request):
        raise Unauthorized("invalid_signature", "the Event Webhook signature does not match the body and timestamp")
    return text


def _verified(verifier: EventWebhook, text: str, request: SignedRequest) -> bool:
    try:
        return bool(verifier.verify_signature(text, request.signature, request.timestamp))
    except (binascii.Error, ValueError):  # not base64 at all
        return False
