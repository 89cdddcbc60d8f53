"""A tenant's SMS provider account (Twilio): who PackCloud sends as, and the secret that signs Twilio's webhooks.

The account is kept as every tenant credential is (shared/storage/tenant_credentials.py): the document
`registry/sms/accounts/<tenant>.json` holds the Account SID, the optional API key SID and the sender (a phone number
or a Messaging Service SID), and names a secret in the region's secret store (`pc-<tenant>--sms-twilio-<random>`, a
name never used before) holding the Auth Token (it signs every webhook Twilio sends, so it is always needed) and the
optional API key secret. The document names the tenant generation it was given for: a tenant deleted and created
again has no account until one is given again. It lives in `registry/` because both the SMS capability (which sends and
verifies) and the registration engine (whose `sms` pack carries it) need it, and those two are siblings.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from shared.core.clock import Clock
from shared.core.errors import StorageUnavailable
from shared.core.fieldtypes import InvalidValue, normalise
from shared.registry.models import Tenant
from shared.storage.audit import AuditLog
from shared.storage.blobs import Storage
from shared.storage.secrets import SecretStore, tenant_secret_name
from shared.storage.tenant_credentials import CredentialDocument, CredentialSpec, TenantCredentials

ACCOUNT_SID = r"^AC[0-9a-fA-F]{32}$"
API_KEY_SID = r"^SK[0-9a-fA-F]{32}$"
MESSAGING_SERVICE_SID = r"^MG[0-9a-fA-F]{32}$"
# The `sms` pack's registration credentials, by the name each has there.
REGISTRATION_CREDENTIALS = {
    "twilio-account-sid": "account_sid",
    "twilio-auth-token": "auth_token",
    "twilio-api-key-sid": "api_key_sid",
    "twilio-api-key-secret": "api_key_secret",
    "twilio-from": "from_number",
    "twilio-messaging-service-sid": "messaging_service_sid",
}


SMS_ACCOUNTS_PREFIX = "sms/accounts/"
AUDIT_KIND = "sms_account"


def sms_secret_name(tenant: str) -> str:
    """The one secret an account was kept in before accounts had documents (read, and deleted, still)."""
    return tenant_secret_name(tenant, "sms-twilio")


class SmsAccountIn(BaseModel):
    """`PUT /api/manage/tenants/{tenant}/sms`, and the `sms` pack's credentials."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    account_sid: str = Field(pattern=ACCOUNT_SID, description="the Twilio Account SID (AC...)")
    auth_token: SecretStr = Field(
        min_length=16, max_length=128, description="the account's Auth Token: it signs Twilio's webhooks"
    )
    api_key_sid: str | None = Field(default=None, pattern=API_KEY_SID, description="send with this API key (SK...)")
    api_key_secret: SecretStr | None = Field(default=None, min_length=16, max_length=128)
    from_number: str | None = Field(default=None, max_length=32, description="the sender: an E.164 number")
    messaging_service_sid: str | None = Field(
        default=None, pattern=MESSAGING_SERVICE_SID, description="or the sender: a Messaging Service SID (MG...)"
    )

    @model_validator(mode="after")
    def _complete(self) -> SmsAccountIn:
        if (self.api_key_sid is None) != (self.api_key_secret is None):
            raise ValueError("api_key_sid and api_key_secret go together")
        if (self.from_number is None) == (self.messaging_service_sid is None):
            raise ValueError("give exactly one sender: from_number or messaging_service_sid")
        if self.from_number is not None:
            try:
                normalised = str(normalise("phone", self.from_number))
            except InvalidValue:
                raise ValueError("from_number must be an E.164 number (+ and 7 to 15 digits)") from None
            object.__setattr__(self, "from_number", normalised)
        return self

    @classmethod
    def from_credentials(cls, credentials: dict[str, SecretStr]) -> SmsAccountIn:
        """The account an `sms` registration carries; ValidationError naming what is missing or wrong."""
        values = {
            field: credentials[name].get_secret_value()
            for name, field in REGISTRATION_CREDENTIALS.items()
            if name in credentials
        }
        return cls.model_validate(values)

    def public(self) -> dict[str, Any]:
        """What the manage API shows: never a secret."""
        return {
            "account_sid": self.account_sid,
            "credential": "api_key" if self.api_key_sid else "auth_token",
            "api_key_sid": self.api_key_sid,
            "from_number": self.from_number,
            "messaging_service_sid": self.messaging_service_sid,
        }

    def sending_credentials(self) -> tuple[str, str]:
        """(user name, password) of the REST API's Basic auth: the API key when there is one, else the token."""
        if self.api_key_sid is not None and self.api_key_secret is not None:
            return self.api_key_sid, self.api_key_secret.get_secret_value()
        return self.account_sid, self.auth_token.get_secret_value()


