"""The registration engine: a pack installed in Dynamics 365 registers with the home deployment.

The home deployment keeps the registration (who installed which pack, for which organisation, in which
region), puts the pack's credentials in the secret store (the registration keeps only their names), and
creates the tenant in the one region the customer chose, through that region's manage API. All captured
data lives there; the home deployment holds no captured record of a tenant homed elsewhere.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import re
import threading
from datetime import datetime, timedelta
from secrets import token_hex
from typing import Annotated, Any, Literal
from uuid import UUID

from azure.core import MatchConditions
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, SecretStr, ValidationError

from shared.core.bodies import field_errors
from shared.core.clock import Clock
from shared.core.errors import Conflict, NotFound, StorageUnavailable, Unauthorized, field_problems
from shared.core.fieldtypes import InvalidValue, normalise
from shared.core.ids import check_id
from shared.core.keys import derive_key
from shared.core.settings import Region, Settings
from shared.core.urls import dynamics_url
from shared.dataverse.targets import TargetCredentials, TargetIn
from shared.registration.provisioning import Provisioner
from shared.registry.models import MAILCHIMP_API_KEY_PATTERN
from shared.registry.sms_account import REGISTRATION_CREDENTIALS, SmsAccountIn
from shared.registry.store import Registry, registration_blob
from shared.storage.audit import AuditLog
from shared.storage.blobs import JSON_CONTENT, REGISTRY, Storage, only_if_unchanged, storage_errors
from shared.storage.email_keys import VERIFICATION_KEY_CREDENTIAL, parse_verification_key
from shared.storage.secrets import MAX_SECRET_VALUE, SecretStore, tenant_secret_name

# The packs PackCloud serves; a later pack adds its name here (and to openapi.yaml).
Pack = Literal["webtraffic", "email", "webform", "surveyplus", "autonumber", "geolog", "sms", "powers", "mailchimp"]
# The `mailchimp` pack's credential: the API key, which becomes the tenant's Mailchimp connection.
MAILCHIMP_KEY_CREDENTIAL = "mailchimp-api-key"
CREDENTIAL_NAME = re.compile(r"^[a-z](?:-?[a-z0-9]){0,39}$")
MAX_CREDENTIALS = 20
# A registration left half-done (the home instance stopped) may be taken over after this long.
PROVISIONING_TIMEOUT = timedelta(seconds=60)
# The key installers present to POST /api/registrations (header below): its own secret in the secret store, the
# current one and, while a rotation is under way, the previous one (infra/README.md, "Registration key").
REGISTRATION_KEY_HEADER = "x-registration-key"
REGISTRATION_KEY_SECRETS = ("packcloud-registration-key", "packcloud-registration-key-previous")
MIN_REGISTRATION_KEY_LENGTH = 32
# Read from the secret store at most this often per instance: a rotation takes effect within it.
REGISTRATION_KEY_TTL = timedelta(seconds=60)

log = logging.getLogger("packcloud.registration")


def _phone(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return str(normalise("phone", value))
    except InvalidValue as reason:
        raise ValueError(str(reason)) from None


def _credentials(value: dict[str, SecretStr] | None) -> dict[str, SecretStr] | None:
    if value is None:
        return None
    if len(value) > MAX_CREDENTIALS:
        raise ValueError(f"at most {MAX_CREDENTIALS} credentials")
    for name, secret in value.items():
        if not CREDENTIAL_NAME.fullmatch(name):
            raise ValueError("a credential name has 1 to 40 lower-case letters, digits or single '-', from a letter")
        if not 1 <= len(secret.get_secret_value()) <= MAX_SECRET_VALUE:
            raise ValueError(f"a credential value has 1 to {MAX_SECRET_VALUE} characters")
    return value


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Contact(Strict):
    name: str = Field(min_length=1, max_length=200)
    email: EmailStr
    phone: Annotated[str | None, AfterValidator(_phone)] = None


class Organization(Strict):
    name: str = Field(min_length=1, max_length=200, description="the Dynamics 365 instance name")
    id: UUID = Field(description="the organisation's unique id")
    users: int = Field(ge=1, le=10_000_000)
    url: str = Field(min_length=8, max_length=2048)


class RegistrationIn(Strict):
    pack: Pack
    contact: Contact
    organization: Organization
    region: Region
    credentials: Annotated[dict[str, SecretStr] | None, AfterValidator(_credentials)] = None
    # The application PackCloud signs in to the organisation as, to deliver into it (docs/delivery.md); its
    # organisation URL is organization.url. Set as the tenant's delivery target in the tenant's region.
    delivery: TargetCredentials | None = None


class Registration(BaseModel):
    """As stored (home deployment, `registry/registrations/{tenant}.json`): credential names, never values."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant: str
    status: Literal["provisioning", "active"]
    pack: Pack
    contact: Contact
    organization: Organization
    region: Region
    credentials: dict[str, str] = Field(default_factory=dict, description="credential name -> secret name")
    created_at: datetime
    updated_at: datetime

    def public(self, base_url: str | None) -> dict[str, Any]:
        shown = self.model_dump(mode="json", exclude={"credentials", "status"})
        return {**shown, "credentials": sorted(self.credentials), "base_url": base_url}


