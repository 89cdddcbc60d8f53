"""A tenant's Mailchimp connection: its API key, kept in the secret store under a name never used before, and
the document `registry/mailchimp/connections/<tenant>.json` that names the secret and the data centre only.

A connection belongs to one generation of its tenant, as a delivery target does: a tenant deleted and created
again has none until one is given again.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from shared.core.clock import Clock
from shared.mailchimp.client import MailchimpApi, MailchimpApis, data_centre
from shared.registry.models import MAILCHIMP_API_KEY_PATTERN, Tenant
from shared.storage.audit import AuditLog
from shared.storage.blobs import Storage
from shared.storage.secrets import SecretStore
from shared.storage.tenant_credentials import CredentialDocument, CredentialSpec, TenantCredentials

CONNECTIONS_PREFIX = "mailchimp/connections/"


def connection_blob(tenant: str) -> str:
    return f"{CONNECTIONS_PREFIX}{tenant}.json"


class ConnectionIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    api_key: SecretStr = Field(description="a Mailchimp API key: 32 hex digits, '-', the data centre")

    @field_validator("api_key")
    @classmethod
    def _key_shape(cls, value: SecretStr) -> SecretStr:
        if not re.fullmatch(MAILCHIMP_API_KEY_PATTERN, value.get_secret_value()):
            raise ValueError("is not a Mailchimp API key (32 hex digits, '-', the data centre such as us21)")
        return value


class Connection(CredentialDocument):
    # Documents written before connections named their generation read as none of any tenant's.
    tenant_generation: str = ""
    data_centre: str

    def public(self) -> dict[str, Any]:
        """What the manage API shows: never the key, nor the secret's name."""
        return self.model_dump(mode="json", include={"tenant", "data_centre", "created_at", "updated_at"})


CONNECTIONS = CredentialSpec(Connection, CONNECTIONS_PREFIX, purpose="mailchimp", audit="mailchimp_connection")


class Connections:
    def __init__(
        self, storage: Storage, secrets: SecretStore, audit: AuditLog, clock: Clock, apis: MailchimpApis
    ) -> None:
        self._docs = TenantCredentials(storage, secrets, audit, clock, CONNECTIONS)
        self._apis = apis

    def put(self, tenant: Tenant, change: ConnectionIn) -> tuple[Connection, bool]:
        """The key under a new secret name first, then the document, then the previous key goes."""
        key = change.api_key.get_secret_value()
        centre = data_centre(key)
        return self._docs.put(tenant, key, {"data_centre": centre}, lambda _: {"data_centre": centre})

    def get(self, tenant: Tenant) -> Connection | None:
        return self._docs.get(tenant)

    def remove(self, tenant_id: str) -> bool:
        return self._docs.delete(tenant_id, audited=True)

    def forget(self, tenant_id: str) -> None:
        """With its tenant (shared/services.py `forget_tenant_credentials`)."""
        self.remove(tenant_id)

    def api(self, connection: Connection) -> MailchimpApi | None:
        """The API of the connection's key, or None when the secret store no longer has it."""
        key = self._docs.secret(connection)
        return self._apis.for_key(key) if key is not None else None
