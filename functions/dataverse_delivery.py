"""The delivery into Dynamics 365: a timer (PACKCLOUD_DELIVERY_SCHEDULE, every minute by default) that upserts the
records of every `dataverse` dataset and deletes them once Dataverse has them (shared/lifecycle/dataverse_push.py)."""

from __future__ import annotations

import logging

import azure.functions as func

from shared.core.settings import get_settings
from shared.services import get_services

bp = func.Blueprint()
log = logging.getLogger("packcloud.delivery")


@bp.function_name("dataverse_delivery")
@bp.timer_trigger(schedule=get_settings().delivery_schedule, arg_name="timer", run_on_startup=False, use_monitor=True)
def dataverse_delivery(timer: func.TimerRequest) -> None:
    report = get_services().deliverer.run()
    if report.tenants:
        log.info(
            "delivery: %d record(s) delivered, %d refused, %d Dataverse request(s), %d tenant(s) in %.1f s",
            report.delivered,
            report.refused,
            report.requests,
            len(report.tenants),
            report.duration_s,
        )
    for outcome in report.tenants.values():
        if outcome.state in ("failing", "stopped", "storage_unavailable"):
            # Ids and codes only: never a value, a secret or an answer's text.
            log.warning("delivery for tenant %s: %s (%s)", outcome.tenant, outcome.state, outcome.error)
