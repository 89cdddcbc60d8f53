"""PowerMailChimp as the functions and the timer use it: a tenant's connection, its members' pushes and
removals, the webhook, the campaign activity, and erasure of one person from the tenant's audiences."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.capture.store import CaptureStore, Target
from shared.core.errors import Conflict, Unprocessable, UpstreamUnavailable
from shared.core.fieldtypes import InvalidValue, normalise
from shared.mailchimp.activity import ActivityReader, ActivityReport
from shared.mailchimp.client import MailchimpApi
from shared.mailchimp.connection import Connection, Connections
from shared.mailchimp.members import JobResult, MembersIn, RemovalIn, remove, remove_all, upsert_all
from shared.mailchimp.webhook import WebhookTokens
from shared.registry.models import DatasetDoc, Tenant
from shared.registry.store import Registry
from shared.storage.audit import AuditLog


@dataclass
class ActivityRun:
    datasets: int = 0
    pages: int = 0
    stored: int = 0
    skipped: int = 0
    problems: dict[str, list[str]] = field(default_factory=dict)


class Mailchimp:
    def __init__(
        self,
        connections: Connections,
        tokens: WebhookTokens,
        reader: ActivityReader,
        registry: Registry,
        capture: CaptureStore,
        audit: AuditLog,
        region: str,
    ) -> None:
        self.connections = connections
        self.tokens = tokens
        self._reader = reader
        self._registry = registry
        self._capture = capture
        self._audit = audit
        self._region = region

    def api(self, tenant: Tenant) -> MailchimpApi:
        connection = self.connections.get(tenant)
        if connection is None:
            raise Conflict("no_mailchimp_connection", "the tenant has no Mailchimp connection: PUT one first")
        api = self.connections.api(connection)
        if api is None:
            raise UpstreamUnavailable("mailchimp_key_unavailable", "the Mailchimp API key cannot be read, retry later")
        return api

    def check(self, tenant: Tenant, connection: Connection) -> dict[str, Any]:
        """Mailchimp's ping with the stored key: which step failed, if any (never the key)."""
        api = self.connections.api(connection)
        if api is None:
            return {"ok": False, "step": "secret", "detail": "the API key is not in the secret store"}
        answer = api.ping()
        if answer.status == 200:
            return {"ok": True, "step": "ping", "data_centre": connection.data_centre}
        return {"ok": False, "step": "ping", "status": answer.status, "detail": answer.reason}

    def push(self, tenant: Tenant, dataset: DatasetDoc, request: MembersIn) -> JobResult:
        return self._job(tenant, dataset, "push", lambda api: upsert_all(api, dataset, request))

    def remove(self, tenant: Tenant, dataset: DatasetDoc, request: RemovalIn, *, permanent: bool) -> JobResult:
        action = "delete_permanent" if permanent else "archive"
        return self._job(tenant, dataset, action, lambda api: remove_all(api, dataset, request, permanent=permanent))

    def _job(self, tenant: Tenant, dataset: DatasetDoc, action: str, run: Any) -> JobResult:
        api = self.api(tenant)
        try:
            result: JobResult = run(api)
        except UpstreamUnavailable:
            self._audit.append(tenant.id, "mailchimp_job", dataset=dataset.id, action=action, outcome="unavailable")
            raise
        self._audit.append(
            tenant.id,
            "mailchimp_job",
            dataset=dataset.id,
            action=action,
            list_id=result.list_id,
            outcome="done",
            dropped_fields=len(result.dropped_fields),
            **result.counts(),
        )
        return result

    @staticmethod
    def erasure_address(subject: str) -> str:
        """The subject of an erasure that asks Mailchimp to forget the person: an e-mail address, or a 422 before
        anything is erased."""
        try:
            return str(normalise("email", subject))
        except InvalidValue:
            raise Unprocessable(
                "invalid_subject_request",
                "mailchimp_delete_permanent needs the subject to be an e-mail address",
                errors=[{"field": "subject", "reason": "is not an e-mail address"}],
            ) from None

    def erase_subject(self, tenant: Tenant, address: str) -> dict[str, int]:
        """The address deleted permanently from every audience of the tenant's mailchimp datasets. Counts only, in
        the answer and the audit."""
        audiences = sorted(
            {audience for ds in self._registry.list_datasets(tenant.id) for audience in ds.mailchimp_audiences}
        )
        counts: dict[str, int] = {"audiences": len(audiences)}
        if audiences:
            api = self.api(tenant)
            for audience in audiences:
                for result in remove(api, audience, [address], permanent=True):
                    counts[result.status] = counts.get(result.status, 0) + 1
        self._audit.append(tenant.id, "mailchimp_erasure", **counts)
        return counts

    def read_activity(self, max_pages: int) -> ActivityRun:
        """Campaign activity for every tenant homed here with a connection and an activity dataset."""
        run = ActivityRun()
        for tenant in self._registry.list_tenants():
            if tenant.region != self._region:
                continue
            datasets = [
                ds
                for ds in self._registry.list_datasets(tenant.id)
                if ds.capability == "mailchimpevent" and ds.campaign_activity
            ]
            connection = self.connections.get(tenant) if datasets else None
            if connection is None:
                continue
            api = self.connections.api(connection)
            if api is None:
                run.problems[tenant.id] = ["the API key is not in the secret store"]
                continue
            for dataset in datasets:
                report: ActivityReport = self._reader.read(api, Target(tenant, dataset), max_pages - run.pages)
                run.datasets += 1
                run.pages += report.pages
                run.stored += report.stored
                run.skipped += report.skipped
                if report.problems:
                    run.problems.setdefault(tenant.id, []).extend(report.problems)
                if run.pages >= max_pages:
                    return run
        return run
