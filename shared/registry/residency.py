"""The region rule: a tenant's data is read and written only in the region it is homed in.

A request for a tenant homed in another region is answered 421 Misdirected Request with that region's base
URL, before anything is read or stored; the home deployment also knows where every tenant it registered
lives, so it answers 421 (not 404) for them before any key check (a key can only be checked where it lives).
"""

from __future__ import annotations

from shared.core.errors import Misdirected
from shared.core.settings import Region, Settings
from shared.registry.models import Tenant
from shared.registry.store import Registry


class Residency:
    def __init__(self, registry: Registry, settings: Settings) -> None:
        self._registry = registry
        self._settings = settings

    def require_home(self, tenant: Tenant) -> None:
        if tenant.region != self._settings.region:
            raise self._misdirected(tenant.region)

    def misdirect_unknown(self, tenant_id: str) -> None:
        """A tenant unknown here that this (home) deployment registered in another region: 421, to go there."""
        if "registration" not in self._settings.role:
            return  # only the home deployment keeps registrations: elsewhere, no read for an unknown id
        region = self._registry.registered_region(tenant_id)
        if region is not None and region != self._settings.region:
            raise self._misdirected(region)

    def _misdirected(self, region: Region) -> Misdirected:
        return Misdirected(
            "misdirected",
            f"this tenant's data is kept in region {region}; send the request there",
            region=region,
            base_url=self._settings.region_url(region),
        )
