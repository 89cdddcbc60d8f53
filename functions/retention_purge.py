"""The retention purge: a timer (PACKCLOUD_PURGE_SCHEDULE, hourly at :05 by default). See shared/lifecycle/purge.py."""

from __future__ import annotations

import logging

import azure.functions as func

from shared.core.settings import get_settings
from shared.services import get_services

bp = func.Blueprint()
log = logging.getLogger("packcloud.purge")


# The schedule is read from the settings when the app is indexed, so its default applies everywhere.
@bp.function_name("retention_purge")
@bp.timer_trigger(schedule=get_settings().purge_schedule, arg_name="timer", run_on_startup=False, use_monitor=True)
def retention_purge(timer: func.TimerRequest) -> None:
    services = get_services()
    services.counts.flush()
    report = services.purger().run()
    log.info(
        "retention purge: %d record(s) and %d state blob(s) deleted in %.1f s%s",
        report.deleted,
        report.state_deleted,
        report.duration_s,
        "" if report.complete else "; time budget spent, the next run continues",
    )
