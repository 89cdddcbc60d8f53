"""Creating, changing and deleting a tenant: what the manage API and the registration engine both do."""

from __future__ import annotations

from typing import Any

from shared.audit import AuditLog
from shared.keys import signing_key_text
from shared.models import TenantIn
from shared.registry import Registry


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
        "signing_key": signing_key_text(master_key, tenant.id, tenant.signing_key_version),
    }
    return created, True


def delete_tenant(registry: Registry, audit: AuditLog, tenant_id: str) -> bool:
    """The tenant, its datasets, records and state; its audit entries stay."""
    if not registry.delete_tenant(tenant_id):
        return False
    audit.append(tenant_id, "tenant", change="deleted")
    return True