def _sms_account(request: RegistrationIn, *, creating: bool = False) -> SmsAccountIn | None:
    """The Twilio account an `sms` registration carries in its credentials (shared/registry/sms_account.py): required
    when the pack is registered, optional on an update (without credentials the account stays as it is)."""
    if request.pack != "sms" or (request.credentials is None and not creating):
        return None
    try:
        return SmsAccountIn.from_credentials(request.credentials or {})
    except ValidationError as error:
        names = {field: name for name, field in REGISTRATION_CREDENTIALS.items()}
        problems = []
        for problem in field_errors(error):
            head, _, rest = problem["field"].partition(".")
            where = f"credentials.{names[head]}" if head in names else "credentials"
            problems.append({"field": where + (f".{rest}" if rest else ""), "reason": problem["reason"]})
        raise field_problems("invalid_registration", "invalid registration", problems) from None


def registration_tenant_id(master_key: str, organization: UUID, pack: str) -> str:
    """One tenant per organisation and pack, whatever the number of attempts: re-registering finds it."""
    key = derive_key(master_key, "registration", "-")
    digest = hmac.new(key, f"{organization}|{pack}".encode(), hashlib.sha256).hexdigest()
    return f"r-{digest[:20]}"


class RegistrationStore:
    def __init__(self, storage: Storage, registry: Registry) -> None:
        self._storage = storage
        self._registry = registry

    def get(self, tenant: str) -> tuple[Registration | None, str | None]:
        body, etag = self._storage.read_json(REGISTRY, registration_blob(tenant))
        return (Registration.model_validate(body), etag) if body is not None else (None, None)

    def put(self, doc: Registration, etag: str | None) -> str:
        """Create (etag None: only if absent) or replace (only if unchanged since read); Conflict otherwise."""
        client = self._storage.container(REGISTRY).get_blob_client(registration_blob(doc.tenant))
        try:
            with storage_errors():
                try:
                    body = doc.model_dump_json().encode()
                    written = client.upload_blob(body, content_settings=JSON_CONTENT, **only_if_unchanged(etag))
                except (ResourceExistsError, ResourceModifiedError):
                    raise _in_progress() from None
        finally:
            self._registry.forget_registration(doc.tenant)
        return str(written["etag"])

    def release(self, tenant: str, etag: str) -> None:
        """Best effort: drop a claim this attempt made, unless someone changed it since."""
        client = self._storage.container(REGISTRY).get_blob_client(registration_blob(tenant))
        with contextlib.suppress(AzureError):
            client.delete_blob(etag=etag, match_condition=MatchConditions.IfNotModified)
        self._registry.forget_registration(tenant)

    def delete(self, tenant: str) -> None:
        try:
            with storage_errors(), contextlib.suppress(ResourceNotFoundError):
                self._storage.container(REGISTRY).delete_blob(registration_blob(tenant))
        finally:
            self._registry.forget_registration(tenant)


