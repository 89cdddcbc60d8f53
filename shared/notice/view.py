"""Finding the notice of a dataset for an anonymous reader: the cached registry only, no other storage read.

Unknown tenant, unknown dataset and malformed ids are one and the same 404, so a reader learns nothing about
which tenants or datasets exist. The registry is per region: a tenant homed in another region has no documents
here, and is a 404 too, except where this deployment knows where it lives (the home deployment's registrations,
or a tenant document of another region), which answers 421 with the region's URL, as every tenant route does.
"""

from __future__ import annotations

from shared.core.errors import NotFound
from shared.core.ids import is_valid_id
from shared.core.settings import Region
from shared.notice.content import Notice, build_notice
from shared.notice.languages import choose_language
from shared.registry.residency import Residency
from shared.registry.store import Registry


def notice_not_found() -> NotFound:
    return NotFound("not_found", "there is no privacy notice at this address")


class Notices:
    def __init__(self, registry: Registry, residency: Residency, region: Region) -> None:
        self._registry = registry
        self._residency = residency
        self._region = region

    def find(self, tenant_id: str, dataset_id: str, accept_language: str | None) -> Notice:
        """The dataset's notice in the reader's language; NotFound (always the same) or Misdirected (421)."""
        if not (is_valid_id(tenant_id) and is_valid_id(dataset_id)):
            raise notice_not_found()
        tenant = self._registry.get_tenant(tenant_id)
        if tenant is None:
            self._residency.misdirect_unknown(tenant_id)
            raise notice_not_found()
        self._residency.require_home(tenant)
        doc = self._registry.get_dataset(tenant.id, dataset_id)
        if doc is None:
            raise notice_not_found()
        languages = doc.notice.languages if doc.notice is not None else {}
        return build_notice(doc, tenant.region, choose_language(accept_language, languages))
