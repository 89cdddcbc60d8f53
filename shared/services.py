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

    from shared.attachments.config import AttachmentJobs
    from shared.attachments.mover import Mover
    from shared.attachments.progress import Progress
    from shared.autonumber.sequences import SequenceStore
    from shared.dataverse.targets import Targets
    from shared.dpo.notifier import Notifier
    from shared.emailevents.intake import EmailEvents
    from shared.geologin.signins import GeoLogins
    from shared.lifecycle.dataverse_push import Deliverer
    from shared.lifecycle.delivery import Delivery
    from shared.lifecycle.purge import Purger
    from shared.lifecycle.subject_requests import SubjectRequests
    from shared.links.tracked import Links
    from shared.mailchimp.service import Mailchimp
    from shared.notice.view import Notices
    from shared.registration.engine import Registrations
    from shared.registry.models import Tenant
    from shared.registry.sms_account import SmsAccounts
    from shared.sms.messages import SmsService
    from shared.storage.email_keys import VerificationKeyStore
    from shared.storage.secrets import SecretStore
    from shared.storage.tenant_credentials import TenantCredentialStore
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

    # -- capabilities --------------------------------------------------------------------------------

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
    def sequences(self) -> SequenceStore:
        """Auto-number sequences and their counters."""
        from shared.autonumber.sequences import SequenceStore

        return SequenceStore(self.storage, self.clock, self.settings.master_key.get_secret_value())

    @cached_property
    def notices(self) -> Notices:
        """The public privacy notices: the cached registry only."""
        from shared.notice.view import Notices

        return Notices(self.registry, self.residency, self.settings.region)

    @cached_property
    def sms_accounts(self) -> SmsAccounts:
        """Each tenant's Twilio account: its document, and its secrets in the secret store."""
        from shared.registry.sms_account import SmsAccounts

        return SmsAccounts(self.storage, self.secrets, self.audit, self.clock)

    @cached_property
    def sms(self) -> SmsService:
        """PowerSMS: sends through Twilio, its webhooks, opt-outs."""
        from shared.sms.gateway import TwilioGateway
        from shared.sms.messages import SmsService

        return SmsService(self.capture, self.storage, self.sms_accounts, TwilioGateway(), self.settings, self.clock)

    @cached_property
    def links(self) -> Links:
        """Tracked links: their creation, and the redirect that records a visit."""
        from shared.links.tracked import Links

        return Links(self.capture, self.storage, self.registry, self.settings, self.clock)

    @cached_property
    def email_events(self) -> EmailEvents:
        """SendGrid's signed Event Webhook batches, verified with the tenants' keys (`email_keys`)."""
        from shared.emailevents.intake import EmailEvents

        return EmailEvents(self.capture, self.storage, self.email_keys, self.settings, self.clock)

    @cached_property
    def email_keys(self) -> VerificationKeyStore:
        """Each tenant's SendGrid verification key: its document, and the key in the secret store."""
        from shared.storage.email_keys import VerificationKeyStore

        return VerificationKeyStore(self.storage, self.secrets, self.audit, self.clock)

    @cached_property
    def mailchimp(self) -> Mailchimp:
        """PowerMailChimp: one connection pool per Mailchimp API key for the life of the process."""
        from shared.mailchimp.activity import ActivityReader
        from shared.mailchimp.client import MailchimpApis
        from shared.mailchimp.connection import Connections
        from shared.mailchimp.service import Mailchimp
        from shared.mailchimp.webhook import WebhookTokens

        apis = MailchimpApis(self.settings.mailchimp_api_base)
        master_key = self.settings.master_key.get_secret_value()
        return Mailchimp(
            Connections(self.storage, self.secrets, self.audit, self.clock, apis),
            WebhookTokens(self.storage, self.audit, self.clock),
            ActivityReader(self.storage, self.capture, self.clock, master_key),
            self.registry,
            self.capture,
            self.audit,
            self.settings.region,
        )

    # -- tenants' connections and the registration engine ---------------------------------------------

    @cached_property
    def secrets(self) -> SecretStore:
        """Key Vault in Azure, the private local file otherwise."""
        from shared.storage.secrets import secret_store

        return secret_store(self.settings)

    @cached_property
    def registrations(self) -> Registrations:
        """The registration engine of the home deployment, built on first use."""
        from shared.registration.engine import Registrations, RegistrationStore
        from shared.registration.provisioning import Provisioner

        secrets = self.secrets
        provisioner = Provisioner(
            self.settings,
            self.registry,
            self.audit,
            secrets,
            targets=self.delivery_targets,
            sms_accounts=self.sms_accounts,
            email_keys=self.email_keys,
            mailchimp_keys=self._give_mailchimp_key,
            forget_credentials=self.forget_tenant_credentials,
        )
        store = RegistrationStore(self.storage, self.registry)
        return Registrations(store, secrets, provisioner, self.audit, self.settings, self.clock)

    def tenant_credential_stores(self) -> tuple[TenantCredentialStore, ...]:
        """Every store of what a tenant is given: the delivery target, the Twilio account, the e-mail events key,
        the Mailchimp connection and the DPO webhook (with its waiting events), each with its secret."""
        return (self.delivery_targets, self.sms_accounts, self.email_keys, self.mailchimp.connections, self.dpo)

    def forget_tenant_credentials(self, tenant_id: str) -> None:
        """What a tenant was given besides its data goes with it: every credential store's, and the attachment job
        with its cursor and markers. One list, for the manage API's delete and the registration engine's
        deregistration."""
        for store in self.tenant_credential_stores():
            store.forget(tenant_id)
        self.forget_attachments(tenant_id)

    def _give_mailchimp_key(self, tenant: Tenant, key: str) -> None:
        from pydantic import SecretStr

        from shared.mailchimp.connection import ConnectionIn

        self.mailchimp.connections.put(tenant, ConnectionIn(api_key=SecretStr(key)))

    # -- delivery into Dynamics 365, and attachments into SharePoint ----------------------------------

    @cached_property
    def delivery(self) -> Delivery:
        """The /sync feed and its acknowledgements."""
        from shared.lifecycle.delivery import Delivery

        return Delivery(self.storage, self.audit, self.clock)

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

        options.setdefault("events", self.dpo)
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

    @cached_property
    def attachment_jobs(self) -> AttachmentJobs:
        """Each tenant's attachment job (no secret: Graph signs in as the delivery target's application)."""
        from shared.attachments.config import AttachmentJobs

        return AttachmentJobs(self.storage, self.delivery_targets, self.audit, self.clock)

    @cached_property
    def attachment_progress(self) -> Progress:
        """The mover's cursors and per-file markers (ids and sizes only)."""
        from shared.attachments.progress import Progress

        return Progress(self.storage, self.clock)

    @cached_property
    def attachment_mover(self) -> Mover:
        """The attachment mover; built once, so that tokens are kept until they expire."""
        return self.mover()

    def mover(self, **options: Any) -> Mover:
        """A mover of its own (tests and benchmarks set its budget, waits and chunk size)."""
        from shared.attachments.mover import Mover

        options.setdefault("session", self.dataverse_session)
        return Mover(
            self.registry,
            self.attachment_jobs,
            self.delivery_targets,
            self.attachment_progress,
            self.audit,
            self.clock,
            region=self.settings.region,
            graph_url=str(self.settings.graph_url),
            **options,
        )

    def attachments_report(self, tenant: Tenant) -> dict[str, Any] | None:
        """The DPO report's attachment section (shared/lifecycle/report_page.py draws it)."""
        from shared.attachments.status import report_summary

        return report_summary(self.attachment_jobs, self.attachment_progress, tenant)

    def forget_attachments(self, tenant_id: str) -> None:
        """The job, its cursor and markers: with the tenant."""
        self.attachment_jobs.delete(tenant_id)
        self.attachment_progress.forget(tenant_id)

    # -- the DPO, data subjects, retention -------------------------------------------------------------

    @cached_property
    def dpo(self) -> Notifier:
        """DPO notifications: each tenant's webhook, the outbox of events and its drain; the `Events` of the rest."""
        from shared.dpo.notifier import Notifier
        from shared.dpo.webhooks import Webhooks

        webhooks = Webhooks(
            self.storage, self.secrets, self.audit, self.clock, dev_networks=self.settings.dpo_webhook_dev_networks
        )
        return Notifier(self.storage, self.registry, webhooks, self.clock, region=self.settings.region)

    def subject_requests(self, page_items: int | None = None) -> SubjectRequests:
        """Data-subject requests; each call reads or deletes at most `page_items` (tests take a few)."""
        from shared.lifecycle.subject_requests import PAGE_ITEMS, SubjectRequests

        master_key = self.settings.master_key.get_secret_value()
        pages = PAGE_ITEMS if page_items is None else page_items
        return SubjectRequests(self.storage, self.registry, self.audit, master_key, page_items=pages, events=self.dpo)

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
            events=self.dpo,
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
