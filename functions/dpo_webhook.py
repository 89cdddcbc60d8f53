"""A tenant's DPO webhook (function key): where events about its datasets are sent, signed (shared/dpo/).

PUT/GET/DELETE /api/manage/tenants/{tenant}/dpo-webhook        set (the secret shown once), show with the events
                                                               waiting and failed, delete with its events
POST           /api/manage/tenants/{tenant}/dpo-webhook/test   send a `webhook.test` event now: how it went
timer          dpo_notifications                               PACKCLOUD_DPO_SCHEDULE: drain every tenant's outbox
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import azure.functions as func

from functions._http import handles_errors, json_model, json_response
from shared.core.errors import NotFound
from shared.core.settings import get_settings
from shared.registry.access import home_tenant
from shared.registry.models import Tenant
from shared.services import get_services

if TYPE_CHECKING:
    from shared.dpo.notifier import Notifier
    from shared.dpo.webhooks import Webhook

bp = func.Blueprint()
log = logging.getLogger("packcloud.dpo")


def _webhook(notifier: Notifier, tenant: Tenant) -> Webhook:
    webhook = notifier.webhooks.get(tenant)
    if webhook is None:
        raise NotFound("no_dpo_webhook", "the tenant has no DPO webhook")
    return webhook


def _shown(notifier: Notifier, webhook: Webhook) -> dict[str, Any]:
    return {**webhook.public(), "events": notifier.state(webhook.tenant)}


@bp.function_name("manage_dpo_webhook")
@bp.route(
    route="manage/tenants/{tenant}/dpo-webhook", methods=["PUT", "GET", "DELETE"], auth_level=func.AuthLevel.FUNCTION
)
@handles_errors
def manage_dpo_webhook(req: func.HttpRequest) -> func.HttpResponse:
    from shared.dpo.webhooks import WebhookIn

    services = get_services()
    tenant = home_tenant(services, req.route_params.get("tenant", ""))
    notifier = services.dpo
    if req.method == "GET":
        return json_response(_shown(notifier, _webhook(notifier, tenant)))
    if req.method == "DELETE":
        _webhook(notifier, tenant)
        notifier.remove(tenant.id, audited=True)
        return func.HttpResponse(status_code=204)
    change = json_model(req, WebhookIn, "invalid_webhook", "DPO webhook", services.settings.max_body_bytes)
    webhook, secret, created = notifier.webhooks.put(tenant, change)
    return json_response({**_shown(notifier, webhook), "secret": secret}, 201 if created else 200)


@bp.function_name("manage_dpo_webhook_test")
@bp.route(route="manage/tenants/{tenant}/dpo-webhook/test", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@handles_errors
def manage_dpo_webhook_test(req: func.HttpRequest) -> func.HttpResponse:
    services = get_services()
    tenant = home_tenant(services, req.route_params.get("tenant", ""))
    event, outcome = services.dpo.send_test(tenant, _webhook(services.dpo, tenant))
    return json_response({"event_id": event.id, **outcome.public()})


# The schedule is read from the settings when the app is indexed, so its default applies everywhere.
@bp.function_name("dpo_notifications")
@bp.timer_trigger(schedule=get_settings().dpo_schedule, arg_name="timer", run_on_startup=False, use_monitor=True)
def dpo_notifications(timer: func.TimerRequest) -> None:
    drained = get_services().dpo.drain_all()
    delivered = sum(outcome.delivered for outcome in drained.values())
    failed = sum(outcome.failed for outcome in drained.values())
    log.info("DPO notifications: %d delivered, %d given up, %d tenant(s) drained", delivered, failed, len(drained))
