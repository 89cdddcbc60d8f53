"""The one composition root: every service a function or a command needs is built here, once per process, on
first use (not at import). Nothing below this module imports it (the import contract in pyproject.toml).

Only what the capture hot path needs is imported at the top; every other service is imported inside its cached
accessor, so that a cold start loads no code that its first request does not run (bench/cold_start.py)."""

from __future__ import annotations

import atexit
import threading
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from shared.capture.counts import CaptureCounts
from shared.capture.store import CaptureStore
from shared.core.clock import Clock, SystemClock
from shared.core.settings import Settings, get_settings
from shared.registry.residency import Residency
from shared.registry.store import Registry
from shared.storage.audit import AuditLog
from shared.storage.blobs import Storage

if TYPE_CHECKING:
    import requests

    from shared.autonumber.sequences import SequenceStore
    from shared.dataverse.targets import Targets
    from shared.geologin.signins import GeoLogins
    from shared.lifecycle.dataverse_push import Deliverer
    from shared.lifecycle.delivery import Delivery
    from shared.lifecycle.purge import Purger
    from shared.lifecycle.subject_requests import SubjectRequests
    from shared.registration.engine import Registrations
    from shared.storage.secrets import SecretStore
    from shared.webform.intake import FormIntake


@dataclass(frozen=True)
class Services:
    settings: Settings
    clock: Clock
    storage: Storage
    registry: Registry
    residency: Residency
    capture: CaptureStore
    audit: AuditLog
    counts: CaptureCounts

    @classmethod
    def build(cls, settings: Settings, clock: Clock | None = None, storage: Storage | None = None) -> Services:
        clock = clock or SystemClock()
        storage = storage or Storage.from_settings(settings)
        registry = Registry(storage, clock, settings.region, settings.registry_cache_ttl_seconds)
        audit = AuditLog(storage, clock)
        counts = CaptureCounts(audit)
        residency = Residency(registry, settings)
        capture = CaptureStore(storage, registry, settings, clock, counts, residency)
        return cls(settings, clock, storage, registry, residency, capture, audit, counts)

    @cached_property
    def forms(self) -> FormIntake:
        """Web-form submissions."""
        from shared.webform.intake import FormIntake

        return FormIntake(self.capture, self.storage, self.settings, self.clock)

    @cached_property
    def geologins(self) -> GeoLogins:
        """Sign-ins and their locations (opens the configured City database, if any)."""
        from shared.geologin.locator import Locator
        from shared.geologin.signins import GeoLogins

        locator = Locator(self.settings.geo_city_db_path)
        return GeoLogins(self.capture, self.storage, locator, self.settings, self.clock)

    @cached_property
    def registrations(self) -> Registrations:
        """The registration engine of the home deployment, built on first use."""
        from shared.registration.engine import Registrations, RegistrationStore
        from shared.registration.provisioning import Provisioner

        secrets = self.secrets
        provisioner = Provisioner(self.settings, self.registry, self.audit, secrets, targets=self.delivery_targets)
        store = RegistrationStore(self.storage, self.registry)
        return Registrations(store, secrets, provisioner, self.audit, self.settings, self.clock)

    @cached_property
    def sequences(self) -> SequenceStore:
        """Auto-number sequences and their counters."""
        from shared.autonumber.sequences import SequenceStore

        return SequenceStore(self.storage, self.clock, self.settings.master_key.get_secret_value())

    @cached_property
    def delivery(self) -> Delivery:
        """The /sync feed and its acknowledgements."""
        from shared.lifecycle.delivery import Delivery

        return Delivery(self.storage, self.audit, self.clock)

    @cached_property
    def secrets(self) -> SecretStore:
        """Key Vault in Azure, the private local file otherwise."""
        from shared.storage.secrets import secret_store

        return secret_store(self.settings)

    @cached_property
    def delivery_targets(self) -> Targets:
        """Each tenant's Dynamics 365 organisation and application (secrets in the secret store)."""
        from shared.dataverse.targets import Targets

        return Targets(self.storage, self.secrets, self.audit, self.clock, self.settings)

    @cached_property
    def dataverse_session(self) -> requests.Session:
        """The connection pool to Entra ID and the Dynamics 365 organisations, shared by delivery and its check."""
        from shared.dataverse.client import make_session

        return make_session()

    @cached_property
    def deliverer(self) -> Deliverer:
        """The push into Dataverse; built once, so that tokens are kept until they expire."""
        return self.push_deliverer(session=self.dataverse_session)

    def push_deliverer(self, **options: Any) -> Deliverer:
        """A deliverer of its own (tests and benchmarks set its budget, waits and HTTP session)."""
        from shared.lifecycle.dataverse_push import Deliverer

        return Deliverer(
            self.storage,
            self.registry,
            self.audit,
            self.clock,
            self.delivery_targets,
            self.delivery,
            region=self.settings.region,
            batch_size=self.settings.delivery_batch_size,
            **options,
        )

    def subject_requests(self, page_items: int | None = None) -> SubjectRequests:
        """Data-subject requests; each call reads or deletes at most `page_items` (tests take a few)."""
        from shared.lifecycle.subject_requests import PAGE_ITEMS, SubjectRequests

        master_key = self.settings.master_key.get_secret_value()
        pages = PAGE_ITEMS if page_items is None else page_items
        return SubjectRequests(self.storage, self.registry, self.audit, master_key, page_items=pages)

    def purger(self, budget_s: float | None = None) -> Purger:
        from shared.lifecycle.purge import Purger

        options = {} if budget_s is None else {"budget_s": budget_s}
        return Purger(
            self.storage,
            self.registry,
            self.audit,
            self.clock,
            region=self.settings.region,
            audit_retention_days=self.settings.audit_retention_days,
            **options,
        )


_lock = threading.Lock()
_services: Services | None = None


def get_services() -> Services:
    global _services
    if _services is None:
        with _lock:
            if _services is None:
                _services = Services.build(get_settings())
                # Counts of the last hour go to the audit trail when the instance shuts down.
                atexit.register(_services.counts.flush)
    return _services
