"""Data-subject requests and the record of processing (tenant key).

POST /api/privacy/{tenant}/subjects/export   {"subject", "cursor"?}: that person's records and personal state,
                                             a page at a time (`more`, `next_cursor`)
POST /api/privacy/{tenant}/subjects/erase    {"subject", "cursor"?}: delete a page of them, answer the counts
GET  /api/privacy/{tenant}/report[?format=html]   record of processing activities (GDPR art. 30): the DPO's
                                             view, 30 days of activity from the audit (docs/privacy.md)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

import azure.functions as func

from functions._http import SECURITY_HEADERS, handles_errors, json_model, json_response
from shared.core.errors import BadRequest
from shared.registry.access import tenant_access
from shared.registry.models import Tenant
from shared.services import Services, get_services

if TYPE_CHECKING:
    from shared.lifecycle.subject_requests import SubjectRequest, SubjectRequests

bp = func.Blueprint()
R = TypeVar("R", bound="SubjectRequest")


def _subject(req: func.HttpRequest, services: Services, model: type[R]) -> tuple[Tenant, SubjectRequests, R]:
    # Fresh, not cached: a rotated key or a deleted tenant counts at once where personal data is handed out.
    access = tenant_access(services, req.route_params.get("tenant", ""), req.headers.get("authorization"), fresh=True)
    max_bytes = services.settings.max_body_bytes
    request = json_model(req, model, "invalid_subject_request", "subject request", max_bytes)
    return access.tenant, services.subject_requests(), request


@bp.function_name("privacy_export")
@bp.route(route="privacy/{tenant}/subjects/export", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@handles_errors
def privacy_export(req: func.HttpRequest) -> func.HttpResponse:
    from shared.lifecycle.subject_requests import SubjectRequest

    tenant, requests, request = _subject(req, get_services(), SubjectRequest)
    return json_response(requests.export(tenant.id, request.subject, request.cursor))


@bp.function_name("privacy_erase")
@bp.route(route="privacy/{tenant}/subjects/erase", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@handles_errors
def privacy_erase(req: func.HttpRequest) -> func.HttpResponse:
    from shared.lifecycle.subject_requests import ErasureRequest

    services = get_services()
    tenant, requests, request = _subject(req, services, ErasureRequest)
    forget_in_mailchimp = request.mailchimp_delete_permanent and request.cursor is None
    address = services.mailchimp.erasure_address(request.subject) if forget_in_mailchimp else None
    erased = requests.erase(tenant.id, request.subject, request.cursor)
    services.links.forget(tenant.id)  # an erased contact's link stops here at once, elsewhere within the cache TTL
    answer: dict[str, Any] = {
        "tenant": tenant.id,
        "request_id": erased.request_id,
        "erased": erased.records,
        "state_erased": erased.state,
        "more": erased.more,
        "next_cursor": erased.next_cursor,
    }
    if address is not None:
        answer["mailchimp"] = services.mailchimp.erase_subject(tenant, address)
    return json_response(answer)


@bp.function_name("privacy_report")
@bp.route(route="privacy/{tenant}/report", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@handles_errors
def privacy_report(req: func.HttpRequest) -> func.HttpResponse:
    from shared.lifecycle.report import dpo_notifications, processing_record
    from shared.lifecycle.report_page import render_html

    services = get_services()
    access = tenant_access(services, req.route_params.get("tenant", ""), req.headers.get("authorization"))
    report = processing_record(access.tenant, services.registry, services.storage, services.audit, services.clock)
    report["dpo_notifications"] = dpo_notifications(services.dpo.report_state(access.tenant))
    report["attachments"] = services.attachments_report(access.tenant)
    output = req.params.get("format", "json")
    if output == "json":
        return json_response(report)
    if output != "html":
        raise BadRequest("invalid_format", "format must be json or html")
    return func.HttpResponse(
        render_html(report),
        status_code=200,
        mimetype="text/html",
        charset="utf-8",
        headers={**SECURITY_HEADERS, "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"},
    )
