"""A verified Event Webhook body as events: bounded, every event checked, mapped onto the declared field names.

SendGrid posts a JSON array of up to 1,000 event objects. An event's own keys map onto the fixed field set of
an `emailevent` dataset (`timestamp` -> `occurred_at`, `useragent` -> `user_agent`; the message's custom arg
`activity_id` arrives as a key of its own); `sg_event_id` is the deduplication key, never stored; every other
key (sg_message_id, smtp-id, category, tls, ...) is dropped and only its name is counted. Events of a type
the field set does not name (group_unsubscribe, say) are skipped and counted, so a batch is never refused for
them and SendGrid does not send it again and again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.core.bodies import check_size, parse_json
from shared.core.errors import BadRequest, PayloadTooLarge, field_problems

MAX_EVENTS = 1000
MAX_BODY_BYTES = 4 * 1024 * 1024  # 1,000 events of about 4 KB, far above what SendGrid sends
MAX_DEPTH = 8  # an array of objects holding small arrays (category) and objects (pool)
EVENT_TYPES = frozenset(
    {"processed", "delivered", "deferred", "bounce", "dropped", "open", "click", "spamreport", "unsubscribe"}
)
SENDGRID_NAMES = {"timestamp": "occurred_at", "useragent": "user_agent"}
EVENT_ID_KEY = "sg_event_id"
_EVENT_ID = re.compile(r"[A-Za-z0-9_.:=+/-]{1,128}")
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
MAX_TIMESTAMP = 253402300799  # 9999-12-31T23:59:59Z


@dataclass(frozen=True)
class Event:
    event_id: str
    occurred: datetime  # SendGrid's timestamp: the hour of the event's deduplication marker
    values: dict[str, object]  # declared names (mapped), and the provider's other keys, whose names are counted


@dataclass(frozen=True)
class Batch:
    events: tuple[Event, ...]
    skipped: int  # events of a type the field set does not name


def parse_body(body: bytes) -> Any:
    """The body's JSON value: bounded in size, depth and numbers, UTF-8; else a 413 or 400 naming the problem."""
    check_size(body, MAX_BODY_BYTES)
    return parse_json(body, MAX_DEPTH)


def parse_batch(data: Any) -> Batch:
    """The events of a verified body's JSON value, or a 4xx naming the problem (and the event's index), never a
    value."""
    if not isinstance(data, list):
        raise BadRequest("invalid_json", "the body must be a JSON array of events")
    if len(data) > MAX_EVENTS:
        raise PayloadTooLarge("too_many_events", f"a batch holds at most {MAX_EVENTS} events")
    events: list[Event] = []
    problems: list[dict[str, str]] = []
    skipped = 0
    for index, raw in enumerate(data):
        where = f"events[{index}]"
        if not isinstance(raw, dict):
            problems.append({"field": where, "reason": "must be a JSON object"})
            continue
        kind = raw.get("event")
        if not isinstance(kind, str):
            problems.append({"field": f"{where}.event", "reason": "must be text"})
            continue
        found = _problems(raw, where)
        if found:
            problems += found
        elif kind not in EVENT_TYPES:
            skipped += 1
        else:
            events.append(_event(raw))
    if problems:
        raise field_problems("invalid_events", "invalid events", problems, between=" ")
    return Batch(tuple(events), skipped)


def _problems(raw: dict[str, Any], where: str) -> list[dict[str, str]]:
    """What the record could not be made from; the declared types' own checks come later, at capture."""
    problems = []
    event_id = raw.get(EVENT_ID_KEY)
    if not isinstance(event_id, str) or not _EVENT_ID.fullmatch(event_id):
        problems.append(
            {"field": f"{where}.{EVENT_ID_KEY}", "reason": "must be SendGrid's event id (1 to 128 characters)"}
        )
    stamp = raw.get("timestamp")
    if isinstance(stamp, bool) or not isinstance(stamp, int) or not 0 <= stamp <= MAX_TIMESTAMP:
        problems.append({"field": f"{where}.timestamp", "reason": "must be Unix seconds (a whole number)"})
    activity = raw.get("activity_id")
    if activity is not None and (not isinstance(activity, str) or not _GUID.fullmatch(activity.strip())):
        problems.append({"field": f"{where}.activity_id", "reason": "must be a GUID (the e-mail activity's id)"})
    return problems


def _event(raw: dict[str, Any]) -> Event:
    values: dict[str, object] = {}
    for key, value in raw.items():
        if key == EVENT_ID_KEY:
            continue
        values[SENDGRID_NAMES.get(key, key)] = value
    occurred = datetime.fromtimestamp(raw["timestamp"], UTC)
    values["occurred_at"] = occurred.isoformat().replace("+00:00", "Z")
    if isinstance(values.get("activity_id"), str):
        values["activity_id"] = str(values["activity_id"]).strip().lower()
    if isinstance(values.get("url"), str):
        # Links often carry tokens and addresses in their query: like the pixel's URLs, kept without it.
        values["url"] = re.split(r"[?#]", str(values["url"]), maxsplit=1)[0]
    return Event(str(raw[EVENT_ID_KEY]), occurred, values)
