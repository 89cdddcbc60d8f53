"""Tracked links (the Powers pack).

POST /api/links/{tenant}/{dataset}   (tenant key) {"target_url", "contact_id"?, "expires_at"?} -> 201 the short link
GET  /api/go/{tenant}/{link}         (anonymous) 302 to the stored target, the visit recorded as the rules allow
"""

from __future__ import annotations

import logging

import azure.functions as func

from functions._http import base_url, handles_errors, json_model, json_response, lower_headers
from shared.core.errors import PackCloudError
from shared.links.pages import NOT_FOUND, PAGE_HEADERS, UNAVAILABLE
from shared.registry.access import tenant_access
from shared.services import get_services

bp = func.Blueprint()
log = logging.getLogger("packcloud.links")

REDIRECT_HEADERS = {
    "Cache-Control": "no-store",
    # The target never learns the short link (a contact's link is as good as a key to its visits).
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
}


@bp.function_name("links_create")
@bp.route(route="links/{tenant}/{dataset}", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@handles_errors
def links_create(req: func.HttpRequest) -> func.HttpResponse:
    from shared.links.tracked import LinkRequest

    services = get_services()
    access = tenant_access(
        services, req.route_params.get("tenant", ""), req.headers.get("authorization"), req.route_params.get("dataset")
    )
    target = services.capture.target(access.tenant, access.dataset, "link")
    request = json_model(req, LinkRequest, "invalid_link", "link", services.settings.max_body_bytes)
    link = services.links.create(target, request)
    # The deployment's public URL when configured, as the request's own base may be an internal name.
    base = (services.settings.region_url(services.settings.region) or base_url(req)).rstrip("/")
    return json_response(link.public(base), 201)


def page(html: str, status: int, **headers: str) -> func.HttpResponse:
    return func.HttpResponse(html, status_code=status, mimetype="text/html", headers={**PAGE_HEADERS, **headers})


@bp.function_name("links_go")
@bp.route(route="go/{tenant}/{link}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def links_go(req: func.HttpRequest) -> func.HttpResponse:
    from shared.links.tracked import Visit

    services = get_services()
    try:
        opened = services.links.open(req.route_params.get("tenant", ""), req.route_params.get("link", ""))
    except Exception as error:
        log.warning("link not read: %s", type(error).__name__)
        retry_after = error.retry_after if isinstance(error, PackCloudError) and error.retry_after else 5
        return page(UNAVAILABLE, 503, **{"Retry-After": str(retry_after)})
    if opened is None:
        return page(NOT_FOUND, 404)
    try:
        services.links.record_visit(opened, Visit(lower_headers(req)))
    except Exception as error:
        # The visitor came for the asset: the redirect happens even when the visit cannot be stored.
        log.warning("link visit not recorded: %s", type(error).__name__)
    return func.HttpResponse(status_code=302, headers={**REDIRECT_HEADERS, "Location": opened.link.target_url})
