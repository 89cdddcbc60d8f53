"""The tenant's SendGrid verification key, managed in its region (function key): set, shown as present, removed.

The key is kept as every tenant credential is, its value in this region's secret store only
(shared/storage/email_keys.py checks it and keeps it); the audit trail records that it changed, never the key. The
verifier cache of this instance forgets it at once; other instances read it again within a minute
(shared/emailevents/webhook.py).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from shared.core.errors import NotFound, field_problems
from shared.emailevents.webhook import VerificationKeys
from shared.registry.models import Tenant
from shared.storage.email_keys import MAX_KEY_CHARS, VerificationKeyStore


class VerificationKeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    verification_key: SecretStr = Field(
        min_length=1, max_length=MAX_KEY_CHARS, description="the signed Event Webhook's verification key"
    )


class KeyAdmin:
    def __init__(self, store: VerificationKeyStore, keys: VerificationKeys) -> None:
        self._store = store
        self._keys = keys

    def put(self, tenant: Tenant, change: VerificationKeyIn) -> bool:
        """Kept (audited by the store: created or replaced); True when the tenant had none."""
        try:
            created = self._store.put(tenant, change.verification_key.get_secret_value())
        except ValueError as reason:
            problem = {"field": "verification_key", "reason": str(reason)}
            raise field_problems("invalid_key", "invalid verification key", [problem]) from None
        self._keys.forget(tenant)
        return created

    def require(self, tenant: Tenant) -> None:
        if self._store.get(tenant) is None:
            raise NotFound("no_verification_key", "the tenant has no SendGrid verification key")

    def delete(self, tenant: Tenant) -> None:
        """This generation's key goes (audited), and whatever an earlier one left; 404 when this one has none."""
        had = self._store.get(tenant) is not None
        self._store.delete(tenant.id)
        self._keys.forget(tenant)
        if not had:
            raise NotFound("no_verification_key", "the tenant has no SendGrid verification key")
