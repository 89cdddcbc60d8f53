"""The tracking pixel's rules: when a hit may be recorded, which values it carries, signed e-mail links.

A pixel must never break a page, so `record_hit` decides quietly: it returns whether it recorded, and
the caller always answers the GIF.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from shared.capture.store import CaptureStore, Target
from shared.capture.visitors import is_bot, tracking_refused
from shared.core.errors import PackCloudError
from shared.core.ids import is_valid_id
from shared.core.keys import signing_key_text
from shared.core.net import client_ip
from shared.core.numbers import LARGEST, ascii_int
from shared.core.settings import Settings
from shared.core.snippets import render_script
from shared.core.urls import without_query
from shared.pixel.events import event_values
from shared.registry.models import DatasetDoc, origin_of_url

SNIPPET = Path(__file__).with_name("snippet.js")
log = logging.getLogger("packcloud.pixel")

# A 1x1 transparent GIF89a.
GIF = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b")

# Query parameters that steer the pixel itself and are never data.
RESERVED_PARAMS = frozenset({"sig", "exp", "_"})
SNIPPET_FIELDS = ("page_url", "referrer", "visitor", "title")
# Fields that hold a URL whatever type they are declared with.
URL_FIELDS = frozenset({"page_url", "referrer"})


@dataclass(frozen=True)
class Hit:
    tenant: str
    dataset: str
    query: Mapping[str, str]
    headers: Mapping[str, str]  # lower-case names
    now_epoch: int


def canonical_query(tenant: str, dataset: str, query: Mapping[str, str]) -> str:
    """What a signature covers: the path ids and every parameter but `sig`, sorted."""
    pairs = sorted((key, value) for key, value in query.items() if key != "sig")
    encoded = "&".join(f"{quote(key, safe='')}={quote(value, safe='')}" for key, value in pairs)
    return f"{tenant}/{dataset}?{encoded}"


def sign_query(signing_key: str, tenant: str, dataset: str, query: Mapping[str, str]) -> str:
    message = canonical_query(tenant, dataset, query).encode("utf-8")
    return hmac.new(signing_key.encode("utf-8"), message, hashlib.sha256).hexdigest()


def signature_valid(settings: Settings, target: Target, hit: Hit) -> bool:
    signature = hit.query.get("sig")
    if not signature:
        return False
    expires = hit.query.get("exp")
    if expires is not None and ascii_int(expires, hit.now_epoch, LARGEST) is None:
        return False
    presented = signature.lower().encode("utf-8", "surrogatepass")
    master, tenant = settings.master_key.get_secret_value(), target.tenant
    # The current key, and a rotated-out one until its grace ends (hit.now_epoch is the injectable clock's).
    for version in tenant.signing_key_versions(datetime.fromtimestamp(hit.now_epoch, UTC)):
        key = signing_key_text(master, tenant.id, tenant.generation, version)
        expected = sign_query(key, hit.tenant, hit.dataset, hit.query)
        # As bytes: compare_digest refuses str with non-ASCII characters, and a forged signature may have them.
        if hmac.compare_digest(expected.encode(), presented):
            return True
    return False


def origin_allowed(dataset: DatasetDoc, hit: Hit) -> bool:
    """An unsigned hit counts only when the visitor's browser says it comes from one of the dataset's sites.

    Only the browser's `Origin` or `Referer` can say so: a page on any other site cannot make a visitor's
    browser forge them, while `page_url` is whatever that page put in the query. So one of the two headers
    is required, and every origin seen, `page_url` included, must be allowed. A hit with neither (a mail
    open, a page that sends no referrer) is judged by its signature instead."""
    from_browser = [value for value in (hit.headers.get("origin"), hit.headers.get("referer")) if value]
    if not from_browser:
        return False
    claimed = [value for value in (hit.query.get("page_url"),) if value]
    return all(origin_of_url(value) in dataset.allowed_origins for value in from_browser + claimed)


def hit_values(settings: Settings, dataset: DatasetDoc, hit: Hit) -> dict[str, str] | None:
    """Values for the declared fields: from query parameters of the same name (an event's properties from its
    `p.` parameters), and from the request for what the request itself carries (the client address, the user
    agent, the page). None for an event the dataset does not declare."""
    values = event_values(dataset, {key: value for key, value in hit.query.items() if key not in RESERVED_PARAMS})
    if values is None:
        return None
    for spec in dataset.fields:
        if spec.type == "ip":
            # Always the real client address, never a query value, so a page cannot plant one.
            address = client_ip(hit.headers.get("x-forwarded-for"), settings.trusted_proxies)
            values.pop(spec.name, None)
            if address:
                values[spec.name] = address
        elif spec.name == "user_agent":
            values[spec.name] = hit.headers.get("user-agent", "")
        elif spec.name == "page_url" and "page_url" not in values and hit.headers.get("referer"):
            values["page_url"] = hit.headers["referer"]
    if not dataset.keep_url_query:
        cut_url_queries(dataset, values)
    return values


def cut_url_queries(dataset: DatasetDoc, values: dict[str, str]) -> None:
    """Every URL value loses its query and fragment: the page's own, the referrer's, any declared URL field's."""
    for spec in dataset.fields:
        if (spec.type == "url" or spec.name in URL_FIELDS) and isinstance(values.get(spec.name), str):
            values[spec.name] = without_query(values[spec.name])


