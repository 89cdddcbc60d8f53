"""GET /api/notice/{tenant}/{dataset}: the public privacy notice of a dataset (anonymous).

HTML by default; JSON with `Accept: application/json` or `?format=json`. Errors answer in the same format: a
page for a browser, the usual JSON error body for a program.
"""

from __future__ import annotations

import azure.functions as func

from functions._http import error_response, handles_errors, json_response
from shared.core.errors import BadRequest, Misdirected, NotFound, PackCloudError
from shared.notice.languages import FORMATS, wants_json
from shared.services import get_services

bp = func.Blueprint()

# How long browsers and caches may keep a notice: a changed declaration shows within this (plus the registry TTL).
NOTICE_MAX_AGE_S = 300
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Vary": "Accept, Accept-Language",
}
CACHED = {"Cache-Control": f"public, max-age={NOTICE_MAX_AGE_S}"}
# The notice is public: any site (the controller's own, with the snippets) may read its JSON, without credentials.
PUBLIC_JSON = {"Access-Control-Allow-Origin": "*"}


def _html(body: str, status: int, headers: dict[str, str]) -> func.HttpResponse:
    return func.HttpResponse(
        body, status_code=status, mimetype="text/html", charset="utf-8", headers={**PAGE_HEADERS, **headers}
    )


def _error_page(error: PackCloudError, req: func.HttpRequest) -> func.HttpResponse:
    from shared.notice.page import NOT_FOUND_PAGE, UNAVAILABLE_PAGE, render_misdirected

    if isinstance(error, NotFound):
        return _html(NOT_FOUND_PAGE, 404, {"Cache-Control": "no-store"})
    if isinstance(error, Misdirected):
        region_base = error.extra.get("base_url")
        tenant, dataset = req.route_params.get("tenant", ""), req.route_params.get("dataset", "")
        url = f"{region_base}/notice/{tenant}/{dataset}" if region_base else None
        return _html(render_misdirected(url), 421, {"Cache-Control": "no-store"})
    if error.status >= 500:
        return _html(UNAVAILABLE_PAGE, error.status, {**error.headers, "Cache-Control": "no-store"})
    return error_response(error)


@bp.function_name("notice")
@bp.route(route="notice/{tenant}/{dataset}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@handles_errors
def notice(req: func.HttpRequest) -> func.HttpResponse:
    from shared.notice.page import render_notice

    requested = req.params.get("format")
    if requested is not None and requested not in FORMATS:
        raise BadRequest("invalid_format", "format must be html or json")
    as_json = wants_json(req.headers.get("accept"), requested)
    try:
        found = get_services().notices.find(
            req.route_params.get("tenant", ""), req.route_params.get("dataset", ""), req.headers.get("accept-language")
        )
    except PackCloudError as error:
        if as_json:
            headers = {**PAGE_HEADERS, **PUBLIC_JSON, **error.headers}
            return json_response(error.body(), error.status, headers)
        return _error_page(error, req)
    if as_json:
        return json_response(found.public(), 200, {**PAGE_HEADERS, **PUBLIC_JSON, **CACHED})
    # The page's own words are English; the purpose may be in the reader's language.
    languages = "en" if found.language.lower() == "en" else f"en, {found.language}"
    return _html(render_notice(found), 200, {**CACHED, "Content-Language": languages})