def _in_progress() -> Conflict:
    return Conflict("registration_in_progress", "the same registration is being changed, retry shortly", retry_after=2)


class RegistrationKey:
    """The registration route's own key. In Azure a function-level route also accepts the host keys, which
    operators hold for everything else; so the route is anonymous to the Functions host and checks this key,
    a secret that is used for nothing else, compared in constant time."""

    def __init__(self, secrets: SecretStore, clock: Clock) -> None:
        self._secrets = secrets
        self._clock = clock
        self._digests: tuple[bytes, ...] = ()
        self._read_at: datetime | None = None
        self._lock = threading.Lock()

    def require(self, presented: str | None) -> None:
        """Unauthorized (401) unless the presented key is the current or the previous registration key."""
        if not presented:
            raise Unauthorized("missing_key", f"send the registration key in the {REGISTRATION_KEY_HEADER} header")
        digest = hashlib.sha256(presented.encode("utf-8", "surrogatepass")).digest()
        # Every known key is compared, equal-length digests each time: timing tells nothing about either.
        matches = [hmac.compare_digest(digest, known) for known in self._known()]
        if not any(matches):
            raise Unauthorized("unauthorized", "the registration key is not valid")

    def _known(self) -> tuple[bytes, ...]:
        with self._lock:
            now = self._clock.now()
            if self._read_at is None or now - self._read_at >= REGISTRATION_KEY_TTL:
                self._digests = self._read()
                self._read_at = now
            return self._digests

    def _read(self) -> tuple[bytes, ...]:
        digests = []
        for name in REGISTRATION_KEY_SECRETS:
            value = self._secrets.get(name)
            if value is None:
                continue
            if len(value) < MIN_REGISTRATION_KEY_LENGTH:
                log.error("the secret %s is shorter than %d characters: not used", name, MIN_REGISTRATION_KEY_LENGTH)
                continue
            digests.append(hashlib.sha256(value.encode()).digest())
        if not digests:
            log.error(
                "no registration key in the secret store (%s): registration is closed", REGISTRATION_KEY_SECRETS[0]
            )
        return tuple(digests)


