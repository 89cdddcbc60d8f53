"""The kinds of personal state kept in the `state` container, besides the records.

Each kind lives under `{tenant}/datasets/{dataset}/{folder}/`, is tagged like the records (tenant, dataset,
expiry and, where it is about a data subject, `sub`) and expires with the purge. One list here, so that an
export hands each kind out by name and the record of processing tells the DPO what each holds.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.registry.models import Capability
from shared.registry.store import dataset_state_prefix, tenant_state_prefix


@dataclass(frozen=True)
class StateKind:
    folder: str  # the name segment under the dataset's state prefix
    kind: str  # the name an export and the report give it
    capability: Capability
    holds: str  # what one blob holds, for the DPO
    kept: str  # how long it is kept
    # Kept under `{tenant}/{folder}/` rather than under its dataset, for a kind looked up by tenant and id alone
    # (a tracked link's short URL names no dataset); its blobs still carry the dataset's `d` tag.
    per_tenant: bool = False

    def prefix(self, tenant: str, dataset: str) -> str:
        if self.per_tenant:
            return f"{tenant_state_prefix(tenant)}{self.folder}/"
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
TRACKED_LINK = StateKind(
    folder="links",
    kind="tracked_link",
    capability="link",
    holds="per tracked link: its target URL, its expiry and, for a link made for a contact, the contact id "
    "(then tagged with its keyed hash)",
    kept="until the link expires: the dataset's retention at most for a link made for a contact, 30 days at most "
    "for any other",
    per_tenant=True,
)
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
EMAIL_EVENT_MARKER = StateKind(
    folder="sgev",
    kind="email_event_marker",
    capability="emailevent",
    holds="per hour of event time and shard: keyed hashes of the ids SendGrid gave the events already stored "
    "(deduplication); no value of an event, no subject",
    kept="the dataset's retention after the shard's last write, as long as any record it names",
)
STATE_KINDS: tuple[StateKind, ...] = (LAST_SIGN_IN, SUBMISSION_MARKER, TRACKED_LINK, EMAIL_EVENT_MARKER)
STATE_KINDS += (SMS_OPT_OUT, SMS_SEND_MARKER)


def kinds_of(capability: Capability) -> tuple[StateKind, ...]:
    return tuple(kind for kind in STATE_KINDS if kind.capability == capability)


def parse_state_name(tenant: str, name: str) -> tuple[str, str] | None:
    """The dataset and the kind of one of the tenant's dataset state blobs (an unknown folder is its own kind).

    A per-tenant kind's name holds no dataset: "" stands for it, and the blob's own content names it."""
    parts = name.split("/")
    per_tenant = next((k for k in STATE_KINDS if k.per_tenant and len(parts) == 3 and parts[1] == k.folder), None)
    if per_tenant is not None and parts[0] == tenant:
        return "", per_tenant.kind
    if len(parts) < 5 or parts[0] != tenant or parts[1] != "datasets":
        return None
    kind = next((k.kind for k in STATE_KINDS if k.folder == parts[3]), parts[3])
    return parts[2], kind
