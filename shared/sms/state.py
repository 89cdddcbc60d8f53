"""The personal state of SMS datasets: opt-outs and the markers of idempotent sends (capture/personal_state.py).

Both are named and tagged by the keyed hash of the other party's number (never the number), carry the dataset's
tags and an expiry, so the purge removes them, an export shows them and an erasure deletes them with the records.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
from datetime import datetime, timedelta
from typing import Any

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError

from shared.capture.personal_state import SMS_OPT_OUT, SMS_SEND_MARKER
from shared.capture.store import Target
from shared.core.keys import derive_key
from shared.storage.blobs import JSON_CONTENT, STATE, Storage, index_tags, storage_errors

MARKER_TTL = timedelta(hours=24)


class OptOuts:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    @staticmethod
    def name(target: Target, party: str) -> str:
        return f"{SMS_OPT_OUT.prefix(target.tenant.id, target.dataset.id)}{party}.json"

    def opted_out(self, target: Target, party: str) -> bool:
        body, _ = self._storage.read_json(STATE, self.name(target, party))
        # One kept for an earlier generation of the dataset is not this dataset's.
        return body is not None and body.get("generation", "") == target.dataset.generation

    def opt_out(self, target: Target, party: str, at: datetime, keyword: str) -> None:
        body = {"generation": target.dataset.generation, "at": at.isoformat(), "keyword": keyword}
        tags = index_tags(target.tenant.id, target.dataset.id, expires=target.dataset.expires_at(at), subject=party)
        with storage_errors():
            self._storage.container(STATE).upload_blob(
                self.name(target, party),
                json.dumps(body).encode(),
                overwrite=True,
                tags=tags,
                content_settings=JSON_CONTENT,
            )

    def opt_in(self, target: Target, party: str) -> None:
        with storage_errors(), contextlib.suppress(ResourceNotFoundError):
            self._storage.container(STATE).delete_blob(self.name(target, party))


class SendMarkers:
    """`{tenant}/datasets/{dataset}/smsidem/<keyed hash of the key>.json`: claimed before Twilio is asked, so a
    retry with the same Idempotency-Key never sends again; it holds Twilio's message id and status once known."""

    def __init__(self, storage: Storage, master_key: str) -> None:
        self._storage = storage
        self._master = master_key

    def _name(self, target: Target, key: str) -> str:
        digest = hmac.new(derive_key(self._master, "sms-idempotency", target.tenant.id), key.encode(), hashlib.sha256)
        return f"{SMS_SEND_MARKER.prefix(target.tenant.id, target.dataset.id)}{digest.hexdigest()[:40]}.json"

    def claim(self, target: Target, key: str, party: str, now: datetime) -> dict[str, Any] | None:
        """None when this send is new and now claimed; else what the earlier one left (its answer, or `sending`)."""
        body = {"state": "sending", "at": now.isoformat()}
        with storage_errors():
            try:
                self._storage.container(STATE).upload_blob(
                    self._name(target, key),
                    json.dumps(body).encode(),
                    overwrite=False,
                    tags=self._tags(target, party, now),
                    content_settings=JSON_CONTENT,
                )
                return None
            except ResourceExistsError:
                pass
        earlier, _ = self._storage.read_json(STATE, self._name(target, key))
        return earlier or {"state": "sending", "at": now.isoformat()}

    def done(self, target: Target, key: str, party: str, now: datetime, answer: dict[str, Any]) -> None:
        self._write(target, key, party, now, {"state": "sent", "at": now.isoformat(), "answer": answer})

    def _write(self, target: Target, key: str, party: str, now: datetime, body: dict[str, Any]) -> None:
        with storage_errors():
            self._storage.container(STATE).upload_blob(
                self._name(target, key),
                json.dumps(body).encode(),
                overwrite=True,
                tags=self._tags(target, party, now),
                content_settings=JSON_CONTENT,
            )

    def unknown(self, target: Target, key: str, party: str, now: datetime) -> None:
        """Twilio did not answer: whether it took the message is unknown, so the key never sends again."""
        self._write(target, key, party, now, {"state": "unknown", "at": now.isoformat()})

    def release(self, target: Target, key: str) -> None:
        """Twilio did not take the message: a retry may send it."""
        with contextlib.suppress(AzureError):
            self._storage.container(STATE).delete_blob(self._name(target, key))

    @staticmethod
    def _tags(target: Target, party: str, now: datetime) -> dict[str, str]:
        expires = min(now + MARKER_TTL, target.dataset.expires_at(now))
        return index_tags(target.tenant.id, target.dataset.id, expires=expires, subject=party)
