"""Mailchimp's webhook: its events become records of a `mailchimpevent` dataset.

Mailchimp signs nothing, so the webhook URL carries a per-dataset random token, shown once when it is made or
rotated. Only its SHA-256 is kept (`registry/mailchimp/webhooks/<tenant>/<dataset>.json`, with the dataset's
generation, so a dataset created again has none), and a request's token is compared with it in constant time.
Mailchimp checks a webhook URL with a GET when it is set up; that GET is answered 200 when the token is right.

Events arrive form-encoded (`type=subscribe&fired_at=...&data[email]=...`). What the dataset declares of
`event`, `occurred_at`, `email`, `list_id`, `campaign_id`, `reason`, `new_email` is kept; everything else
(merge fields, addresses, ids) is dropped and only counted.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
import secrets
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from azure.core.exceptions import ResourceNotFoundError
from pydantic import BaseModel, ConfigDict

from shared.capture.store import CaptureStore, Target
from shared.core.bodies import check_size
from shared.core.clock import Clock
from shared.core.errors import BadRequest, NotFound, Unprocessable, UnsupportedMediaType
from shared.registry.models import DatasetDoc
from shared.storage.audit import AuditLog
from shared.storage.blobs import JSON_CONTENT, REGISTRY, Storage, storage_errors

TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}")
EVENT_TYPES = frozenset({"subscribe", "unsubscribe", "profile", "upemail", "cleaned", "campaign"})
# A Mailchimp event has a few dozen keys (merge fields among them); more is not an event.
MAX_KEYS = 200
FORM = "application/x-www-form-urlencoded"


def webhook_blob(tenant: str, dataset: str) -> str:
    return f"mailchimp/webhooks/{tenant}/{dataset}.json"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class WebhookToken(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    token_sha256: str
    dataset_generation: str = ""
    created_at: datetime


class WebhookTokens:
    def __init__(self, storage: Storage, audit: AuditLog, clock: Clock) -> None:
        self._storage = storage
        self._audit = audit
        self._clock = clock

    def rotate(self, dataset: DatasetDoc) -> str:
        """A new token (the old one stops at once); the only time it is shown."""
        token = secrets.token_urlsafe(32)
        doc = WebhookToken(
            token_sha256=_digest(token), dataset_generation=dataset.generation, created_at=self._clock.now()
        )
        with storage_errors():
            self._storage.container(REGISTRY).upload_blob(
                webhook_blob(dataset.tenant, dataset.id),
                doc.model_dump_json().encode(),
                overwrite=True,
                content_settings=JSON_CONTENT,
            )
        self._audit.append(dataset.tenant, "mailchimp_webhook_token", dataset=dataset.id, change="rotated")
        return token

    def check(self, dataset: DatasetDoc, token: str) -> None:
        """404 for a wrong token, as for an unknown dataset: the URL either is the webhook or is nothing."""
        body, _ = self._storage.read_json(REGISTRY, webhook_blob(dataset.tenant, dataset.id))
        stored = WebhookToken.model_validate(body) if body is not None else None
        given = _digest(token) if TOKEN_PATTERN.fullmatch(token) else "0" * 64
        expected = stored.token_sha256 if stored is not None else "1" * 64
        same = hmac.compare_digest(given, expected)
        if not same or stored is None or stored.dataset_generation != dataset.generation:
            raise NotFound("unknown_webhook", "no Mailchimp webhook at this URL")

    def forget(self, tenant: str, dataset: str) -> None:
        with contextlib.suppress(ResourceNotFoundError), storage_errors(ResourceNotFoundError):
            self._storage.container(REGISTRY).delete_blob(webhook_blob(tenant, dataset))


def parse_event(body: bytes, content_type: str | None, max_bytes: int) -> dict[str, str]:
    """The form's keys and values, bounded; 415 for another content type, 400 for what is not an event."""
    check_size(body, max_bytes)
    if (content_type or "").split(";")[0].strip().lower() != FORM:
        raise UnsupportedMediaType("unsupported_media_type", f"Mailchimp's webhook posts {FORM}")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_KEYS)
    except UnicodeDecodeError:
        raise BadRequest("invalid_encoding", "the event must be encoded as UTF-8") from None
    except ValueError:
        raise BadRequest("too_many_fields", f"an event has at most {MAX_KEYS} keys") from None
    return dict(pairs)


def event_values(form: dict[str, str]) -> dict[str, Any]:
    """The record's candidate values under their field names; every other key stays, so that it is counted
    as dropped."""
    kind = form.get("type", "")
    if kind not in EVENT_TYPES:
        raise Unprocessable(
            "invalid_event",
            f"type must be one of {', '.join(sorted(EVENT_TYPES))}",
            errors=[{"field": "type", "reason": "is not a Mailchimp webhook event type"}],
        )
    values: dict[str, Any] = {key: value for key, value in form.items() if key not in ("type", "fired_at")}
    values["event"] = kind
    values["occurred_at"] = _fired_at(form.get("fired_at", ""))
    mapped = {"data[list_id]": "list_id", "data[reason]": "reason", "data[new_email]": "new_email"}
    mapped["data[old_email]" if kind == "upemail" else "data[email]"] = "email"
    if kind == "campaign":
        mapped["data[id]"] = "campaign_id"
    for key, name in mapped.items():
        if key in values:
            values[name] = values.pop(key)
    return values


def _fired_at(text: str) -> str:
    """Mailchimp's `fired_at` is `YYYY-MM-DD HH:MM:SS` in UTC."""
    try:
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).isoformat()
    except ValueError:
        raise Unprocessable(
            "invalid_event",
            "fired_at must be Mailchimp's YYYY-MM-DD HH:MM:SS",
            errors=[{"field": "fired_at", "reason": "is not YYYY-MM-DD HH:MM:SS"}],
        ) from None


def receive(store: CaptureStore, target: Target, form: dict[str, str]) -> str:
    """Store one event as a record; its id."""
    return store.capture(target, event_values(form)).record.id