def not_recorded(reason: str) -> bool:
    """Why a hit was not stored, as a code with no value in it: at DEBUG, so a developer can see it
    (`make run DEBUG=1`) and production logs stay quiet."""
    log.debug("pixel hit not recorded: %s", reason)
    return False


def record_hit(store: CaptureStore, settings: Settings, hit: Hit) -> bool:
    """Record one hit if every rule allows it; never raises for anything the request did."""
    if (refused := refused_as_sent(hit)) is not None:
        return not_recorded(refused)
    try:
        target = store.resolve(hit.tenant, hit.dataset, "pixel")
    except PackCloudError as error:
        return not_recorded(unresolved(error))
    values = values_to_record(settings, target, hit)
    if isinstance(values, str):
        return not_recorded(values)
    try:
        store.capture(target, values, lenient=True)
    except PackCloudError as error:
        return not_recorded(uncaptured(error))
    return recorded()


async def record_hit_async(store: CaptureStore, settings: Settings, hit: Hit) -> bool:
    """`record_hit` for an async function: the same rules, in the same order; the registry look-up and the
    write awaited (see `CaptureStore.resolve_async` and `capture_async`)."""
    if (refused := refused_as_sent(hit)) is not None:
        return not_recorded(refused)
    try:
        target = await store.resolve_async(hit.tenant, hit.dataset, "pixel")
    except PackCloudError as error:
        return not_recorded(unresolved(error))
    values = values_to_record(settings, target, hit)
    if isinstance(values, str):
        return not_recorded(values)
    try:
        await store.capture_async(target, values, lenient=True)
    except PackCloudError as error:
        return not_recorded(uncaptured(error))
    return recorded()


def refused_as_sent(hit: Hit) -> str | None:
    """The checks needing nothing but the request: why the hit is not recorded, or None."""
    if not (is_valid_id(hit.tenant) and is_valid_id(hit.dataset)):
        return "invalid_id"
    if tracking_refused(hit.headers):
        return "tracking_refused"
    if is_bot(hit.headers.get("user-agent")):
        return "bot"
    return None


def unresolved(error: PackCloudError) -> str:
    """An unknown dataset is quietly not recorded; storage trouble (5xx) goes to the caller's 503."""
    if error.status >= 500:
        raise error
    return "unknown_dataset"


def values_to_record(settings: Settings, target: Target, hit: Hit) -> dict[str, str] | str:
    """The checks against the dataset: the values to record, or why the hit is not recorded."""
    signed = signature_valid(settings, target, hit)
    if not signed and target.dataset.require_signature:
        return "signature_required"
    if not signed and not origin_allowed(target.dataset, hit):
        return "origin_not_allowed"
    values = hit_values(settings, target.dataset, hit)
    return "undeclared_event" if values is None else values


def uncaptured(error: PackCloudError) -> str:
    """Values the declaration refuses are quietly not recorded; storage trouble (5xx) goes to the caller's 503."""
    if error.status >= 500:
        raise error
    return "invalid_values"


def recorded() -> bool:
    log.debug("pixel hit: recorded")
    return True


def render_snippet(dataset: DatasetDoc | None, endpoint: str) -> str:
    """The embeddable script, configured for one dataset; an unknown dataset gets a script that does nothing."""
    config: dict[str, object] = {"enabled": False}
    if dataset is not None and dataset.capability == "pixel" and not dataset.require_signature:
        sends = [name for name in SNIPPET_FIELDS if name in dataset.field_names]
        config = {
            "enabled": True,
            "endpoint": endpoint,
            "send": sends,
            "visitorDays": dataset.retention_days,
            "keepUrlQuery": dataset.keep_url_query,
            "events": [event.name for event in dataset.events],
            "notice": notice_url(endpoint),
        }
    return render_script(SNIPPET, config)


def notice_url(endpoint: str) -> str:
    """The dataset's privacy notice (GET /api/notice/{tenant}/{dataset}), next to its pixel endpoint."""
    base, _, ids = endpoint.rpartition("/px/")
    return f"{base}/notice/{ids}"
