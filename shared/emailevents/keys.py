"""The tenant's SendGrid verification key, managed in its region (function key): set, shown as present, removed.

The key lives only in this region's secret store (shared/storage/email_keys.py names it and checks it); the audit
trail records that it changed, never the key. The verifier cache of this instance forgets it at once; other
instances read it again within a minute (shared/emailevents/webhook.py).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from shared.core.errors import NotFound, field_problems
from shared.emailevents.webhook import VerificationKeys
from shared.registry.models import Tenant
from shared.storage.audit import AuditLog
from shared.storage.email_keys import AUDIT_KIND, MAX_KEY_CHARS, store_verification_key, verification_key_secret
from shared.storage.secrets import SecretStore


class VerificationKeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    verification_key: SecretStr = Field(
        min_length=1, max_length=MAX_KEY_CHARS, description="the signed Event Webhook's verification key"
    )


class KeyAdmin:
    def __init__(self, secrets: SecretStore, keys: VerificationKeys, audit: AuditLog) -> None:
        self._secrets = secrets
        self._keys = keys
        self._audit = audit

    def put(self, tenant: Tenant, change: VerificationKeyIn) -> None:
        try:
            store_verification_key(self._secrets, tenant.id, change.verification_key.get_secret_value())
        except ValueError as reason:
            problem = {"field": "verification_key", "reason": str(reason)}
            raise field_problems("invalid_key", "invalid verification key", [problem]) from None
        self._keys.forget(tenant.id)
        self._audit.append(tenant.id, AUDIT_KIND, change="set")

    def require(self, tenant: Tenant) -> None:
        if self._secrets.get(verification_key_secret(tenant.id)) is None:
            raise NotFound("no_verification_key", "the tenant has no SendGrid verification key")

    def delete(self, tenant: Tenant) -> None:
        if not self._secrets.delete(verification_key_secret(tenant.id)):
            raise NotFound("no_verification_key", "the tenant has no SendGrid verification key")
        self._keys.forget(tenant.id)
        self._audit.append(tenant.id, AUDIT_KIND, change="deleted")
