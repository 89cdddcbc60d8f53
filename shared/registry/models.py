"""Documents at the boundaries: tenants, datasets (purposes of processing) and captured records."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StrictBool,
    StrictInt,
    ValidationInfo,
    field_validator,
    model_validator,
)

from shared.core.fieldtypes import LENGTH_TYPES, PHONE_REGIONS, FieldType, StoredValue, normalise
from shared.core.keys import GENERATION_PATTERN
from shared.core.settings import Region
from shared.core.urls import is_loopback, parse_web_url
from shared.registry.delivery_mapping import DeliveryMapping, check_mapping

MAX_RETENTION_DAYS = 30
# A retired signing key counts at most this long: no record a link made before the rotation outlives it.
MAX_SIGNING_GRACE_DAYS = MAX_RETENTION_DAYS
# Retired signing keys still in their grace that a tenant keeps; more rotations end the oldest grace early.
MAX_RETIRED_SIGNING_KEYS = 10

Capability = Literal["pixel", "webform", "geologin", "sms", "link", "emailevent", "mailchimp", "mailchimpevent"]
LegalBasis = Literal["consent", "contract", "legal_obligation", "vital_interests", "public_task", "legitimate_interest"]

FIELD_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"


def _origin(value: str) -> str:
    """An origin is scheme://host[:port] with nothing after it; http only for local development hosts. The host
    is read as a browser reads it, and anything a browser could read otherwise is refused (shared/core/urls.py)."""
    try:
        url = parse_web_url(value.strip())
    except ValueError:
        raise ValueError("is not an origin (scheme://host[:port])") from None
    if url.rest not in ("", "/"):
        raise ValueError("is not an origin (scheme://host[:port])")
    if url.scheme == "http" and not is_loopback(url):
        raise ValueError("must use https (http only for localhost)")
    return url.origin


Origin = Annotated[str, AfterValidator(_origin)]

# The fields a geologin dataset may declare, with the type each must have: the sign-in, nothing more.
GEOLOGIN_FIELDS: dict[str, str] = {
    "user_id": "string",
    "signed_in_at": "datetime",
    "country": "string",
    "region": "string",
    "city": "string",
    "ip": "ip",
    "user_agent": "string",
}

# The fields an sms dataset may declare, with the type each must have: the message and its delivery, nothing
# more. `body` must declare its max_length (a message is kept only up to what the controller decided).
SMS_FIELDS: dict[str, str] = {
    "direction": "string",
    "from": "phone",
    "to": "phone",
    "body": "string",
    "status": "string",
    "error_code": "integer",
    "activity_id": "string",
    "occurred_at": "datetime",
}

SMS_ALWAYS = ("direction", "occurred_at")  # what every sms record has

# The fields a link dataset may declare, with the type each must have: one visit of a tracked link
# (shared/links/), nothing more. `ip` is stored truncated, `target_url` and `referrer` without their query.
LINK_FIELDS: dict[str, str] = {
    "link_id": "string",
    "contact_id": "string",
    "visited_at": "datetime",
    "target_url": "url",
    "referrer": "url",
    "ip": "ip",
    "user_agent": "string",
}
# The subject of a link dataset: the contact a link was made for (so an erasure finds links and visits alike).
LINK_SUBJECT = "contact_id"

# The fields an emailevent dataset may declare, with the type each must have: one delivery event of an e-mail
# (SendGrid Event Webhook, shared/emailevents/), nothing more.
EMAILEVENT_FIELDS: dict[str, str] = {
    "event": "string",
    "email": "email",
    "occurred_at": "datetime",
    "activity_id": "string",
    "reason": "string",
    "url": "url",
    "ip": "ip",
    "user_agent": "string",
}

# The fields a mailchimpevent dataset may declare: what Mailchimp's webhook and campaign reports say happened.
MAILCHIMP_EVENT_FIELDS: dict[str, str] = {
    "event": "string",
    "email": "email",
    "occurred_at": "datetime",
    "list_id": "string",
    "campaign_id": "string",
    "reason": "string",
    "new_email": "email",
    "url": "url",
}
# Mailchimp merge tags are at most 10 of A-Z, 0-9 and _; a mailchimp dataset's field `fname` is the tag FNAME.
MERGE_FIELD_PATTERN = r"^[a-z][a-z0-9_]{0,9}$"
AUDIENCE_ID_PATTERN = r"^[0-9a-z]{1,32}$"
# A Mailchimp API key: 32 hex digits, a dash, the data centre (`us21`); the manage API and the `mailchimp` pack.
MAILCHIMP_API_KEY_PATTERN = r"^[0-9a-f]{32}-[a-z]{2,4}[0-9]{1,3}$"
AudienceId = Annotated[str, Field(pattern=AUDIENCE_ID_PATTERN)]

FORM_OPTIONS = ("redirect_url", "honeypot_field", "consent_field", "consent_text_version")

# Pixel custom events: the declared field that names a hit's event, and the fields the pixel fills itself, which
# no event property may be (a property is what the page says; these come from the page view or the request).
EVENT_FIELD = "event"
PIXEL_OWN_FIELDS = frozenset({EVENT_FIELD, "page_url", "referrer", "title", "visitor", "user_agent"})
MAX_EVENTS = 50
MAX_EVENT_PROPERTIES = 20


def origin_of_url(url: str | None) -> str | None:
    """The origin of an absolute URL, normalised as allowed_origins are, or None (also for any URL that a
    browser could read as being on another host)."""
    if not url:
        return None
    try:
        return _origin(parse_web_url(url).origin)
    except ValueError:
        return None


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class FieldSpec(Strict):
    name: str = Field(pattern=FIELD_NAME_PATTERN)
    type: FieldType
    required: bool = False
    personal: bool = True
    max_length: int | None = Field(default=None, ge=1, le=65536)
    options: tuple[Annotated[str, Field(min_length=1, max_length=200)], ...] | None = Field(
        default=None, min_length=1, max_length=200
    )
    description: str | None = Field(default=None, max_length=500)
    # Phone only: the region (ISO 3166 alpha-2) in whose national format a number without its country code is read.
    default_region: str | None = Field(default=None, pattern=r"^[A-Za-z]{2}$")

    @field_validator("default_region")
    @classmethod
    def _known_region(cls, region: str | None) -> str | None:
        if region is not None and region.upper() not in PHONE_REGIONS:
            raise ValueError("is not a region whose phone numbers are known (ISO 3166 alpha-2, such as NO)")
        return region.upper() if region is not None else None

    def normalise(self, raw: object) -> StoredValue:
        """A value of this field as stored, or InvalidValue with the reason: the one way capture stores a value
        and a data-subject request reads one."""
        return normalise(
            self.type, raw, max_length=self.max_length, options=self.options or (), default_region=self.default_region
        )

    @model_validator(mode="after")
    def _type_options(self) -> FieldSpec:
        if self.type == "choice" and not self.options:
            raise ValueError(f"field {self.name}: a choice field needs options")
        if self.type != "choice" and self.options is not None:
            raise ValueError(f"field {self.name}: options are only for choice fields")
        if self.options is not None and len(set(self.options)) != len(self.options):
            raise ValueError(f"field {self.name}: options repeat")
        if self.max_length is not None and self.type not in LENGTH_TYPES:
            raise ValueError(f"field {self.name}: max_length is only for {', '.join(sorted(LENGTH_TYPES))} fields")
        if self.default_region is not None and self.type != "phone":
            raise ValueError(f"field {self.name}: default_region is only for phone fields")
        return self


class EventSpec(Strict):
    """A custom event a pixel dataset accepts, and which declared fields are its properties."""

    name: str = Field(pattern=FIELD_NAME_PATTERN)
    properties: tuple[Annotated[str, Field(pattern=FIELD_NAME_PATTERN)], ...] = Field(
        default=(), max_length=MAX_EVENT_PROPERTIES
    )
    description: str | None = Field(default=None, max_length=500)


class Party(Strict):
    name: str = Field(min_length=1, max_length=200)
    email: EmailStr


# A language tag (BCP 47, RFC 5646) as browsers send them in Accept-Language: a language, then an optional
# script, region and variants; no private-use or grandfathered tags. Tags compare without regard to case.
LANGUAGE_TAG_PATTERN = (
    r"^[A-Za-z]{2,3}(-[A-Za-z]{4})?(-([A-Za-z]{2}|[0-9]{3}))?(-([A-Za-z0-9]{5,8}|[0-9][A-Za-z0-9]{3}))*$"
)
MAX_NOTICE_LANGUAGES = 20
LanguageTag = Annotated[str, Field(max_length=35, pattern=LANGUAGE_TAG_PATTERN)]


class NoticeWording(Strict):
    """The controller's own wording of the public notice in one language: the purpose, and words for fields."""

    purpose: str = Field(min_length=3, max_length=1000)
    fields: dict[
        Annotated[str, Field(pattern=FIELD_NAME_PATTERN)], Annotated[str, Field(min_length=1, max_length=300)]
    ] = Field(default_factory=dict, max_length=100)


