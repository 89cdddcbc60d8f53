"""A tenant's Mailchimp connection: its API key, kept in the secret store under a name never used before, and
the document `registry/mailchimp/connections/<tenant>.json` that names the secret and the data centre only.

A connection belongs to one generation of its tenant, as a delivery target does: a tenant deleted and created
again has none until one is given again.
"""

from __future__ import annotations

import contextlib
import re
from datetime import datetime
from secrets import token_hex
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from shared.core.clock import Clock
from shared.core.errors import StorageUnavailable
from shared.mailchimp.client import MailchimpApi, MailchimpApis, data_centre
from shared.registry.models import MAILCHIMP_API_KEY_PATTERN, Tenant
from shared.storage.audit import AuditLog
from shared.storage.blobs import JSON_CONTENT, REGISTRY, Storage, storage_errors
from shared.storage.secrets import SecretStore, tenant_secret_name


def connection_blob(tenant: str) -> str:
    return f"mailchimp/connections/{tenant}.json"


class ConnectionIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    api_key: SecretStr = Field(description="a Mailchimp API key: 32 hex digits, '-', the data centre")

    @field_validator("api_key")
    @classmethod
    def _key_shape(cls, value: SecretStr) -> SecretStr:
        if not re.fullmatch(MAILCHIMP_API_KEY_PATTERN, value.get_secret_value()):
            raise ValueError("is not a Mailchimp API key (32 hex digits, '-', the data centre such as us21)")
        return value


class Connection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant: str
    tenant_generation: str = ""
    data_centre: str
    secret_name: str
    created_at: datetime
    updated_at: datetime

    def public(self) -> dict[str, Any]:
        """What the manage API shows: never the key, nor the secret's name."""
        return self.model_dump(mode="json", include={"tenant", "data_centre", "created_at", "updated_at"})


class Connections:
    def __init__(
        self, storage: Storage, secrets: SecretStore, audit: AuditLog, clock: Clock, apis: MailchimpApis
    ) -> None:
        self._storage = storage
        self._secrets = secrets
        self._audit = audit
        self._clock = clock
        self._apis = apis

    def put(self, tenant: Tenant, change: ConnectionIn) -> tuple[Connection, bool]:
        """The key under a new secret name first, then the document, then the previous key goes."""
        before = self._stored(tenant.id)
        existing = before if before is not None and before.tenant_generation == tenant.generation else None
        now = self._clock.now()
        key = change.api_key.get_secret_value()
        secret_name = tenant_secret_name(tenant.id, f"mailchimp-{token_hex(4)}")
        self._secrets.set(secret_name, key)
        connection = Connection(
            tenant=tenant.id,
            tenant_generation=tenant.generation,
            data_centre=data_centre(key),
            secret_name=secret_name,
            created_at=existing.created_at if existing else now,
            updated_at=now,
        )
        try:
            with storage_errors():
                self._storage.container(REGISTRY).upload_blob(
                    connection_blob(tenant.id),
                    connection.model_dump_json().encode(),
                    overwrite=True,
                    content_settings=JSON_CONTENT,
                )
        except Exception:
            with contextlib.suppress(StorageUnavailable):
                self._secrets.delete(secret_name)
            raise
        if before is not None:
            self._forget_secret(before.secret_name)
        change_kind = "replaced" if existing else "created"
        self._audit.append(tenant.id, "mailchimp_connection", change=change_kind, data_centre=connection.data_centre)
        return connection, existing is None

    def get(self, tenant: Tenant) -> Connection | None:
        connection = self._stored(tenant.id)
        return connection if connection is not None and connection.tenant_generation == tenant.generation else None

    def remove(self, tenant_id: str) -> bool:
        connection = self._stored(tenant_id)
        if connection is None:
            return False
        with contextlib.suppress(ResourceNotFoundError), storage_errors(ResourceNotFoundError):
            self._storage.container(REGISTRY).delete_blob(connection_blob(tenant_id))
        self._forget_secret(connection.secret_name)
        self._audit.append(tenant_id, "mailchimp_connection", change="deleted")
        return True

    def api(self, connection: Connection) -> MailchimpApi | None:
        """The API of the connection's key, or None when the secret store no longer has it."""
        key = self._secrets.get(connection.secret_name)
        return self._apis.for_key(key) if key is not None else None

    def _stored(self, tenant_id: str) -> Connection | None:
        body, _ = self._storage.read_json(REGISTRY, connection_blob(tenant_id))
        return Connection.model_validate(body) if body is not None else None

    def _forget_secret(self, name: str) -> None:
        with contextlib.suppress(StorageUnavailable):
            self._secrets.delete(name)
