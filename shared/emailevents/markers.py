"""Deduplication of SendGrid events: one marker per `sg_event_id` in the state container,
`{tenant}/datasets/{dataset}/sgev/<keyed hash>.json`.

SendGrid delivers at least once: a batch is sent again after any answer but a 2xx, and an event can come twice
in different batches. A marker is claimed (created only if absent) before its record is written and holds the
record's id, never a value from the event; it expires with the record (the dataset's retention) and carries the
record's subject tag, so an export shows it and an erasure removes it. A record that could not be written
releases its marker, so SendGrid's retry stores it then.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import AzureError, ResourceExistsError

from shared.capture.personal_state import EMAIL_EVENT_MARKER
from shared.capture.store import COMMIT_DEADLINE, CaptureStore, Target
from shared.core.errors import StorageUnavailable
from shared.core.keys import derive_key
from shared.storage.blobs import JSON_CONTENT, STATE, Storage, index_tags, storage_errors

CLAIM_ROUNDS = 3


class EventMarkers:
    def __init__(self, storage: Storage, capture: CaptureStore, master_key: str) -> None:
        self._storage = storage
        self._capture = capture
        self._master = master_key

    def name(self, target: Target, event_id: str) -> str:
        key = derive_key(self._master, "email-event", target.tenant.id)
        digest = hmac.new(key, event_id.encode(), hashlib.sha256).hexdigest()[:40]
        return f"{EMAIL_EVENT_MARKER.prefix(target.tenant.id, target.dataset.id)}{digest}.json"

    def claim(self, target: Target, event_id: str, record_id: str, subject: str | None, now: datetime) -> str | None:
        """None when the event is new and now claimed for `record_id`; else the record id stored for it earlier."""
        container = self._storage.container(STATE)
        name = self.name(target, event_id)
        body = json.dumps({"record": record_id, "at": now.isoformat()}).encode()
        tags = index_tags(target.tenant.id, target.dataset.id, expires=target.dataset.expires_at(now), subject=subject)
        for _ in range(CLAIM_ROUNDS):
            with storage_errors():
                try:
                    container.upload_blob(name, body, overwrite=False, tags=tags, content_settings=JSON_CONTENT)
                    return None
                except ResourceExistsError:
                    pass
            earlier, _ = self._storage.read_json(STATE, name)
            if earlier is None:  # released meanwhile: claim again
                continue
            record = str(earlier.get("record", ""))
            if self._capture.exists(target.tenant.id, target.dataset.id, record):
                return record
            if now - _at(earlier) <= 2 * COMMIT_DEADLINE:
                raise StorageUnavailable("the same event is being stored, retry later", retry_after=2)
            # Older than any record takes to commit, and its record is gone: stored, then delivered (deleted on
            # acknowledgement) or erased. (Or never stored, when both its write and the release failed.)
            return record
        raise StorageUnavailable("the event's marker keeps changing, retry later", retry_after=1)

    def release(self, target: Target, event_id: str) -> None:
        """Best effort: the failure that calls this is what the caller reports."""
        with contextlib.suppress(AzureError):
            self._storage.container(STATE).delete_blob(self.name(target, event_id))


def _at(earlier: dict[str, Any]) -> datetime:
    try:
        return datetime.fromisoformat(str(earlier["at"]))
    except (KeyError, ValueError):
        return datetime.min.replace(tzinfo=UTC)
