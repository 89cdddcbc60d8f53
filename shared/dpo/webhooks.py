"""A tenant's DPO webhook: its URL (checked by shared/dpo/guard.py) and its signing secret.

The secret is generated here, shown once in the manage API's answer, and kept in the secret store only, under a
name never used before (`pc-<tenant>--dpo-webhook-<random>`, as delivery targets do: Key Vault keeps deleted names);
the document in `registry/dpo/webhooks/{tenant}.json` holds the secret's name. Setting the webhook again makes a new
secret. A webhook belongs to one generation of its tenant: a tenant deleted and created again has none.
"""

from __future__ import annotations

import secrets as random_secrets
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.core.clock import Clock
from shared.core.errors import Unprocessable
from shared.dpo.guard import Network, Refused, Resolver, resolve, system_resolver, webhook_url
from shared.registry.models import Tenant
from shared.storage.audit import AuditLog
from shared.storage.blobs import Storage
from shared.storage.secrets import SecretStore
from shared.storage.tenant_credentials import CredentialDocument, CredentialSpec, TenantCredentials

WEBHOOKS_PREFIX = "dpo/webhooks/"
MAX_URL = 2048
SECRET_PREFIX = "whsec_"  # noqa: S105  # the prefix of generated secrets, as Stripe marks its own


def webhook_blob(tenant: str) -> str:
    return f"{WEBHOOKS_PREFIX}{tenant}.json"


class WebhookIn(BaseModel):
    """`PUT /api/manage/tenants/{tenant}/dpo-webhook`."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    url: str = Field(min_length=9, max_length=MAX_URL, description="https URL on a public address")


class Webhook(CredentialDocument):
    """As stored: never the secret, only its name in the secret store."""

    url: str
    version: str = Field(pattern=r"^[0-9a-f]{16}$")

    def public(self) -> dict[str, Any]:
        return self.model_dump(mode="json", include={"url", "version", "created_at", "updated_at"})


WEBHOOKS = CredentialSpec(Webhook, WEBHOOKS_PREFIX, purpose="dpo-webhook", audit="dpo_webhook")


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
        self._docs = TenantCredentials(storage, secrets, audit, clock, WEBHOOKS)
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
        secret = SECRET_PREFIX + random_secrets.token_urlsafe(32)
        fields = {"url": url, "version": random_secrets.token_hex(8)}

        def facts(webhook: Webhook) -> dict[str, Any]:
            # The host only: a webhook's path may carry the receiver's own token.
            return {"host": webhook_url(url).host, "version": webhook.version}

        webhook, created = self._docs.put(tenant, secret, fields, facts)
        return webhook, secret, created

    def get(self, tenant: Tenant) -> Webhook | None:
        return self._docs.get(tenant)

    def delete(self, tenant_id: str, *, audited: bool = False) -> bool:
        """The document and its secret (events are the outbox's: shared/dpo/notifier.py); `audited`: the operator's
        deletion, with its audit entry (a webhook that outlived its tenant goes without one)."""
        return self._docs.delete(tenant_id, audited=audited)

    def secret(self, webhook: Webhook) -> str | None:
        return self._docs.secret(webhook)

    def tenants(self) -> list[str]:
        """Every tenant with a webhook document: one listing."""
        return self._docs.tenants()
