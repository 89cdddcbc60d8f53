"""Data-subject requests (GDPR art. 15, 17, 20): export and erase one person's data in this region.

Records and personal state are found through the keyed subject hash in their blob index tags, never by
reading every record. The subject of a request is normalised with each dataset's subject field, as capture
normalised it, so every spelling capture accepts finds the same records (`shared/capture/subjects.py`).

Audit entries carry a random request id and counts, never the subject nor its hash: a per-person value in
the audit would link a person's requests for as long as the audit is kept (400 days), far past the data.
The id is answered to the caller, so the controller can match the entry with its own log.

One call does bounded work, however many records someone planted under one subject value: an export hands
out at most PAGE_ITEMS records and state items, an erasure deletes at most that many, and each answers
`more` and a `next_cursor` to pass back for the rest.
"""

from __future__ import annotations

import base64
import json
import os
import re
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from shared.capture.personal_state import parse_state_name
from shared.capture.subjects import request_tags
from shared.core.errors import BadRequest
from shared.core.events import NO_EVENTS, SUBJECT_ERASED, SUBJECT_EXPORTED, Events
from shared.core.keys import derive_key
from shared.lifecycle.generations import Generations, drop_stale
from shared.registry.store import Registry
from shared.storage.audit import AuditLog
from shared.storage.blobs import RECORDS, STATE, Storage, TagPage, tag_query

# Records and state items one export answers, or one erasure deletes. Anyone can plant pixel records under one
# subject value, so the number a person has is no bound: the caller asks again with `next_cursor`.
PAGE_ITEMS = 500
# Tag-query requests one call may send: one per tag and container at least, and storage may answer a page
# with no name and a marker to go on from.
QUERY_PAGES = 32
# A cursor is its position encrypted and authenticated (AES-GCM, base64url) with a key of the tenant, bound
# to the action and the subject: anything else is refused before storage is touched, a position never comes
# from the caller, and the caller cannot read the blob names (a state blob's holds the subject's hash) in it.
CURSOR_PATTERN = re.compile(r"[A-Za-z0-9_-]{43,8000}")
NONCE_BYTES = 12


class SubjectRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    subject: str = Field(min_length=1, max_length=1024, description="the value of the datasets' subject field")
    cursor: str | None = Field(
        default=None, description="the next_cursor of the previous answer to the same request, to go on"
    )


class ErasureRequest(SubjectRequest):
    mailchimp_delete_permanent: StrictBool = Field(
        default=False,
        description="also delete the person (the subject, an e-mail address) permanently from every Mailchimp "
        "audience of the tenant's mailchimp datasets; done with the first page of the erasure",
    )


@dataclass(frozen=True)
class Position:
    """Where a request goes on: the index of a (tag, container) query, the storage marker of the page to read
    and, when the last call stopped inside that page, the last name it took."""

    query: int
    marker: str | None
    after: str | None


START = Position(0, None, None)


@dataclass(frozen=True)
class Found:
    """The names of at most one page of a subject's records and personal state, and where the rest starts."""

    records: list[str]
    state: list[str]
    rest: Position | None  # None: nothing is left


@dataclass(frozen=True)
class Erased:
    request_id: str
    records: int
    state: int
    next_cursor: str | None = None

    @property
    def more(self) -> bool:
        return self.next_cursor is not None


def new_request_id() -> str:
    return str(uuid.uuid4())


def bad_cursor() -> BadRequest:
    return BadRequest(
        "invalid_cursor",
        "cursor must be the next_cursor of the previous answer to the same request for the same subject; "
        "start again without a cursor",
    )


def associated(action: str, tags: list[str]) -> bytes:
    """What a cursor is bound to besides its tenant's key: the action and the subject's tags."""
    return "|".join((action, ",".join(tags))).encode()


def check_cursor_shape(cursor: str | None) -> None:
    """Before anything touches storage: a cursor is of the form this module writes, or it is refused."""
    if cursor is not None and not CURSOR_PATTERN.fullmatch(cursor):
        raise bad_cursor()


