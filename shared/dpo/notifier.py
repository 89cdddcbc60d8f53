"""DPO notifications: events go into the outbox, and the outbox is drained to each tenant's webhook, in order.

`emit` (the `Events` that the registry, the purge, delivery and data-subject requests are given) writes the event
when the tenant has a webhook, then asks this process's one drain worker to deliver it at once. The timer
(functions/dpo_notifications.py) drains every tenant's outbox too, so an event waiting for its retry, or written by
an instance that stopped, goes out all the same. One drain at a time per tenant, across instances: a blob lease.

A tenant's events go out in the order they were written, each until it is delivered or given up: an event waiting
for its next attempt holds back the ones after it. A failure (no answer, a refused address, any answer but a 2xx,
3xx included) schedules the next attempt by `retry_delay`; an event still failing 24 hours after it was written
is given up (it stays visible in the webhook's state and in the DPO report) and the next one goes.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import AzureError, HttpResponseError, ResourceExistsError

from shared.core.clock import Clock
from shared.core.events import WEBHOOK_TEST
from shared.dpo.guard import Refused, resolve, webhook_url
from shared.dpo.outbox import (
    GIVE_UP_AFTER,
    LISTED_MAX,
    Outbox,
    OutboxEvent,
    new_event,
    outbox_prefix,
    retry_delay,
)
from shared.dpo.sender import Outcome, post_event
from shared.dpo.webhooks import Webhook, Webhooks
from shared.registry.models import Tenant
from shared.registry.store import Registry
from shared.storage.audit import SYSTEM
from shared.storage.blobs import REGISTRY, Storage, storage_errors

log = logging.getLogger("packcloud.dpo")

LEASE_S = 60
DRAIN_BUDGET_S = 40.0  # well inside the lease: a drain never outlives its lock
BATCH = 50  # events read per listing of a tenant's outbox


def lock_blob(tenant: str) -> str:
    return f"dpo/locks/{tenant}"


@dataclass
class Drained:
    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    skipped: bool = False  # another drain holds the tenant


class Notifier:
    def __init__(
        self,
        storage: Storage,
        registry: Registry,
        webhooks: Webhooks,
        clock: Clock,
        *,
        region: str,
        ca_bundle: str | None = None,
        drain_on_emit: bool = True,
    ) -> None:
        self._storage = storage
        self._registry = registry
        self.webhooks = webhooks
        self.outbox = Outbox(storage)
        self._clock = clock
        self._region = region
        self._ca_bundle = ca_bundle
        self._drain_on_emit = drain_on_emit
        # One worker: this process's drains never race each other, and a kick waits behind a running drain.
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dpo-drain")

    # -- Events ---------------------------------------------------------------------------------

    def emit(self, scope: str, kind: str, facts: Mapping[str, Any]) -> None:
        try:
            tenants = self.webhooks.tenants() if scope == SYSTEM else [scope]
            for tenant_id in tenants:
                tenant = self._registry.get_tenant(tenant_id)
                if tenant is None or self.webhooks.get(tenant) is None:
                    continue
                self.outbox.add(new_event(tenant_id, self._region, kind, dict(facts), self._clock.now()))
                if self._drain_on_emit:
                    self.kick(tenant_id)
        except Exception as error:
            # What happened stands, whatever keeps its event from being written; the event is lost then.
            log.warning("a DPO event could not be written: %s", type(error).__name__)

    def kick(self, tenant: str) -> Future[Drained]:
        return self._worker.submit(self._drain_quietly, tenant)

    def settle(self) -> None:
        """Wait until every drain asked for so far is done (tests; the worker runs in order)."""
        self._worker.submit(lambda: None).result()

    # -- draining -------------------------------------------------------------------------------

    def drain_all(self) -> dict[str, Drained]:
        """The timer: every tenant with waiting events, then failed events past their keeping time."""
        done = {tenant: self.drain(tenant) for tenant in self.outbox.tenants()}
        self.outbox.forget_old_failures(self._clock.now())
        self._forget_orphans()
        return done

    def drain(self, tenant_id: str) -> Drained:
        drained = Drained()
        with self._lease(tenant_id) as held:
            if not held:
                drained.skipped = True
                return drained
            tenant = self._registry.get_tenant(tenant_id, fresh=True)
            webhook = self.webhooks.get(tenant) if tenant is not None else None
            if webhook is None:
                # Nobody to tell any more: the webhook or its tenant was deleted.
                self.outbox.clear(tenant_id)
                return drained
            secret = self.webhooks.secret(webhook)
            deadline = time.monotonic() + DRAIN_BUDGET_S
            while time.monotonic() < deadline:
                names = self.outbox.names(outbox_prefix(tenant_id), BATCH)
                if not names:
                    break
                if not self._deliver_in_order(webhook, secret, names, drained, deadline):
                    break
        return drained

    def _deliver_in_order(
        self, webhook: Webhook, secret: str | None, names: list[str], drained: Drained, deadline: float
    ) -> bool:
        """Deliver `names` in order; False when one must wait (or time is up), which holds back the rest."""
        for name in names:
            if time.monotonic() >= deadline:
                return False
            event = self.outbox.read(name)
            if event is None:
                continue
            now = self._clock.now()
            if event.next_attempt_at > now:
                return False
            outcome = self._send(webhook, secret, event) if secret is not None else Outcome(False, error="no_secret")
            if outcome.delivered:
                self.outbox.remove([name])
                drained.delivered += 1
                continue
            event.attempts += 1
            event.last_attempt_at = now
            event.last_error = outcome.error
            if now - event.created_at >= GIVE_UP_AFTER:
                event.failed_at = now
                self.outbox.give_up(name, event)
                drained.failed += 1
                log.warning("a DPO event was given up after %d attempts (%s)", event.attempts, outcome.error)
                continue
            event.next_attempt_at = now + retry_delay(event.attempts)
            self.outbox.write(name, event)
            drained.retrying += 1
            return False
        return True

    def _send(self, webhook: Webhook, secret: str, event: OutboxEvent) -> Outcome:
        try:
            # Resolved again at every attempt, and the connection goes to the address checked here.
            endpoint = resolve(
                webhook_url(webhook.url), dev_networks=self.webhooks.dev_networks, resolver=self.webhooks.resolver
            )
        except Refused:
            return Outcome(False, error="refused_address")
        headers = {"X-PackCloud-Event": event.type, "X-PackCloud-Event-Id": event.id}
        timestamp = int(self._clock.now().timestamp())
        return post_event(endpoint, event.body(), headers, secret, timestamp, ca_bundle=self._ca_bundle)

    def _drain_quietly(self, tenant: str) -> Drained:
        try:
            return self.drain(tenant)
        except Exception as error:  # a background drain: the timer tries again
            log.warning("a DPO drain stopped: %s", type(error).__name__)
            return Drained()

    @contextlib.contextmanager
    def _lease(self, tenant: str) -> Iterator[bool]:
        client = self._storage.container(REGISTRY).get_blob_client(lock_blob(tenant))
        with storage_errors():
            with contextlib.suppress(ResourceExistsError):
                client.upload_blob(b"", overwrite=False)
            try:
                lease = client.acquire_lease(lease_duration=LEASE_S)
            except HttpResponseError as error:
                if error.status_code == 409:
                    yield False
                    return
                raise
        try:
            yield True
        finally:
            with contextlib.suppress(AzureError):
                lease.release()

    def _forget_orphans(self) -> None:
        """Webhooks whose tenant is gone, or was created again, go with their secrets and events."""
        for tenant_id in self.webhooks.tenants():
            tenant = self._registry.get_tenant(tenant_id, fresh=True)
            if tenant is None or self.webhooks.get(tenant) is None:
                self.remove(tenant_id)

    # -- the manage API -------------------------------------------------------------------------

    def remove(self, tenant_id: str, *, audited: bool = False) -> bool:
        """The webhook, its secret and its events, waiting or failed (`audited`: the operator's deletion)."""
        removed = self.webhooks.delete(tenant_id, audited=audited)
        self.outbox.clear(tenant_id)
        self._storage.delete_names(REGISTRY, [lock_blob(tenant_id)])
        return removed

    def forget(self, tenant_id: str) -> None:
        """With its tenant (shared/services.py `forget_tenant_credentials`): at once, not at the timer's next run, and
        audited, as every credential store's."""
        self.remove(tenant_id, audited=True)

    def send_test(self, tenant: Tenant, webhook: Webhook) -> tuple[OutboxEvent, Outcome]:
        """A `webhook.test` event, sent now and once, outside the outbox: the answer says how it went."""
        event = new_event(tenant.id, self._region, WEBHOOK_TEST, {"message": "test event"}, self._clock.now())
        secret = self.webhooks.secret(webhook)
        outcome = self._send(webhook, secret, event) if secret is not None else Outcome(False, error="no_secret")
        return event, outcome

    def report_state(self, tenant: Tenant) -> dict[str, Any] | None:
        """For the DPO report: the events' state, or None when the tenant has no webhook."""
        return self.state(tenant.id) if self.webhooks.get(tenant) is not None else None

    def state(self, tenant_id: str) -> dict[str, Any]:
        """What waits and what failed (ids, types, times, attempts, error codes: no event data)."""
        pending = self.outbox.pending(tenant_id)
        failed = [event for _, event in self.outbox.failed(tenant_id)]
        return {
            "pending": [event.public() for event in pending],
            "pending_more": len(pending) >= LISTED_MAX,
            "failed": [event.public() for event in failed],
            "failed_more": len(failed) >= LISTED_MAX,
        }
