"""PowerEmail delivery events: `POST /api/email/events/{tenant}/{dataset}` from SendGrid's Event Webhook.

The chain, each check before anything is stored:
1. the tenant is homed here and has this `emailevent` dataset (400 / 421 / 404);
2. the body's size (413), then its JSON syntax, bounded (400; read, not used, before the signature, so that a
   malformed body is a 400 as on every route);
3. the signature: both headers (401 naming the missing one), the timestamp within 5 minutes, the tenant's key,
   the ECDSA signature over timestamp + raw body (400 / 401; shared/emailevents/webhook.py);
4. the batch: a JSON array (400) of at most 1,000 events (413), every event usable and every declared field
   valid (422 naming `events[i].field`); nothing is stored unless every event is;
5. the events are marked (shared/emailevents/markers.py: those marked before are duplicates), then the new
   ones' records written, 16 at a time (only declared fields; the names of the others counted). If any failed,
   their marks are taken back and the answer is a 503: SendGrid sends the batch again, and the events already
   stored are not stored twice.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from shared.capture.store import CaptureStore, Target
from shared.core.clock import Clock
from shared.core.errors import Unprocessable, field_problems
from shared.core.ids import new_record_id
from shared.core.names import shown_names
from shared.core.settings import Settings
from shared.emailevents.events import Event, parse_batch, parse_body
from shared.emailevents.keys import KeyAdmin
from shared.emailevents.markers import EventMarkers
from shared.emailevents.webhook import VerificationKeys, signed_request, verify
from shared.registry.models import Record
from shared.storage.blobs import Storage
from shared.storage.email_keys import VerificationKeyStore

WRITERS = 16  # events stored at once


@dataclass(frozen=True)
class EventsAnswer:
    received: int
    stored: int
    duplicates: int
    skipped: int
    dropped_fields: list[str]

    def public(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "skipped": self.skipped,
            "dropped_fields": self.dropped_fields,
        }


class EmailEvents:
    def __init__(
        self,
        capture: CaptureStore,
        storage: Storage,
        key_store: VerificationKeyStore,
        settings: Settings,
        clock: Clock,
    ) -> None:
        self._capture = capture
        self._clock = clock
        self.keys = VerificationKeys(key_store)
        self.key_admin = KeyAdmin(key_store, self.keys)
        self._markers = EventMarkers(storage, settings.master_key.get_secret_value())
        self._pool = ThreadPoolExecutor(max_workers=WRITERS, thread_name_prefix="email-events")

    def receive(self, tenant: str, dataset: str, headers: Callable[[str], str | None], body: bytes) -> EventsAnswer:
        target = self._capture.resolve(tenant, dataset, "emailevent")
        # The body is read (bounded) before its signature is checked, so a malformed one is a 400 as on every
        # route; nothing of it is used, or stored, unless the signature holds.
        data = parse_body(body)
        verify(signed_request(headers, body), target.tenant, self.keys, self._clock)
        batch = parse_batch(data)
        prepared, dropped = self._prepare(target, batch.events)
        now = self._clock.now()
        marks = [self._markers.mark_of(target, event.event_id, event.occurred) for event, _ in prepared]
        # The first of the same event twice in one batch counts; the others are duplicates.
        first = {mark: index for index, mark in reversed(list(enumerate(marks)))}
        seen = self._markers.claim(target, first, now, self._pool)
        new = [(mark, prepared[index][1]) for mark, index in first.items() if mark not in seen]
        outcomes = list(self._pool.map(lambda item: self._store(target, item[1]), new))
        failed = [mark for (mark, _), outcome in zip(new, outcomes, strict=True) if outcome is not None]
        if failed:
            self._markers.release(target, failed, now)
            error = next(outcome for outcome in outcomes if outcome is not None)
            raise error  # a PackCloudError is storage trouble (503, SendGrid retries); anything else a bug
        return EventsAnswer(
            received=len(batch.events) + batch.skipped,
            stored=len(new),
            duplicates=len(batch.events) - len(new),
            skipped=batch.skipped,
            dropped_fields=list(shown_names(dropped)),
        )

    def _prepare(self, target: Target, events: tuple[Event, ...]) -> tuple[list[tuple[Event, Record]], set[str]]:
        """Every event's record, validated against the declaration: one 422 naming each event's problems."""
        records: list[tuple[Event, Record]] = []
        dropped: set[str] = set()
        problems: list[dict[str, str]] = []
        for index, event in enumerate(events):
            try:
                captured = self._capture.prepare(target, event.values)
            except Unprocessable as error:
                problems += [
                    {"field": f"events[{index}].{p['field']}", "reason": p["reason"]}
                    for p in error.extra.get("errors", [])
                ]
                continue
            records.append((event, captured.record))
            dropped.update(captured.dropped_fields)
        if problems:
            raise field_problems("invalid_events", "invalid events", problems, between=" ")
        return records, dropped

    def _store(self, target: Target, prepared: Record) -> BaseException | None:
        """None when stored; the error, when it could not be (reported for the batch by receive())."""
        try:
            # Stamped now, not when the batch was read: a record commits within COMMIT_DEADLINE of its id's time.
            now = self._clock.now()
            record = prepared.model_copy(
                update={"id": new_record_id(now), "captured_at": now, "expires_at": target.dataset.expires_at(now)}
            )
            self._capture.commit(target, record)
            return None
        except Exception as error:
            return error
