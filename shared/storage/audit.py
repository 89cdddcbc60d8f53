"""The audit trail: what was processed, delivered, purged, exported and erased; never personal data.

Entries are JSON lines appended to one append blob per tenant per day (`audit/{tenant}/{yyyy-mm-dd}.jsonl`;
deployment-wide entries such as purge runs under `_system`). Each entry carries the hash of the previous one,
across days, so an edited or removed entry breaks the chain; `python -m shared.audit verify TENANT`
(shared/cli.py) checks it.
Appends are made atomic with the append-position condition: two instances never interleave a chain.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

from shared.core.clock import Clock
from shared.core.errors import StorageUnavailable
from shared.storage.blobs import AUDIT, Storage, storage_errors

SYSTEM = "_system"  # not a valid tenant id, so it can never clash with one
GENESIS = "0" * 64
APPEND_ATTEMPTS = 8


def day_blob(scope: str, when: datetime) -> str:
    return f"{scope}/{when:%Y-%m-%d}.jsonl"


def entry_hash(prev: str, body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256((prev + canonical).encode("utf-8")).hexdigest()


class AuditLog:
    def __init__(self, storage: Storage, clock: Clock) -> None:
        self._storage = storage
        self._clock = clock

    def append(self, scope: str, kind: str, **facts: Any) -> dict[str, Any]:
        """Append one entry to the scope's chain (a tenant id, or SYSTEM); facts must hold no personal data."""
        now = self._clock.now()
        name = day_blob(scope, now)
        client = self._storage.container(AUDIT).get_blob_client(name)
        for attempt in range(APPEND_ATTEMPTS):
            with storage_errors():
                try:
                    length, prev = self._tail(scope, name, client)
                    body = {"at": now.isoformat(), "kind": kind, **facts, "prev": prev}
                    entry = {**body, "hash": entry_hash(prev, body)}
                    line = (json.dumps(entry, sort_keys=True, separators=(",", ":"), default=str) + "\n").encode()
                    client.append_block(line, appendpos_condition=length)
                    return entry
                except HttpResponseError as error:
                    # 412: another instance appended first; read the new tail and chain after it.
                    if error.status_code != 412 or attempt == APPEND_ATTEMPTS - 1:
                        raise
            time.sleep(random.uniform(0, 0.05 * (attempt + 1)))
        raise StorageUnavailable()

    def entries(self, scope: str, since: datetime | None = None) -> list[dict[str, Any]]:
        """Every entry of a scope in order (optionally from a day on)."""
        result: list[dict[str, Any]] = []
        for name in self._day_names(scope):
            if since is not None and name < day_blob(scope, since):
                continue
            result.extend(_lines(self._storage.container(AUDIT).download_blob(name).readall()))
        return result

    def verify(self, scope: str) -> VerifyResult:
        """Recompute the chain; the first entry kept is trusted (older days may have aged out)."""
        container = self._storage.container(AUDIT)
        return _check_chain((name, _lines(container.download_blob(name).readall())) for name in self._day_names(scope))

    def window(self, scope: str, since: datetime) -> tuple[list[dict[str, Any]], VerifyResult]:
        """The entries from a day on, and whether their chain verifies from its first entry (trusted, as in
        `verify`): one listing and one read per day, for a report that counts and checks the same entries."""
        container = self._storage.container(AUDIT)
        first = day_blob(scope, since)
        days = [
            (name, _lines(container.download_blob(name).readall())) for name in self._day_names(scope) if name >= first
        ]
        return [entry for _, lines in days for entry in lines], _check_chain(days)

    def delete_older_than(self, scope: str, days: int) -> int:
        cutoff = day_blob(scope, self._clock.now() - timedelta(days=days))
        old = [name for name in self._day_names(scope) if name < cutoff]
        return self._storage.delete_names(AUDIT, old)

    def scopes(self) -> list[str]:
        container = self._storage.container(AUDIT)
        return [prefix.name.rstrip("/") for prefix in container.walk_blobs(delimiter="/")]

    def _day_names(self, scope: str) -> list[str]:
        container = self._storage.container(AUDIT)
        return sorted(blob.name for blob in container.list_blobs(name_starts_with=f"{scope}/"))

    def _tail(self, scope: str, name: str, client: Any) -> tuple[int, str]:
        """The length of today's blob and the hash to chain after (yesterday's last entry on a new day)."""
        try:
            data = client.download_blob().readall()
        except ResourceNotFoundError:
            with contextlib.suppress(ResourceExistsError):
                client.create_append_blob(match_condition=MatchConditions.IfMissing)
            data = client.download_blob().readall()
        lines = _lines(data)
        if lines:
            return len(data), str(lines[-1]["hash"])
        earlier = [day for day in self._day_names(scope) if day < name]
        if earlier:
            previous = _lines(self._storage.container(AUDIT).download_blob(earlier[-1]).readall())
            if previous:
                return len(data), str(previous[-1]["hash"])
        return len(data), GENESIS


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    entries: int
    detail: str


def _check_chain(days: Iterable[tuple[str, list[dict[str, Any]]]]) -> VerifyResult:
    prev: str | None = None
    count = 0
    for name, lines in days:
        for number, entry in enumerate(lines):
            body = {key: value for key, value in entry.items() if key != "hash"}
            if prev is not None and entry.get("prev") != prev:
                return VerifyResult(False, count, f"{name} entry {number + 1}: previous entry missing or changed")
            if entry_hash(str(entry.get("prev")), body) != entry.get("hash"):
                return VerifyResult(False, count, f"{name} entry {number + 1}: entry was altered")
            prev = entry["hash"]
            count += 1
    return VerifyResult(True, count, "chain intact")


def _lines(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]