class NoticeOptions(Strict):
    """`notice` of a dataset: the public notice's wording per language (English is built in, shared/notice/)."""

    languages: dict[LanguageTag, NoticeWording] = Field(min_length=1, max_length=MAX_NOTICE_LANGUAGES)

    @field_validator("languages")
    @classmethod
    def _distinct(cls, languages: dict[str, NoticeWording]) -> dict[str, NoticeWording]:
        if len({tag.lower() for tag in languages}) != len(languages):
            raise ValueError("notice languages repeat (tags compare without regard to case)")
        return languages


# Built on first use (pydantic's defer_build), not at import: the models that only the management routes validate.
# The first request of a new instance is a capture's, which validates stored documents (DatasetDoc, Tenant) and
# writes a Record; building the rest cost about 3.5 ms of each cold start (bench/README.md, "Cold start").
ON_FIRST_USE = ConfigDict(defer_build=True)


class Dataset(Strict):
    """One purpose of processing inside a tenant, declared before any data is accepted."""

    model_config = ON_FIRST_USE

    capability: Capability
    purpose: str = Field(min_length=3, max_length=500)
    legal_basis: LegalBasis
    retention_days: int = Field(ge=1, description=f"1 to {MAX_RETENTION_DAYS}")
    controller: Party
    dpo: Party | None = None
    subject_field: str | None = None
    fields: tuple[FieldSpec, ...] = Field(min_length=1, max_length=100)
    allowed_origins: tuple[Origin, ...] = Field(default=(), max_length=50)
    require_signature: bool = False
    # Pixel only: keep the query and fragment of URL fields, which are cut off by default.
    keep_url_query: bool = False
    # Pixel only: the custom events kept (each with its properties); any other event is not stored.
    events: tuple[EventSpec, ...] = Field(default=(), max_length=MAX_EVENTS)
    # Web forms only: where a plain HTML post goes after success, the spam trap, and the proof of consent.
    redirect_url: str | None = Field(default=None, max_length=2048)
    honeypot_field: str | None = Field(default=None, pattern=FIELD_NAME_PATTERN)
    consent_field: str | None = Field(default=None, pattern=FIELD_NAME_PATTERN)
    consent_text_version: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[\w.:-]+$")
    # The public notice's wording in other languages (shared/notice/): optional, English is built in.
    notice: NoticeOptions | None = None
    # Mailchimp only: the audiences (list ids) members may be pushed to; the events' own dataset may also take
    # the campaign activity (opens, clicks, bounces) read by the timer.
    mailchimp_audiences: tuple[AudienceId, ...] = Field(default=(), max_length=20)
    campaign_activity: bool = False
    # How records reach Dynamics 365 (registry/delivery_mapping.py); last, so that its check sees the rest.
    delivery: DeliveryMapping = DeliveryMapping()

    @field_validator("delivery")
    @classmethod
    def _mapping_fits(cls, mapping: DeliveryMapping, info: ValidationInfo) -> DeliveryMapping:
        if "fields" in info.data and "capability" in info.data:  # else their own errors are reported
            declared = [spec.name for spec in info.data["fields"]]
            consent = info.data.get("consent_field") is not None
            check_mapping(mapping, info.data["capability"], declared, consent)
        return mapping

    @field_validator("retention_days")
    @classmethod
    def _retention_limit(cls, value: int) -> int:
        if value > MAX_RETENTION_DAYS:
            raise ValueError(
                f"retention_days must be at most {MAX_RETENTION_DAYS}: PackCloud keeps personal data "
                f"{MAX_RETENTION_DAYS} days at most"
            )
        return value

    def expires_at(self, captured_at: datetime) -> datetime:
        """When what is captured now must be gone: every record and piece of personal state expires by this."""
        return captured_at + timedelta(days=self.retention_days)

    @model_validator(mode="after")
    def _consistent(self) -> Dataset:
        names = [spec.name for spec in self.fields]
        if len(set(names)) != len(names):
            raise ValueError("field names repeat")
        if self.subject_field is not None and self.subject_field not in names:
            raise ValueError("subject_field must name a declared field")
        if self.capability == "geologin":
            self._check_geologin_fields()
        if self.capability == "sms":
            self._check_sms_fields()
        if self.capability == "link":
            self._check_link_fields()
        if self.capability == "emailevent":
            self._check_fixed_fields("an emailevent", EMAILEVENT_FIELDS)
        if self.capability == "webform":
            self._check_form_options()
        elif any(getattr(self, name) is not None for name in FORM_OPTIONS):
            raise ValueError(f"{', '.join(FORM_OPTIONS)} are options of webform datasets only")
        if self.keep_url_query and self.capability != "pixel":
            raise ValueError("keep_url_query is an option of pixel datasets only")
        if self.notice is not None:
            for tag, wording in self.notice.languages.items():
                if unknown := sorted(set(wording.fields) - set(names)):
                    raise ValueError(f"notice {tag}: fields {', '.join(unknown)} are not declared")
        if self.events:
            self._check_events()
        self._check_mailchimp_options()
        return self

    def _check_events(self) -> None:
        if self.capability != "pixel":
            raise ValueError("events are an option of pixel datasets only")
        names = [event.name for event in self.events]
        if len(set(names)) != len(names):
            raise ValueError("event names repeat")
        marker = self.field(EVENT_FIELD)
        if marker is None or marker.type != "string" or marker.required:
            raise ValueError(f"a dataset with events needs an optional string field {EVENT_FIELD}: each record's event")
        for event in self.events:
            if len(set(event.properties)) != len(event.properties):
                raise ValueError(f"event {event.name}: properties repeat")
            for name in event.properties:
                spec = self.field(name)
                if spec is None:
                    raise ValueError(f"event {event.name}: property {name} must be a declared field")
                if name in PIXEL_OWN_FIELDS or spec.type == "ip":
                    raise ValueError(f"event {event.name}: {name} is filled by the pixel, it cannot be a property")
                if spec.required:
                    raise ValueError(f"event {event.name}: property {name} must not be a required field")

    def event(self, name: str) -> EventSpec | None:
        return next((event for event in self.events if event.name == name), None)

    @property
    def event_properties(self) -> frozenset[str]:
        """Every field that is some event's property: such a field is kept only on a hit of an event that lists it."""
        return frozenset(name for event in self.events for name in event.properties)

    def _check_geologin_fields(self) -> None:
        self._check_fixed_fields("a geologin", GEOLOGIN_FIELDS)

    def _check_fixed_fields(self, kind: str, fixed: dict[str, str]) -> None:
        """A capability whose fields come from a fixed set, each with its one type."""
        for spec in self.fields:
            expected = fixed.get(spec.name)
            if expected is None:
                raise ValueError(f"field {spec.name}: {kind} dataset may declare only {', '.join(fixed)}")
            if spec.type != expected:
                raise ValueError(f"field {spec.name}: in {kind} dataset it has type {expected}")

    def _check_sms_fields(self) -> None:
        self._check_fixed_fields("an sms", SMS_FIELDS)
        for spec in self.fields:
            if spec.name == "body" and spec.max_length is None:
                raise ValueError("field body: an sms dataset declares the body's max_length")
            if spec.required and spec.name not in SMS_ALWAYS:
                # A status callback has no body, an inbound message no activity: required, they would be refused.
                raise ValueError(f"field {spec.name}: in an sms dataset only {', '.join(SMS_ALWAYS)} can be required")
        if self.subject_field is not None:
            # The subject is always the other party's number (`to` going out, `from` coming in): shared/sms/.
            raise ValueError("an sms dataset has no subject_field: its records are indexed by the other party's number")

    def _check_link_fields(self) -> None:
        self._check_fixed_fields("a link", LINK_FIELDS)
        # A visit that keeps the contact must be found by a data-subject request for that contact.
        declares_contact = LINK_SUBJECT in self.field_names
        if self.subject_field not in (None, LINK_SUBJECT) or declares_contact != (self.subject_field is not None):
            raise ValueError(f"a link dataset that declares {LINK_SUBJECT} has subject_field {LINK_SUBJECT}, else none")
        if self.require_signature:
            raise ValueError("require_signature is an option of pixel datasets only")

    def _check_mailchimp_options(self) -> None:
        if self.capability == "mailchimp":
            if not self.mailchimp_audiences:
                raise ValueError("a mailchimp dataset needs mailchimp_audiences: the audiences members may go to")
            for spec in self.fields:
                if not re.fullmatch(MERGE_FIELD_PATTERN, spec.name):
                    raise ValueError(f"field {spec.name}: a merge field's name has at most 10 of a-z, 0-9 and _")
        elif self.mailchimp_audiences:
            raise ValueError("mailchimp_audiences is an option of mailchimp datasets only")
        if self.capability == "mailchimpevent":
            self._check_fixed_fields("a mailchimpevent", MAILCHIMP_EVENT_FIELDS)
        elif self.campaign_activity:
            raise ValueError("campaign_activity is an option of mailchimpevent datasets only")

    def _check_form_options(self) -> None:
        if not self.allowed_origins:
            raise ValueError("a webform dataset needs allowed_origins: the sites whose pages may post to it")
        if self.redirect_url is not None:
            origin = origin_of_url(self.redirect_url)
            if origin is None or origin not in self.allowed_origins:
                raise ValueError("redirect_url must be an absolute URL on one of the allowed_origins")
        if self.honeypot_field is not None and self.field(self.honeypot_field) is not None:
            raise ValueError("honeypot_field must not be a declared field: it is a trap, never data")
        if self.consent_field is not None:
            spec = self.field(self.consent_field)
            if spec is not None and spec.type != "boolean":
                raise ValueError("consent_field, when declared, must be a boolean field")
            if self.consent_field == self.honeypot_field:
                raise ValueError("consent_field and honeypot_field must differ")
        if (self.consent_field is None) != (self.consent_text_version is None):
            raise ValueError("consent_field and consent_text_version go together")
        if self.legal_basis == "consent" and self.consent_field is None:
            raise ValueError(
                "a webform dataset with legal_basis consent needs consent_field and consent_text_version, "
                "so each record keeps its proof of consent"
            )

    def field(self, name: str) -> FieldSpec | None:
        return next((spec for spec in self.fields if spec.name == name), None)

    @property
    def field_names(self) -> frozenset[str]:
        return frozenset(spec.name for spec in self.fields)


