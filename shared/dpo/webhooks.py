"""A tenant's DPO webhook: its URL (checked by shared/dpo/guard.py) and its signing secret.

The secret is generated here, shown once in the manage API's answer, and kept in the secret store only, under a
name never used before (`pc-<tenant>--dpo-webhook-<random>`, as delivery targets do: Key Vault keeps deleted names);
the document in `registry/dpo/webhooks/{tenant}.json` holds the secret's name. Setting the webhook again makes a new
secret. A webhook belongs to one generation of its tenant: a tenant deleted and created again has none.
"""

from __future__ import annotations

import contextlib
import secrets as random_secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from pydantic import BaseModel, ConfigDict, Field

from shared.core.clock import Clock
from shared.core.errors import StorageUnavailable, Unprocessable
from shared.dpo.guard import Network, Refused, Resolver, resolve, system_resolver, webhook_url
from shared.registry.models import Tenant
from shared.storage.audit import AuditLog
from shared.storage.blobs import JSON_CONTENT, REGISTRY, Storage, storage_errors
from shared.storage.secrets import SecretStore, tenant_secret_name

WEBHOOKS_PREFIX = "dpo/webhooks/"
MAX_URL = 2048
SECRET_PREFIX = "whsec_"  # noqa: S105  # the prefix of generated secrets, as Stripe marks its own


def webhook_blob(tenant: str) -> str:
    return f"{WEBHOOKS_PREFIX}{tenant}.json"


class WebhookIn(BaseModel):
    """`PUT /api/manage/tenants/{tenant}/dpo-webhook`."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    url: str = Field(min_length=9, max_length=MAX_URL, description="https URL on a public address")


class Webhook(BaseModel):
    """As stored: never the secret, only its name in the secret store."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant: str
    tenant_generation: str
    url: str
    secret_name: str
    version: str = Field(pattern=r"^[0-9a-f]{16}$")
    created_at: datetime
    updated_at: datetime

    def public(self) -> dict[str, Any]:
        return self.model_dump(mode="json", include={"url", "version", "created_at", "updated_at"})


class Webhooks:
    def __init__(
        self,
        storage: Storage,
        secrets: SecretStore,
        audit: AuditLog,
        clock: Clock,
        *,
        dev_networks: Sequence[Network] = (),
        resolver: Resolver = system_resolver,
    ) -> None:
        self._storage = storage
        self._secrets = secrets
        self._audit = audit
        self._clock = clock
        self.dev_networks = tuple(dev_networks)
        self.resolver = resolver

    def check_url(self, text: str) -> str:
        """The URL, when it is https and every address its host has now is public; else 422 naming the rule."""
        try:
            url = webhook_url(text)
            resolve(url, dev_networks=self.dev_networks, resolver=self.resolver)
        except Refused as reason:
            raise Unprocessable(
                "invalid_webhook",
                f"invalid DPO webhook: url {reason}",
                errors=[{"field": "url", "reason": str(reason)}],
            ) from None
        return str(url)

    def put(self, tenant: Tenant, change: WebhookIn) -> tuple[Webhook, str, bool]:
        """Store the webhook with a new secret: the webhook, the secret (to show once), whether it is new."""
        url = self.check_url(change.url)
        before = self._stored(tenant.id)
        existing = before if before is not None and before.tenant_generation == tenant.generation else None
        now = self._clock.now()
        secret = SECRET_PREFIX + random_secrets.token_urlsafe(32)
        secret_name = tenant_secret_name(tenant.id, f"dpo-webhook-{random_secrets.token_hex(4)}")
        self._secrets.set(secret_name, secret)
        webhook = Webhook(
            tenant=tenant.id,
            tenant_generation=tenant.generation,
            url=url,
            secret_name=secret_name,
            version=random_secrets.token_hex(8),
            created_at=existing.created_at if existing else now,
            updated_at=now,
        )
        try:
            with storage_errors():
                self._storage.container(REGISTRY).upload_blob(
                    webhook_blob(tenant.id),
                    webhook.model_dump_json().encode(),
                    overwrite=True,
                    content_settings=JSON_CONTENT,
                )
        except Exception:
            self._forget_secret(secret_name)
            raise
        if before is not None:
            self._forget_secret(before.secret_name)
        # The host only: a webhook's path may carry the receiver's own token.
        self._audit.append(
            tenant.id,
            "dpo_webhook",
            change="replaced" if existing else "created",
            host=webhook_url(url).host,
            version=webhook.version,
        )
        return webhook, secret, existing is None

    def get(self, tenant: Tenant) -> Webhook | None:
        webhook = self._stored(tenant.id)
        return webhook if webhook is not None and webhook.tenant_generation == tenant.generation else None

    def delete(self, tenant_id: str, *, audited: bool = False) -> bool:
        """The document and its secret (events are the outbox's: shared/dpo/notifier.py); `audited`: the operator's
        deletion, with its audit entry (a webhook that outlived its tenant goes without one)."""
        webhook = self._stored(tenant_id)
        if webhook is None:
            return False
        with contextlib.suppress(ResourceNotFoundError), storage_errors(ResourceNotFoundError):
            self._storage.container(REGISTRY).delete_blob(webhook_blob(tenant_id))
        self._forget_secret(webhook.secret_name)
        if audited:
            self._audit.append(tenant_id, "dpo_webhook", change="deleted")
        return True

    def secret(self, webhook: Webhook) -> str | None:
        return self._secrets.get(webhook.secret_name)

    def tenants(self) -> list[str]:
        """Every tenant with a webhook document: one listing."""
        with storage_errors():
            names = self._storage.container(REGISTRY).list_blobs(name_starts_with=WEBHOOKS_PREFIX)
            return [blob.name[len(WEBHOOKS_PREFIX) : -len(".json")] for blob in names]

    def _stored(self, tenant_id: str) -> Webhook | None:
        body, _ = self._storage.read_json(REGISTRY, webhook_blob(tenant_id))
        return Webhook.model_validate(body) if body is not None else None

    def _forget_secret(self, name: str) -> None:
        """Best effort: a secret left behind is named by no document."""
        with contextlib.suppress(StorageUnavailable):
            self._secrets.delete(name)
