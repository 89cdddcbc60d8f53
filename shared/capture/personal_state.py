"""The kinds of personal state kept in the `state` container, besides the records.

Each kind lives under `{tenant}/datasets/{dataset}/{folder}/`, is tagged like the records (tenant, dataset,
expiry and, where it is about a data subject, `sub`) and expires with the purge. One list here, so that an
export hands each kind out by name and the record of processing tells the DPO what each holds.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.registry.models import Capability
from shared.registry.store import dataset_state_prefix


@dataclass(frozen=True)
class StateKind:
    folder: str  # the name segment under the dataset's state prefix
    kind: str  # the name an export and the report give it
    capability: Capability
    holds: str  # what one blob holds, for the DPO
    kept: str  # how long it is kept

    def prefix(self, tenant: str, dataset: str) -> str:
        return f"{dataset_state_prefix(tenant, dataset)}{self.folder}/"


LAST_SIGN_IN = StateKind(
    folder="last",
    kind="last_sign_in",
    capability="geologin",
    holds="per user: the time, country and coordinates of the last sign-in, named and tagged by a keyed hash "
    "of the user id",
    kept="the dataset's retention after the sign-in",
)
SUBMISSION_MARKER = StateKind(
    folder="idem",
    kind="submission_marker",
    capability="webform",
    holds="per submission sent with an idempotency key: its record id, the time, and the names (never the "
    "values) of undeclared fields; tagged with the record's subject hash",
    kept="24 hours, or the dataset's retention when shorter",
)
EMAIL_EVENT_MARKER = StateKind(
    folder="sgev",
    kind="email_event_marker",
    capability="emailevent",
    holds="per hour of event time and shard: keyed hashes of the ids SendGrid gave the events already stored "
    "(deduplication); no value of an event, no subject",
    kept="the dataset's retention after the shard's last write, as long as any record it names",
)
STATE_KINDS: tuple[StateKind, ...] = (LAST_SIGN_IN, SUBMISSION_MARKER, EMAIL_EVENT_MARKER)


def kinds_of(capability: Capability) -> tuple[StateKind, ...]:
    return tuple(kind for kind in STATE_KINDS if kind.capability == capability)


def parse_state_name(tenant: str, name: str) -> tuple[str, str] | None:
    """The dataset and the kind of one of the tenant's dataset state blobs (an unknown folder is its own kind)."""
    parts = name.split("/")
    if len(parts) < 5 or parts[0] != tenant or parts[1] != "datasets":
        return None
    kind = next((k.kind for k in STATE_KINDS if k.folder == parts[3]), parts[3])
    return parts[2], kind