class SmsAccount(CredentialDocument):
    """As stored: the account's ids and sender; its Auth Token and API key secret are the secret's (a JSON value)."""

    account_sid: str
    api_key_sid: str | None = None
    from_number: str | None = None
    messaging_service_sid: str | None = None


SMS_ACCOUNTS = CredentialSpec(
    SmsAccount, SMS_ACCOUNTS_PREFIX, purpose="sms-twilio", audit=AUDIT_KIND, legacy_secret=sms_secret_name
)


class SmsAccounts:
    """The accounts of this region's tenants: a document in the registry container and a secret in the region's
    secret store (shared/storage/tenant_credentials.py). An account given before accounts had documents is a secret
    alone, under the fixed name `sms_secret_name`: it is read until the account is given again or deleted."""

    def __init__(self, storage: Storage, secrets: SecretStore, audit: AuditLog, clock: Clock) -> None:
        self._secrets = secrets
        self._docs = TenantCredentials(storage, secrets, audit, clock, SMS_ACCOUNTS)

    def get(self, tenant: Tenant) -> SmsAccountIn | None:
        doc, documented = self._docs.current(tenant)
        if doc is None:
            return None if documented else self._legacy(tenant)
        raw = self._docs.secret(doc)
        try:
            secrets = json.loads(raw) if raw is not None else None
            if not isinstance(secrets, dict):
                return None
            ids = doc.model_dump(include={"account_sid", "api_key_sid", "from_number", "messaging_service_sid"})
            return SmsAccountIn.model_validate({**ids, **secrets})
        except (ValueError, ValidationError):
            return None

    def put(self, tenant: Tenant, account: SmsAccountIn) -> bool:
        """Store the account; True when the tenant had none."""
        legacy = self._docs.stored(tenant.id) is None and self._legacy(tenant) is not None
        secrets = {"auth_token": account.auth_token.get_secret_value()}
        if account.api_key_secret is not None:
            secrets["api_key_secret"] = account.api_key_secret.get_secret_value()
        ids = account.model_dump(exclude_none=True, exclude={"auth_token", "api_key_secret"})
        _, created = self._docs.put(tenant, json.dumps(secrets), ids, had=legacy)
        with contextlib.suppress(StorageUnavailable):
            self._secrets.delete(sms_secret_name(tenant.id))  # best effort: an earlier layout's, named by no document
        return created

    def delete(self, tenant: str) -> bool:
        return self._docs.delete(tenant, audited=True)

    def forget(self, tenant_id: str) -> None:
        """With its tenant (shared/services.py `forget_tenant_credentials`)."""
        self.delete(tenant_id)

    def _legacy(self, tenant: Tenant) -> SmsAccountIn | None:
        """An account kept as one secret (`{"generation", "account"}`) before accounts had documents."""
        raw = self._secrets.get(sms_secret_name(tenant.id))
        if raw is None:
            return None
        try:
            value = json.loads(raw)
            if value.get("generation") != tenant.generation:
                return None  # given to an earlier tenant with this id
            return SmsAccountIn.model_validate(value["account"])
        except (ValueError, KeyError, TypeError, AttributeError, ValidationError):
            return None