class DatasetDoc(Dataset):
    """A dataset as stored: the declaration plus where it belongs and when it changed.

    `generation` is random, fixed when the dataset is created and new when it is created again, so records
    captured for a deleted dataset are never delivered to the one that took its id. `declaration_revision`
    goes up by one whenever the declaration changes; each record names the revision it was validated
    against. Documents stored before these existed load with "" and 1.
    """

    model_config = ConfigDict(defer_build=False)  # what every capture reads: built at import, not on the request

    tenant: str
    id: str
    created_at: datetime
    updated_at: datetime
    generation: str = Field(default="", pattern=GENERATION_PATTERN)
    declaration_revision: int = Field(default=1, ge=1)

    def declaration(self) -> Dataset:
        stored = {"tenant", "id", "created_at", "updated_at", "generation", "declaration_revision"}
        return Dataset.model_validate(self.model_dump(exclude=stored))


class TenantIn(Strict):
    model_config = ON_FIRST_USE

    region: Region | None = None
    name: str | None = Field(default=None, min_length=1, max_length=200)


class KeyRotation(BaseModel):
    """Which keys `POST /manage/tenants/{tenant}/keys/rotate` replaces; both unless told otherwise."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)  # as ON_FIRST_USE

    api_key: StrictBool = True
    signing_key: StrictBool = True
    signing_key_grace_days: StrictInt = Field(default=MAX_SIGNING_GRACE_DAYS, ge=0, le=MAX_SIGNING_GRACE_DAYS)

    @model_validator(mode="after")
    def _something(self) -> KeyRotation:
        if not (self.api_key or self.signing_key):
            raise ValueError("rotate api_key, signing_key or both")
        return self


class RetiredSigningKey(BaseModel):
    """A signing key replaced by a rotation: links signed with it count until `valid_until`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = Field(ge=1)
    valid_until: datetime


