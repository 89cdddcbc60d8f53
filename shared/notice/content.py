"""What the public notice of a dataset says (GDPR art. 13), in plain words, built from its declaration alone.

The words are English; the purpose and the fields' descriptions are the controller's, in the language the reader
chose where the dataset's `notice` gives one. Nothing here reads storage: the dataset is the registry's.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from shared.core.settings import Region
from shared.notice.languages import ENGLISH
from shared.registry.models import Capability, DatasetDoc, FieldSpec, LegalBasis, Party

REGION_NAMES: dict[Region, str] = {
    "us": "the United States (Microsoft Azure, East US)",
    "br": "Brazil (Microsoft Azure, Brazil South)",
    "eu": "the European Union (Microsoft Azure, West Europe, in the Netherlands)",
    "ea": "Hong Kong (Microsoft Azure, East Asia)",
}

LEGAL_BASES: dict[LegalBasis, str] = {
    "consent": "your consent (GDPR article 6(1)(a))",
    "contract": "a contract with you, or steps you asked for before entering into one (GDPR article 6(1)(b))",
    "legal_obligation": "a legal obligation the controller must meet (GDPR article 6(1)(c))",
    "vital_interests": "protecting your vital interests or those of another person (GDPR article 6(1)(d))",
    "public_task": "a task carried out in the public interest or in official authority (GDPR article 6(1)(e))",
    "legitimate_interest": "the legitimate interests of the controller, weighed against yours (GDPR article 6(1)(f))",
}

# Every capability has its words: a dataset of one without them had no notice (a 500). Keyed by the Capability
# type, and tests/unit/test_notice.py checks that each of its values is here.
CAPABILITIES: dict[Capability, str] = {
    "pixel": "When you visit the controller's web pages or open its e-mails, a record of that visit or opening.",
    "webform": "What you enter in the controller's web form.",
    "geologin": "Your sign-ins to the controller's Microsoft Dynamics 365, to detect sign-ins from unusual places.",
    "sms": "The text messages you and the controller send each other, and whether each one was delivered.",
    "link": "When you follow a link the controller shared with you, a record of that visit.",
    "emailevent": (
        "What happens to the e-mails the controller sends you: whether each was delivered, bounced, opened or "
        "clicked, or marked as spam, and when."
    ),
    "mailchimp": (
        "Your e-mail address and the details the controller keeps in its newsletter list, passed on to its "
        "newsletter service (Mailchimp) when the controller adds or updates you there; nothing of it is kept here."
    ),
    "mailchimpevent": (
        "What happens in the controller's newsletter service (Mailchimp): when you subscribe, unsubscribe or change "
        "your address, and which of its newsletters you open or click, and when."
    ),
}

FIELD_TYPES: dict[str, str] = {
    "string": "text",
    "email": "an e-mail address",
    "phone": "a phone number",
    "url": "a web address",
    "integer": "a number",
    "number": "a number",
    "boolean": "a yes or no",
    "date": "a date",
    "datetime": "a date and time",
    "choice": "a choice from a list",
    "ip": "your internet (IP) address, shortened so that it points to a network, not to your device",
}


class Contact(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    email: str


class Item(BaseModel):
    """One declared field, as the reader should understand it."""

    model_config = ConfigDict(frozen=True)

    name: str
    kind: str
    personal: bool
    required: bool
    description: str | None


class Right(BaseModel):
    model_config = ConfigDict(frozen=True)

    right: str
    text: str


class Notice(BaseModel):
    """The notice of one dataset in one language; the HTML page and the JSON answer are both made from it."""

    model_config = ConfigDict(frozen=True)

    tenant: str
    dataset: str
    language: str
    languages: tuple[str, ...]
    what: str
    purpose: str
    collected: tuple[Item, ...]
    legal_basis: LegalBasis
    legal_basis_text: str
    retention_days: int
    retention_text: str
    region: Region
    region_text: str
    controller: Contact
    dpo: Contact | None
    rights: tuple[Right, ...]

    def public(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def build_notice(doc: DatasetDoc, region: Region, language: str) -> Notice:
    """The notice of `doc` in `language`: ENGLISH, or one of the tags of the dataset's `notice`."""
    wording = doc.notice.languages.get(language) if doc.notice is not None else None
    own_fields = wording.fields if wording is not None else {}
    controller = doc.controller.name
    return Notice(
        tenant=doc.tenant,
        dataset=doc.id,
        language=language,
        languages=(ENGLISH, *(tag for tag in (doc.notice.languages if doc.notice else {}) if tag.lower() != ENGLISH)),
        what=CAPABILITIES[doc.capability],
        purpose=wording.purpose if wording is not None else doc.purpose,
        collected=tuple(_item(spec, own_fields.get(spec.name)) for spec in doc.fields),
        legal_basis=doc.legal_basis,
        legal_basis_text=f"The legal basis is {LEGAL_BASES[doc.legal_basis]}.",
        retention_days=doc.retention_days,
        retention_text=(
            f"Each record is kept only until it has been delivered into {controller}'s CRM (Microsoft Dynamics 365), "
            f"and is deleted here once it is there; in any case it is deleted {_days(doc.retention_days)} after it "
            "was collected. What the controller keeps in its CRM is governed by its own privacy policy."
        ),
        region=region,
        region_text=f"Your data is stored and processed in {REGION_NAMES[region]}, and nowhere else by PackCloud.",
        controller=_contact(doc.controller),
        dpo=_contact(doc.dpo) if doc.dpo is not None else None,
        rights=_rights(doc.legal_basis, controller),
    )


def _item(spec: FieldSpec, own_description: str | None) -> Item:
    return Item(
        name=spec.name,
        kind=FIELD_TYPES[spec.type],
        personal=spec.personal,
        required=spec.required,
        description=own_description or spec.description,
    )


def _contact(party: Party) -> Contact:
    return Contact(name=party.name, email=str(party.email))


def _days(count: int) -> str:
    return "1 day" if count == 1 else f"{count} days"


def _rights(basis: LegalBasis, controller: str) -> tuple[Right, ...]:
    rights = [
        Right(right="access", text=f"You may ask {controller} for a copy of the data held about you (article 15)."),
        Right(right="rectification", text="You may have inaccurate data about you corrected (article 16)."),
        Right(right="erasure", text="You may ask for the data about you to be erased (article 17)."),
        Right(
            right="objection",
            text="You may object to this processing on grounds relating to your particular situation (article 21).",
        ),
    ]
    if basis == "consent":
        rights.append(
            Right(
                right="withdraw_consent",
                text=(
                    "You may withdraw your consent at any time, as easily as you gave it; what was done before "
                    "remains lawful (article 7(3))."
                ),
            )
        )
    if basis in ("consent", "contract"):
        rights.append(
            Right(right="portability", text="You may receive the data you provided in a portable form (article 20).")
        )
    rights.append(
        Right(
            right="complaint",
            text="You may lodge a complaint with a data protection supervisory authority (article 77).",
        )
    )
    return tuple(rights)
