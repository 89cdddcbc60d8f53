"""Deduplication of SendGrid events on `sg_event_id`, in the state container, with as few requests as possible.

SendGrid delivers at least once: a batch is sent again after any answer but a 2xx, and an event can come again in
another batch. The markers are shards: `{tenant}/datasets/{dataset}/sgev/<hour of the event>/<shard>.json`, each
holding the keyed hashes (never the ids themselves, never a value of the event) of the events of that hour whose
hash falls in the shard. A batch reads and conditionally writes the shards its events fall in (a 1,000-event batch
of one hour: at most 64 of each), so an event costs about one storage request, its record, instead of two; a
duplicate has the same timestamp, so it is looked for in the same shard.

The order makes a retry safe: the shards are claimed first (an event already in one is a duplicate), then the
records written; an event whose record could not be written is taken out of its shard again, so the retry SendGrid
sends after the 503 stores it then. Should that removal fail too (storage down), the event stays marked and its
retry is counted as a duplicate: the one case where an event is lost, rather than ever stored twice.

A shard is tagged like the records (tenant, dataset, expiry: the dataset's retention after its last write, which
no record it names outlives) and is purged with them; it names no data subject (the hashes are of SendGrid's
random event ids), so it has no `sub` tag.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import random
import time
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceModifiedError, ResourceNotFoundError

from shared.capture.personal_state import EMAIL_EVENT_MARKER
from shared.capture.store import Target
from shared.core.errors import PackCloudError, StorageUnavailable
from shared.core.keys import derive_key
from shared.storage.blobs import JSON_CONTENT, STATE, Storage, index_tags, only_if_unchanged, storage_errors

SHARDS = 64
ATTEMPTS = 8  # conditional writes of one shard before a 503 (other batches writing the same shard meanwhile)
CONTENTION_WAIT_S = 0.05


@dataclass(frozen=True)
class Mark:
    shard: str  # the shard blob's name
    digest: str  # the keyed hash of the event id


class EventMarkers:
    def __init__(self, storage: Storage, master_key: str) -> None:
        self._storage = storage
        self._master = master_key

    def mark_of(self, target: Target, event_id: str, occurred: datetime) -> Mark:
        key = derive_key(self._master, "email-event", target.tenant.id)
        digest = hmac.new(key, event_id.encode(), hashlib.sha256).hexdigest()[:32]
        shard = int(digest[:4], 16) % SHARDS
        prefix = EMAIL_EVENT_MARKER.prefix(target.tenant.id, target.dataset.id)
        return Mark(f"{prefix}{occurred.strftime('%Y%m%d%H')}/{shard:02d}.json", digest)

    def claim(self, target: Target, marks: Iterable[Mark], now: datetime, pool: Executor) -> set[Mark]:
        """Mark every event; the marks that were there already (duplicates) are returned. If a shard could not be
        written, the marks this call made in the others are taken back before the error is raised: a mark
        without its record would make SendGrid's retry count the event as a duplicate."""
        by_shard: dict[str, set[str]] = defaultdict(set)
        for mark in marks:
            by_shard[mark.shard].add(mark.digest)
        outcomes = list(pool.map(lambda item: self._claim_shard(target, item[0], item[1], now), by_shard.items()))
        failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        if failures:
            made = [
                Mark(shard, digest)
                for (shard, digests), outcome in zip(by_shard.items(), outcomes, strict=True)
                if not isinstance(outcome, BaseException)
                for digest in digests - outcome
            ]
            self.release(target, made, now)
            raise failures[0]
        return {
            Mark(shard, digest)
            for shard, outcome in zip(by_shard, outcomes, strict=True)
            if not isinstance(outcome, BaseException)
            for digest in outcome
        }

    def release(self, target: Target, marks: Iterable[Mark], now: datetime) -> None:
        """Best effort: take these events out of their shards (their records were not written)."""
        by_shard: dict[str, set[str]] = defaultdict(set)
        for mark in marks:
            by_shard[mark.shard].add(mark.digest)
        for shard, digests in by_shard.items():
            with contextlib.suppress(AzureError, PackCloudError):
                self._update(target, shard, now, remove=digests)

    def _claim_shard(self, target: Target, shard: str, digests: set[str], now: datetime) -> set[str] | Exception:
        try:
            return self._update(target, shard, now, add=digests)
        except Exception as error:  # reported by claim(), once the other shards are settled
            return error

    def _update(
        self,
        target: Target,
        shard: str,
        now: datetime,
        add: frozenset[str] | set[str] = frozenset(),
        remove: frozenset[str] | set[str] = frozenset(),
    ) -> set[str]:
        """Add and remove hashes in one conditional write; the added ones that were there already are returned."""
        client = self._storage.container(STATE).get_blob_client(shard)
        tags = index_tags(target.tenant.id, target.dataset.id, expires=target.dataset.expires_at(now))
        for _ in range(ATTEMPTS):
            body, etag = self._storage.read_json(STATE, shard)
            held = set((body or {}).get("events", ()))
            present = set(add & held)
            if not add - held and not remove & held:
                return present
            kept = sorted((held | add) - remove)
            data = json.dumps({"events": kept}, separators=(",", ":")).encode()
            with storage_errors():
                try:
                    client.upload_blob(data, tags=tags, content_settings=JSON_CONTENT, **only_if_unchanged(etag))
                    return present
                except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
                    pass
            # Another batch wrote the shard meanwhile: read it again, after a short random wait, so that batches
            # arriving together do not keep colliding.
            time.sleep(random.uniform(0, CONTENTION_WAIT_S))
        raise StorageUnavailable("the event markers keep changing, retry later", retry_after=1)
