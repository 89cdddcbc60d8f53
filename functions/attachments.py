"""PowerAttachment (function key): a tenant's attachment job, and the timer that moves the files
(shared/attachments/).

PUT/GET/DELETE /api/manage/tenants/{tenant}/attachments        the job; GET adds its status (refused files)
POST           /api/manage/tenants/{tenant}/attachments/retry  {"ids": [...]} or {"all": true}: refused files are
                                                               tried again by the next run
timer attachment_mover                                         PACKCLOUD_ATTACHMENT_SCHEDULE
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import azure.functions as func

from functions._http import handles_errors, json_model, json_response
from shared.core.errors import NotFound
from shared.core.settings import get_settings
from shared.registry.access import home_tenant
from shared.registry.models import Tenant
from shared.services import Services, get_services

if TYPE_CHECKING:
    from shared.attachments.config import AttachmentJob

bp = func.Blueprint()
log = logging.getLogger("packcloud.attachments")


def _job(services: Services, tenant: Tenant) -> AttachmentJob:
    job = services.attachment_jobs.get(tenant)
    if job is None:
        raise NotFound("no_attachment_job", "the tenant has no attachment job")
    return job


@bp.function_name("manage_attachments")
@bp.route(
    route="manage/tenants/{tenant}/attachments", methods=["PUT", "GET", "DELETE"], auth_level=func.AuthLevel.FUNCTION
)
@handles_errors
def manage_attachments(req: func.HttpRequest) -> func.HttpResponse:
    from shared.attachments.config import AttachmentJobIn
    from shared.attachments.status import shown

    services = get_services()
    tenant = home_tenant(services, req.route_params.get("tenant", ""))
    if req.method == "GET":
        return json_response(shown(services.attachment_progress, _job(services, tenant)))
    if req.method == "DELETE":
        _job(services, tenant)
        services.attachment_jobs.remove(tenant.id)
        services.attachment_progress.forget(tenant.id)
        return func.HttpResponse(status_code=204)
    change = json_model(
        req, AttachmentJobIn, "invalid_attachment_job", "attachment job", services.settings.max_body_bytes
    )
    job, created = services.attachment_jobs.put(tenant, change)
    return json_response(shown(services.attachment_progress, job), 201 if created else 200)


@bp.function_name("manage_attachments_retry")
@bp.route(route="manage/tenants/{tenant}/attachments/retry", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@handles_errors
def manage_attachments_retry(req: func.HttpRequest) -> func.HttpResponse:
    from shared.attachments.status import RetryIn

    services = get_services()
    tenant = home_tenant(services, req.route_params.get("tenant", ""))
    retry = json_model(req, RetryIn, "invalid_retry", "retry", services.settings.max_body_bytes)
    job = _job(services, tenant)
    marked, not_failed = services.attachment_progress.retry(job.tenant, None if retry.all else set(retry.ids or ()))
    return json_response({"retried": marked, "not_failed": not_failed})


@bp.function_name("attachment_mover")
@bp.timer_trigger(schedule=get_settings().attachment_schedule, arg_name="timer", run_on_startup=False, use_monitor=True)
def attachment_mover(timer: func.TimerRequest) -> None:
    report = get_services().attachment_mover.run()
    if report.tenants:
        # Counts and ids only: never a file name or content.
        log.info(
            "attachments: %d file(s) moved (%d bytes), %d refused, %d tenant(s) in %.1f s",
            report.total("moved"),
            report.total("bytes_moved"),
            report.total("failed"),
            len(report.tenants),
            report.duration_s,
        )
