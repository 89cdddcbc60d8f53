"""Tenant API keys on tenant endpoints: `Authorization: Bearer <key>`, compared in constant time."""

from __future__ import annotations

from shared.core.errors import Forbidden, NotFound, Unauthorized
from shared.core.ids import check_id
from shared.core.keys import api_key_matches
from shared.registry.models import Tenant
from shared.registry.store import Registry


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def authenticate_tenant(
    registry: Registry, tenant_id: str, authorization: str | None, *, fresh: bool = False
) -> Tenant:
    """The tenant whose key was presented; an unknown tenant and a wrong key look alike (403).

    `fresh`: checked against the tenant as stored now; otherwise as cached, so a rotated key keeps working on
    other instances until their cache expires (PACKCLOUD_REGISTRY_CACHE_TTL_SECONDS)."""
    check_id("tenant", tenant_id)
    token = bearer_token(authorization)
    if token is None:
        raise Unauthorized("missing_key", "send the tenant API key as 'Authorization: Bearer <key>'")
    tenant = registry.get_tenant(tenant_id, fresh=fresh)
    if tenant is None:
        # Hash anyway so that timing does not tell which tenant ids exist.
        api_key_matches(token, "0" * 64)
        raise Forbidden("forbidden", "the key is not valid for this tenant")
    if not api_key_matches(token, tenant.api_key_sha256):
        raise Forbidden("forbidden", "the key is not valid for this tenant")
    return tenant


def require_tenant(registry: Registry, tenant_id: str, *, fresh: bool = False) -> Tenant:
    check_id("tenant", tenant_id)
    tenant = registry.get_tenant(tenant_id, fresh=fresh)
    if tenant is None:
        raise NotFound("unknown_tenant", "no such tenant in this deployment")
    return tenant
