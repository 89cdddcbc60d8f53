"""Data-subject requests and the record of processing (tenant key).

POST /api/privacy/{tenant}/subjects/export   {"subject": "..."}: every record and personal state of that person
POST /api/privacy/{tenant}/subjects/erase    {"subject": "..."}: delete them all, answer the counts
GET  /api/privacy/{tenant}/report[?format=html]   record of processing activities (GDPR art. 30)
"""

from __future__ import annotations

import azure.functions as func

from functions.http import SECURITY_HEADERS, handles_errors, json_response
from shared.bodies import parse_json_object, validate_model
from shared.errors import BadRequest
from shared.privacy import SubjectRequest, SubjectRequests
from shared.report import processing_record, render_html
from shared.services import Services, get_services
from shared.tenant_access import tenant_access

bp = func.Blueprint()


def _subject(req: func.HttpRequest, services: Services) -> tuple[str, SubjectRequests, str]:
    # Fresh, not cached: a rotated key or a deleted tenant counts at once where personal data is handed out.
    access = tenant_access(services, req.route_params.get("tenant", ""), req.headers.get("authorization"), fresh=True)
    body = parse_json_object(req.get_body(), req.headers.get("content-type"), services.settings.max_body_bytes)
    request = validate_model(SubjectRequest, body, "invalid_subject_request", "subject request")
    requests = SubjectRequests(
        services.storage, services.registry, services.audit, services.settings.master_key.get_secret_value()
    )
    return access.tenant.id, requests, request.subject


@bp.function_name("privacy_export")
@bp.route(route="privacy/{tenant}/subjects/export", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@handles_errors
def privacy_export(req: func.HttpRequest) -> func.HttpResponse:
    tenant, requests, subject = _subject(req, get_services())
    return json_response(requests.export(tenant, subject))


@bp.function_name("privacy_erase")
@bp.route(route="privacy/{tenant}/subjects/erase", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@handles_errors
def privacy_erase(req: func.HttpRequest) -> func.HttpResponse:
    tenant, requests, subject = _subject(req, get_services())
    erased = requests.erase(tenant, subject)
    return json_response(
        {"tenant": tenant, "request_id": erased.request_id, "erased": erased.records, "state_erased": erased.state}
    )


@bp.function_name("privacy_report")
@bp.route(route="privacy/{tenant}/report", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@handles_errors
def privacy_report(req: func.HttpRequest) -> func.HttpResponse:
    services = get_services()
    access = tenant_access(services, req.route_params.get("tenant", ""), req.headers.get("authorization"))
    report = processing_record(access.tenant, services.registry, services.storage, services.audit, services.clock)
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