class Registrations:
    def __init__(
        self,
        store: RegistrationStore,
        secrets: SecretStore,
        provisioner: Provisioner,
        audit: AuditLog,
        settings: Settings,
        clock: Clock,
    ) -> None:
        self._store = store
        self._secrets = secrets
        self._provisioner = provisioner
        self._audit = audit
        self._settings = settings
        self._clock = clock
        self.key = RegistrationKey(secrets, clock)

    def register(self, request: RegistrationIn, authorization: str | None = None) -> tuple[int, dict[str, Any]]:
        """201 with the tenant's keys (the only time they are shown), or 200 for a registration updated.

        Anyone with the registration key can register an organisation not yet registered (with this pack). An
        update changes who is contacted and which credentials the pack uses, so it must prove the tenant: its
        API key (`authorization`, `Bearer <key>`), checked by the tenant's region before anything changes."""
        organization = self._checked(request)
        sms = _sms_account(request, creating=True)
        base_url = self._base_url(request.region)
        tenant = registration_tenant_id(self._settings.master_key.get_secret_value(), organization.id, request.pack)
        existing, etag = self._store.get(tenant)
        now = self._clock.now()
        if existing is not None and existing.status == "active":
            self._provisioner.check_tenant_key(existing.region, existing.tenant, authorization)
            return 200, self._update(existing, etag, request, organization, base_url, _sms_account(request))
        if existing is not None and now - existing.updated_at < PROVISIONING_TIMEOUT:
            raise _in_progress()
        # New, or an attempt that stopped half-way: claim it, then create the tenant afresh in its region.
        claim = Registration(
            tenant=tenant,
            status="provisioning",
            pack=request.pack,
            contact=request.contact,
            organization=organization,
            region=request.region,
            created_at=existing.created_at if existing else now,
            updated_at=now,
        )
        etag = self._store.put(claim, etag)
        written: dict[str, str] = {}
        try:
            keys = self._provisioner.create_fresh(request.region, tenant, organization.name)
            self._give_target(request, organization, tenant)
            if sms is not None:
                self._provisioner.give_sms_account(request.region, tenant, sms)
            self._give_email_key(request, tenant)
            self._give_mailchimp_key(request, tenant)
            credentials, written, _ = self._write_credentials(tenant, request.credentials, {})
            done = claim.model_copy(
                update={"status": "active", "credentials": credentials, "updated_at": self._clock.now()}
            )
            self._store.put(done, etag)
        except Exception:
            # Nothing of a failed attempt is kept here; a tenant it created in the region is replaced on retry.
            self._forget_secrets(written)
            self._store.release(tenant, etag)
            raise
        self._audit.append(
            tenant,
            "registration",
            change="created",
            pack=request.pack,
            region=request.region,
            credentials=len(credentials),
            delivery_target=request.delivery is not None,
        )
        return 201, {**done.public(base_url), "api_key": keys.api_key, "signing_key": keys.signing_key}

    def _update(
        self,
        existing: Registration,
        etag: str | None,
        request: RegistrationIn,
        organization: Organization,
        base_url: str,
        sms: SmsAccountIn | None = None,
    ) -> dict[str, Any]:
        if existing.region != request.region:
            raise Conflict(
                "region_change",
                f"this organisation's pack is registered in region {existing.region}; its data stays there. "
                "Deregister it first to choose another region",
            )
        self._provisioner.update(existing.region, existing.tenant, organization.name)
        self._give_target(request, organization, existing.tenant)
        if sms is not None:
            self._provisioner.give_sms_account(existing.region, existing.tenant, sms)
        self._give_email_key(request, existing.tenant)
        self._give_mailchimp_key(request, existing.tenant)
        credentials, written, dropped = self._write_credentials(
            existing.tenant, request.credentials, existing.credentials
        )
        updated = existing.model_copy(
            update={
                "contact": request.contact,
                "organization": organization,
                "credentials": credentials,
                "updated_at": self._clock.now(),
            }
        )
        try:
            self._store.put(updated, etag)
        except Exception:
            self._forget_secrets(written)
            raise
        # Only once the registration no longer names them: a failed update leaves every named secret in place.
        self._forget_secrets(dropped)
        facts = {"pack": request.pack, "region": existing.region, "credentials": len(credentials)}
        facts["delivery_target"] = request.delivery is not None
        self._audit.append(existing.tenant, "registration", change="updated", **facts)
        return updated.public(base_url)

    def _give_target(self, request: RegistrationIn, organization: Organization, tenant: str) -> None:
        """The delivery target a registration carries, set where the tenant lives (its secret goes to that region's
        secret store), with the organisation URL as checked here."""
        if request.delivery is not None:
            target = TargetIn(organization_url=organization.url, **dict(request.delivery))
            self._provisioner.give_target(request.region, tenant, target)

    def _give_mailchimp_key(self, request: RegistrationIn, tenant: str) -> None:
        """The `mailchimp` pack's API key, as the tenant's Mailchimp connection in its region (that region's secret
        store), besides the registration's own copy among the credentials."""
        key = _mailchimp_key(request)
        if key is not None:
            self._provisioner.give_mailchimp_key(request.region, tenant, key)

    def _give_email_key(self, request: RegistrationIn, tenant: str) -> None:
        """The `email` pack's SendGrid verification key, set where the tenant's e-mail events arrive (that region's
        secret store), besides the registration's own copy among the credentials."""
        key = _email_key(request)
        if key is not None:
            self._provisioner.give_email_key(request.region, tenant, key)

    def get(self, tenant: str) -> dict[str, Any]:
        doc = self._require(tenant)
        return doc.public(self._settings.region_url(doc.region))

    def deregister(self, tenant: str) -> None:
        """Secrets, then the tenant in its region (with all its data there), then the registration; the audit
        entries stay. Each step can be repeated, so a deregistration that failed half-way is simply retried."""
        doc = self._require(tenant)
        for secret in doc.credentials.values():
            self._secrets.delete(secret)
        self._provisioner.delete(doc.region, tenant)
        self._store.delete(tenant)
        facts = {"pack": doc.pack, "region": doc.region, "credentials": len(doc.credentials)}
        self._audit.append(tenant, "registration", change="deleted", **facts)

    def _require(self, tenant: str) -> Registration:
        check_id("tenant", tenant)
        doc, _ = self._store.get(tenant)
        if doc is None:
            raise NotFound("unknown_registration", "no registration with this tenant id")
        return doc

    def _checked(self, request: RegistrationIn) -> Organization:
        mailchimp_key = _mailchimp_key(request)
        if mailchimp_key is not None and not re.fullmatch(MAILCHIMP_API_KEY_PATTERN, mailchimp_key):
            where = f"credentials.{MAILCHIMP_KEY_CREDENTIAL}"
            reason = "is not a Mailchimp API key (32 hex digits, '-', the data centre such as us21)"
            raise field_problems("invalid_registration", "invalid registration", [{"field": where, "reason": reason}])
        key = _email_key(request)
        if key is not None:
            try:
                parse_verification_key(key)
            except ValueError as reason:
                where = f"credentials.{VERIFICATION_KEY_CREDENTIAL}"
                raise field_problems(
                    "invalid_registration", "invalid registration", [{"field": where, "reason": str(reason)}]
                ) from None
        try:
            url = dynamics_url(request.organization.url, self._settings.dynamics_host_patterns)
        except ValueError as reason:
            raise field_problems(
                "invalid_registration", "invalid registration", [{"field": "organization.url", "reason": str(reason)}]
            ) from None
        return request.organization.model_copy(update={"url": url})

    def _base_url(self, region: Region) -> str:
        url = self._settings.region_url(region)
        if url is None:
            reason = "no PackCloud deployment of this installation serves this region"
            raise field_problems(
                "invalid_registration", "invalid registration", [{"field": "region", "reason": reason}]
            )
        return url

    def _write_credentials(
        self, tenant: str, given: dict[str, SecretStr] | None, stored: dict[str, str]
    ) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
        """Given credentials replace the stored set: (the new set, the secrets written under new names, the
        secrets of names no longer given, which the caller deletes once the registration is written).

        A credential not stored yet gets a secret name never used before (a random suffix), never the name of a
        deleted one: Key Vault keeps deleted secrets (purge protection) and refuses their names (409); recovering
        one would make the values it held when it was deleted, perhaps a former registration's, readable again as
        older versions for as long as the secret lives. Under a new name they stay deleted, disabled, and are
        purged at the end of the vault's retention.
        """
        if given is None:
            return dict(stored), {}, {}
        kept: dict[str, str] = {}
        written: dict[str, str] = {}
        try:
            for name, value in given.items():
                secret = stored.get(name) or tenant_secret_name(tenant, f"cred-{name}-{token_hex(4)}")
                self._secrets.set(secret, value.get_secret_value())
                kept[name] = secret
                if name not in stored:
                    written[name] = secret
        except Exception:
            self._forget_secrets(written)
            raise
        dropped = {name: secret for name, secret in stored.items() if name not in kept}
        return kept, written, dropped

    def _forget_secrets(self, secrets: dict[str, str]) -> None:
        """Best effort where it cleans up after a failure: the failure, not this, is what the caller reports."""
        for secret in secrets.values():
            with contextlib.suppress(StorageUnavailable):
                self._secrets.delete(secret)


def _mailchimp_key(request: RegistrationIn) -> str | None:
    """The Mailchimp API key the `mailchimp` pack takes as a credential."""
    given = (request.credentials or {}).get(MAILCHIMP_KEY_CREDENTIAL) if request.pack == "mailchimp" else None
    return given.get_secret_value().strip() if given is not None else None


def _email_key(request: RegistrationIn) -> str | None:
    """The verification key of SendGrid's signed Event Webhook, which the `email` pack takes as a credential."""
    given = (request.credentials or {}).get(VERIFICATION_KEY_CREDENTIAL) if request.pack == "email" else None
    return given.get_secret_value() if given is not None else None
