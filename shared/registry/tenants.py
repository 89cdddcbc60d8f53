"""Creating, changing and deleting a tenant: what the manage API and the registration engine both do."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from shared.core.keys import hash_api_key, new_api_key, signing_key_text
from shared.registry.models import KeyRotation, Tenant, TenantIn
from shared.registry.store import Registry
from shared.storage.audit import AuditLog


def put_tenant(
    registry: Registry, audit: AuditLog, master_key: str, tenant_id: str, change: TenantIn
) -> tuple[dict[str, Any], bool]:
    """The tenant as shown, and whether it was created; a created tenant's answer holds its keys, once."""
    tenant, api_key = registry.put_tenant(tenant_id, change)
    audit.append(tenant_id, "tenant", change="updated" if api_key is None else "created", region=tenant.region)
    if api_key is None:
        return tenant.public(), False
    created = {
        **tenant.public(),
        # Shown once: only the API key's hash is kept, and the signing key is not stored at all.
        "api_key": api_key,
        "signing_key": current_signing_key(master_key, tenant),
    }
    return created, True


def current_signing_key(master_key: str, tenant: Tenant) -> str:
    return signing_key_text(master_key, tenant.id, tenant.generation, tenant.signing_key_version)


def rotate_keys(
    registry: Registry, audit: AuditLog, master_key: str, tenant_id: str, rotation: KeyRotation
) -> dict[str, Any]:
    """Replace the API key and/or the signing key; the answer holds the new keys, the only time they are shown.

    The old API key stops at once (only the new one's hash is kept). The old signing key keeps counting for
    `signing_key_grace_days`, so e-mail links already sent count until they expire, and never longer.
    """
    api_key = new_api_key() if rotation.api_key else None
    grace = timedelta(days=rotation.signing_key_grace_days)

    def rotated(tenant: Tenant, now: datetime) -> Tenant:
        if api_key is not None:
            tenant = tenant.model_copy(update={"api_key_sha256": hash_api_key(api_key), "updated_at": now})
        return tenant.with_rotated_signing_key(now, grace) if rotation.signing_key else tenant

    tenant = registry.update_tenant(tenant_id, rotated)
    # Which keys and the grace, never a key or its hash.
    audit.append(
        tenant_id,
        "keys",
        change="rotated",
        api_key=rotation.api_key,
        signing_key_version=tenant.signing_key_version if rotation.signing_key else None,
        signing_key_grace_days=rotation.signing_key_grace_days if rotation.signing_key else None,
    )
    shown: dict[str, Any] = tenant.public()
    if api_key is not None:
        shown["api_key"] = api_key
    if rotation.signing_key:
        shown["signing_key"] = current_signing_key(master_key, tenant)
    return shown


def delete_tenant(registry: Registry, audit: AuditLog, tenant_id: str) -> bool:
    """The tenant, its datasets, records and state; its audit entries stay."""
    if not registry.delete_tenant(tenant_id):
        return False
    audit.append(tenant_id, "tenant", change="deleted")
    return True
