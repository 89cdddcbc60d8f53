"""The one way a data subject's identifier becomes its `sub` index tag.

A value is normalised by the field it is a value of (`FieldSpec.normalise`: its type, options and, for a phone,
its `default_region`), exactly as the capture store stores it (a phone `+47 22 33 44 55`, or `22 33 44 55` where
the field's default_region is NO, is stored, and tagged, as `+4722334455`), written as canonical
text, and hashed with the tenant's keyed hash (`shared/core/keys.py`). Capture's record tags, the per-person state
(geo-login last sign-ins, web-form submission markers) and data-subject requests all go through
`subject_tag`, so a request finds what capture stored whatever spelling of the value either was given.
"""

from __future__ import annotations

from collections.abc import Iterable

from shared.core.fieldtypes import InvalidValue, StoredValue
from shared.core.keys import subject_hash
from shared.registry.models import LINK_SUBJECT, DatasetDoc, FieldSpec

# A geo-login user, whatever the dataset declares: the last-sign-in state is kept per user id.
USER_ID = FieldSpec(name="user_id", type="string", required=True)
# An SMS correspondent, whatever the dataset declares: sms records and opt-outs are tagged by the other party's number.
SMS_PARTY = FieldSpec(name="phone", type="phone", required=True)
# A tracked link's contact, whatever the dataset declares: a link made for a contact is tagged with it.
CONTACT_ID = FieldSpec(name=LINK_SUBJECT, type="string", required=True, max_length=128)


def canonical_text(value: StoredValue) -> str:
    """One text per stored value: a number sent as JSON 2 (an int) and as text "2" (a float) is one subject."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, float):
        return repr(value)
    return str(value)


def subject_tag(master_key: str, tenant: str, field: FieldSpec, raw: object) -> str:
    """The `sub` tag of a value of `field`: normalised as capture stores it, then keyed-hashed.

    Raises InvalidValue when the value is not a valid value of the field (no record can hold it)."""
    return stored_subject_tag(master_key, tenant, field.normalise(raw))


def stored_subject_tag(master_key: str, tenant: str, stored: StoredValue) -> str:
    """The `sub` tag of a value as the capture store stores it (already normalised by its field): the same tag as
    `subject_tag` of any spelling of it, without validating it again (an e-mail address's validation is a
    twentieth of a form post's CPU)."""
    return subject_hash(master_key, tenant, canonical_text(stored))


def subject_field(dataset: DatasetDoc) -> FieldSpec | None:
    return dataset.field(dataset.subject_field) if dataset.subject_field else None


def identifying_fields(dataset: DatasetDoc) -> tuple[FieldSpec, ...]:
    """The fields whose values tag a dataset's records or personal state with a subject."""
    fields = [spec for spec in (subject_field(dataset),) if spec is not None]
    if dataset.capability == "geologin":
        fields.append(USER_ID)
    if dataset.capability == "sms":
        fields.append(SMS_PARTY)
    if dataset.capability == "link":
        fields.append(CONTACT_ID)
    return tuple(fields)


def request_tags(master_key: str, tenant: str, datasets: Iterable[DatasetDoc], raw: str) -> frozenset[str]:
    """Every distinct tag a data-subject request's value has in the tenant's datasets.

    The value is normalised with each dataset's own subject field; a dataset for which it is not a valid
    value is skipped, as no record of that dataset can hold it."""
    tags: set[str] = set()
    for dataset in datasets:
        for field in identifying_fields(dataset):
            try:
                tags.add(subject_tag(master_key, tenant, field, raw))
            except InvalidValue:
                continue
    return frozenset(tags)
