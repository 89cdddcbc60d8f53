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
STATE_KINDS: tuple[StateKind, ...] = (LAST_SIGN_IN, SUBMISSION_MARKER)
SMS_OPT_OUT = StateKind(
    folder="optout",
    kind="sms_opt_out",
    capability="sms",
    holds="per phone number that texted STOP (or a synonym): the time and the keyword, named and tagged by a "
    "keyed hash of the number; deleted when the number texts START",
    kept="the dataset's retention after the last STOP; Dynamics 365, once delivered, keeps the opt-out for longer",
)
SMS_SEND_MARKER = StateKind(
    folder="smsidem",
    kind="sms_send_marker",
    capability="sms",
    holds="per message sent with an idempotency key: Twilio's message id, its status and the record id, never "
    "the number or the text; tagged with the keyed hash of the recipient's number",
    kept="24 hours, or the dataset's retention when shorter",
)
STATE_KINDS += (SMS_OPT_OUT, SMS_SEND_MARKER)


def kinds_of(capability: Capability) -> tuple[StateKind, ...]:
    return tuple(kind for kind in STATE_KINDS if kind.capability == capability)


def parse_state_name(tenant: str, name: str) -> tuple[str, str] | None:
    """The dataset and the kind of one of the tenant's dataset state blobs (an unknown folder is its own kind)."""
    parts = name.split("/")
    if len(parts) < 5 or parts[0] != tenant or parts[1] != "datasets":
        return None
    kind = next((k.kind for k in STATE_KINDS if k.folder == parts[3]), parts[3])
    return parts[2], kind
