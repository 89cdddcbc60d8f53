"""A tenant's SMS provider account (Twilio): who PackCloud sends as, and the secret that signs Twilio's webhooks.

The whole account is one secret in the region's secret store (`pc-<tenant>--sms-twilio`, a JSON value), never a
blob: the Account SID, the Auth Token (it signs every webhook Twilio sends, so it is always needed), optionally an
API key (SID and secret) to send with instead of the Auth Token, and the sender (a phone number or a Messaging
Service SID). The value names the tenant generation it was given for: a tenant deleted and created again has no
account until one is given again. It lives in `registry/` because both the SMS capability (which sends and
verifies) and the registration engine (whose `sms` pack carries it) need it, and those two are siblings.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from shared.core.fieldtypes import InvalidValue, normalise
from shared.registry.models import Tenant
from shared.storage.audit import AuditLog
from shared.storage.secrets import SecretStore, tenant_secret_name

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


def sms_secret_name(tenant: str) -> str:
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


class SmsAccounts:
    """The accounts of this region's tenants, in the region's secret store."""

    def __init__(self, secrets: SecretStore, audit: AuditLog) -> None:
        self._secrets = secrets
        self._audit = audit

    def get(self, tenant: Tenant) -> SmsAccountIn | None:
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

    def put(self, tenant: Tenant, account: SmsAccountIn) -> bool:
        """Store the account; True when the tenant had none."""
        created = self.get(tenant) is None
        secrets = {"auth_token": account.auth_token.get_secret_value()}
        if account.api_key_secret is not None:
            secrets["api_key_secret"] = account.api_key_secret.get_secret_value()
        value = {"generation": tenant.generation, "account": {**account.model_dump(exclude_none=True), **secrets}}
        self._secrets.set(sms_secret_name(tenant.id), json.dumps(value))
        self._audit.append(tenant.id, "sms_account", change="created" if created else "replaced")
        return created

    def delete(self, tenant: str) -> bool:
        found = self._secrets.delete(sms_secret_name(tenant))
        if found:
            self._audit.append(tenant, "sms_account", change="deleted")
        return found
