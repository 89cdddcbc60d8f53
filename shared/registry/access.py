"""What every tenant endpoint checks first: the tenant key, the home region, and the dataset; and what every
operator route of a tenant's configuration checks first: the tenant, and its home region."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from shared.core.errors import NotFound
from shared.core.ids import check_id
from shared.registry.auth import authenticate_tenant, require_tenant
from shared.registry.datasets import require_dataset
from shared.registry.models import DatasetDoc, Tenant
from shared.registry.residency import Residency
from shared.registry.store import Registry


class Gatekeepers(Protocol):
    """What the check needs (the composition root, shared/services.py, has both); named here, so that this
    layer never imports the layer above it."""

    @property
    def registry(self) -> Registry: ...

    @property
    def residency(self) -> Residency: ...


@dataclass(frozen=True)
class Access:
    tenant: Tenant
    dataset: DatasetDoc | None

    @property
    def named_dataset(self) -> DatasetDoc:
        """The dataset of a check that was given a dataset id (where it was unknown the check was a 404)."""
        if self.dataset is None:
            raise NotFound("unknown_dataset", "the tenant has no dataset with this id")
        return self.dataset


def tenant_access(
    services: Gatekeepers,
    tenant_id: str,
    authorization: str | None,
    dataset_id: str | None = None,
    *,
    fresh: bool = False,
) -> Access:
    """Key first (401/403), then region (421, nothing read or written), then the dataset (404).

    A tenant this deployment does not hold but registered elsewhere (the home deployment) is a 421 at once:
    its key can only be checked where it is homed. `fresh`: the tenant and dataset as stored now, not as
    cached (routes that hand out personal data: a rotated key or a re-created tenant counts at once).
    """
    check_id("tenant", tenant_id)
    if services.registry.get_tenant(tenant_id) is None:
        services.residency.misdirect_unknown(tenant_id)
    tenant = authenticate_tenant(services.registry, tenant_id, authorization, fresh=fresh)
    services.residency.require_home(tenant)
    if dataset_id is None:
        return Access(tenant, None)
    check_id("dataset", dataset_id)
    return Access(tenant, require_dataset(services.registry, tenant.id, dataset_id, fresh=fresh))


def home_tenant(services: Gatekeepers, tenant_id: str) -> Tenant:
    """The tenant of an operator route (function key) that reads or changes what the tenant has here: 400 for a
    malformed id, 404 when this deployment holds no such tenant, 421 naming its home region when that is another.

    Every method is the 421 elsewhere, also a GET or DELETE: its configuration, datasets and secrets exist only
    where its data is, so a 404 "it has none" would send the operator astray. Fresh: what is configured belongs
    to one generation of the tenant, and a tenant deleted on another instance counts at once.
    """
    tenant = require_tenant(services.registry, tenant_id, fresh=True)
    services.residency.require_home(tenant)
    return tenant