class Tenant(BaseModel):
    """A tenant as stored. `generation` is random, fixed at creation and new when the tenant is created
    again; the signing key derives from it. A tenant stored before generations existed loads with ""."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    region: Region
    name: str | None = None
    api_key_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    generation: str = Field(default="", pattern=GENERATION_PATTERN)
    signing_key_version: int = Field(default=1, ge=1)
    retired_signing_keys: tuple[RetiredSigningKey, ...] = Field(default=(), max_length=MAX_RETIRED_SIGNING_KEYS)
    created_at: datetime
    updated_at: datetime

    def signing_key_versions(self, now: datetime) -> tuple[int, ...]:
        """The versions a signed link may use at `now`: the current one, then those still in their grace."""
        in_grace = [retired.version for retired in self.retired_signing_keys if now < retired.valid_until]
        return (self.signing_key_version, *in_grace)

    def with_rotated_signing_key(self, now: datetime, grace: timedelta) -> Tenant:
        """The next signing key version; the current one keeps counting for `grace` (none when zero)."""
        kept = [retired for retired in self.retired_signing_keys if now < retired.valid_until]
        if grace > timedelta(0):
            kept.append(RetiredSigningKey(version=self.signing_key_version, valid_until=now + grace))
        return self.model_copy(
            update={
                "signing_key_version": self.signing_key_version + 1,
                "retired_signing_keys": tuple(kept[-MAX_RETIRED_SIGNING_KEYS:]),
                "updated_at": now,
            }
        )

    def public(self) -> dict[str, Any]:
        """What the manage API shows: never the key hash."""
        return self.model_dump(mode="json", exclude={"api_key_sha256"})


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    tenant: str
    dataset: str
    captured_at: datetime
    expires_at: datetime
    fields: dict[str, StoredValue]
    dropped_fields: int = 0
    meta: dict[str, Any] = Field(default_factory=dict)
    # Which tenant and dataset generation, and which declaration revision, the record was captured and
    # validated under. Records stored before these existed load with "", "" and None (unknown revision).
    tenant_generation: str = Field(default="", pattern=GENERATION_PATTERN)
    dataset_generation: str = Field(default="", pattern=GENERATION_PATTERN)
    declaration_revision: int | None = None