class SubjectRequests:
    def __init__(
        self,
        storage: Storage,
        registry: Registry,
        audit: AuditLog,
        master_key: str,
        *,
        page_items: int = PAGE_ITEMS,
        events: Events = NO_EVENTS,
    ) -> None:
        if not 1 <= page_items <= 5000:  # blobs one call reads or deletes: more would be no page
            raise ValueError("page_items must be from 1 to 5000")
        self._storage = storage
        self._registry = registry
        self._audit = audit
        self._master_key = master_key
        self._page_items = page_items
        self._events = events

    def export(self, tenant: str, subject: str, cursor: str | None = None) -> dict[str, Any]:
        check_cursor_shape(cursor)
        request_id = new_request_id()
        tags = self._tags(tenant, subject)
        start = self._open(tenant, "export", tags, cursor)
        found = self._find(tenant, tags, start)
        records = self._read_records(found.records)
        state = self._read_state(tenant, found.state)
        # Never a record of a deleted tenant or dataset generation (deleted instead): see lifecycle/generations.py.
        records = drop_stale(self._storage, self._audit, Generations.read(self._registry, tenant), tenant, records)
        datasets: dict[str, dict[str, Any]] = {}
        for record in records:
            self._dataset_entry(datasets, tenant, record["dataset"])["records"].append(record)
        for dataset_id, item in state:
            self._dataset_entry(datasets, tenant, dataset_id)["state"].append(item)
        self._audit.append(tenant, "export", request=request_id, records=len(records), state=len(state))
        next_cursor = self._seal(tenant, "export", tags, found.rest)
        self._told(tenant, SUBJECT_EXPORTED, request_id, tags, len(records), len(state), next_cursor)
        return {
            "tenant": tenant,
            "request_id": request_id,
            "record_count": len(records),
            "state_count": len(state),
            "datasets": datasets,
            "more": next_cursor is not None,
            "next_cursor": next_cursor,
        }

    def erase(self, tenant: str, subject: str, cursor: str | None = None) -> Erased:
        """Deletes one page; without a cursor it starts over, which finds only what is still there."""
        check_cursor_shape(cursor)
        request_id = new_request_id()
        tags = self._tags(tenant, subject)
        start = self._open(tenant, "erase", tags, cursor)
        found = self._find(tenant, tags, start)
        records, _ = self._storage.delete_each(RECORDS, found.records)
        state, _ = self._storage.delete_each(STATE, found.state)
        # Per dataset, for the DPO report's charts: the records this page found and deleted (or found gone).
        by_dataset = Counter(name.split("/")[1] for name in found.records)
        self._audit.append(
            tenant,
            "erasure",
            request=request_id,
            records=records,
            state=state,
            datasets=dict(sorted(by_dataset.items())),
        )
        next_cursor = self._seal(tenant, "erase", tags, found.rest)
        self._told(tenant, SUBJECT_ERASED, request_id, tags, records, state, next_cursor)
        return Erased(request_id, records, state, next_cursor)

    def _told(
        self, tenant: str, kind: str, request_id: str, tags: list[str], records: int, state: int, cursor: str | None
    ) -> None:
        """The DPO event of one call: counts and the subject's keyed hashes, never the subject itself. (The audit
        entry leaves the hashes out: it is kept 400 days; a failed event at most 30, shared/dpo/outbox.py.)"""
        facts = {"request_id": request_id, "subject_hashes": tags, "records": records, "state": state}
        self._events.emit(tenant, kind, {**facts, "more": cursor is not None})

    def _tags(self, tenant: str, subject: str) -> list[str]:
        """The subject's tags (one per distinct normalisation) in a fixed order: a position indexes them."""
        return sorted(request_tags(self._master_key, tenant, self._registry.list_datasets(tenant), subject))

    def _find(self, tenant: str, tags: list[str], start: Position) -> Found:
        """At most one page of names tagged with the subject's tags, from `start` on, without a scan.

        Each tag is queried in the records, then in the state container; one blob has one `sub` tag, so no
        name comes twice. A query page is read again by the next call when this one stops inside it, and
        only the names after the last one taken count: a query answers in name order, so names deleted or
        added meanwhile neither shift nor repeat what is handed out."""
        queries = [(container, tag_query(tenant=tenant, subject=tag)) for tag in tags for container in (RECORDS, STATE)]
        found: dict[str, list[str]] = {RECORDS: [], STATE: []}
        position: Position | None = start if queries else None
        for _ in range(QUERY_PAGES):
            room = self._page_items - len(found[RECORDS]) - len(found[STATE])
            if position is None or room == 0:
                break
            container, where = queries[position.query]
            page = self._storage.find_page_by_tags(container, where, marker=position.marker)
            fresh = [name for name in page.names if position.after is None or name > position.after]
            found[container].extend(fresh[:room])
            position = self._next(position, page, fresh, room, len(queries))
        return Found(found[RECORDS], found[STATE], position)

    @staticmethod
    def _next(position: Position, page: TagPage, fresh: list[str], room: int, queries: int) -> Position | None:
        if len(fresh) > room:
            return Position(position.query, position.marker, fresh[room - 1])
        if page.marker is not None:
            return Position(position.query, page.marker, None)
        return Position(position.query + 1, None, None) if position.query + 1 < queries else None

    def _seal(self, tenant: str, action: str, tags: list[str], position: Position | None) -> str | None:
        """The position, encrypted: its names and markers may name a state blob, and so the subject's hash."""
        if position is None:
            return None
        payload = json.dumps([position.query, position.marker, position.after]).encode()
        nonce = os.urandom(NONCE_BYTES)
        sealed = nonce + self._cipher(tenant).encrypt(nonce, payload, associated(action, tags))
        return base64.urlsafe_b64encode(sealed).rstrip(b"=").decode("ascii")

    def _open(self, tenant: str, action: str, tags: list[str], cursor: str | None) -> Position:
        """The position a cursor holds; refused unless this deployment sealed it for this very request."""
        if cursor is None:
            return START
        check_cursor_shape(cursor)
        try:
            sealed = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            payload = self._cipher(tenant).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], associated(action, tags))
            query, marker, after = json.loads(payload)
        except (InvalidTag, ValueError, TypeError):
            raise bad_cursor() from None
        texts = all(isinstance(value, str | None) for value in (marker, after))
        if type(query) is not int or not 0 <= query < 2 * len(tags) or not texts:
            raise bad_cursor()
        return Position(query, marker, after)

    def _cipher(self, tenant: str) -> AESGCM:
        return AESGCM(derive_key(self._master_key, "subject-request-cursor", tenant))

    def _dataset_entry(self, datasets: dict[str, dict[str, Any]], tenant: str, dataset_id: str) -> dict[str, Any]:
        if dataset_id not in datasets:
            doc = self._registry.get_dataset(tenant, dataset_id)
            datasets[dataset_id] = {
                "purpose": doc.purpose if doc else None,
                "legal_basis": doc.legal_basis if doc else None,
                "retention_days": doc.retention_days if doc else None,
                "controller": doc.controller.model_dump() if doc else None,
                "records": [],
                "state": [],
            }
        return datasets[dataset_id]

    def _read_records(self, names: list[str]) -> list[dict[str, Any]]:
        """The one place an export reads records: what is handed out is decided here."""
        return [record for record in self._storage.read_json_each(RECORDS, names) if record is not None]

    def _read_state(self, tenant: str, names: list[str]) -> list[tuple[str, dict[str, Any]]]:
        """Each personal state blob with its dataset and kind; one outside any dataset is still handed out."""
        held = []
        for name, body in zip(names, self._storage.read_json_each(STATE, names), strict=True):
            if body is not None:
                dataset_id, kind = parse_state_name(tenant, name) or ("-", "other")
                # A per-tenant kind (a tracked link) names its dataset in its content.
                dataset_id = dataset_id or str(body.get("dataset") or "-")
                held.append((dataset_id, {"kind": kind, "content": body}))
        return held
