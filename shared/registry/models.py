"""Documents at the boundaries: tenants, datasets (purposes of processing) and captured records."""

from __future__ import annotations

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

from shared.core.fieldtypes import LENGTH_TYPES, FieldType, StoredValue
from shared.core.keys import GENERATION_PATTERN
from shared.core.settings import Region
from shared.core.urls import is_loopback, parse_web_url
from shared.registry.delivery_mapping import DeliveryMapping, check_mapping

MAX_RETENTION_DAYS = 30
# A retired signing key counts at most this long: no record a link made before the rotation outlives it.
MAX_SIGNING_GRACE_DAYS = MAX_RETENTION_DAYS
# Retired signing keys still in their grace that a tenant keeps; more rotations end the oldest grace early.
MAX_RETIRED_SIGNING_KEYS = 10

Capability = Literal["pixel", "webform", "geologin", "emailevent"]
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

FORM_OPTIONS = ("redirect_url", "honeypot_field", "consent_field", "consent_text_version")


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
        return self


class Party(Strict):
    name: str = Field(min_length=1, max_length=200)
    email: EmailStr


class Dataset(Strict):
    """One purpose of processing inside a tenant, declared before any data is accepted."""

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
    # Web forms only: where a plain HTML post goes after success, the spam trap, and the proof of consent.
    redirect_url: str | None = Field(default=None, max_length=2048)
    honeypot_field: str | None = Field(default=None, pattern=FIELD_NAME_PATTERN)
    consent_field: str | None = Field(default=None, pattern=FIELD_NAME_PATTERN)
    consent_text_version: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[\w.:-]+$")
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
        if self.capability == "emailevent":
            self._check_fixed_fields(EMAILEVENT_FIELDS)
        if self.capability == "webform":
            self._check_form_options()
        elif any(getattr(self, name) is not None for name in FORM_OPTIONS):
            raise ValueError(f"{', '.join(FORM_OPTIONS)} are options of webform datasets only")
        if self.keep_url_query and self.capability != "pixel":
            raise ValueError("keep_url_query is an option of pixel datasets only")
        return self

    def _check_geologin_fields(self) -> None:
        self._check_fixed_fields(GEOLOGIN_FIELDS)

    def _check_fixed_fields(self, allowed: dict[str, str]) -> None:
        for spec in self.fields:
            expected = allowed.get(spec.name)
            if expected is None:
                raise ValueError(
                    f"field {spec.name}: a {self.capability} dataset may declare only {', '.join(allowed)}"
                )
            if spec.type != expected:
                raise ValueError(f"field {spec.name}: in a {self.capability} dataset it has type {expected}")

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
    region: Region | None = None
    name: str | None = Field(default=None, min_length=1, max_length=200)


class KeyRotation(BaseModel):
    """Which keys `POST /manage/tenants/{tenant}/keys/rotate` replaces; both unless told otherwise."""

    model_config = ConfigDict(extra="forbid", frozen=True)

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
