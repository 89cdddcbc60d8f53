"""GET /api/px/{tenant}/{dataset}: the tracking pixel; GET /api/px/snippet.js: the embeddable script."""

from __future__ import annotations

import logging

import azure.functions as func

from functions._http import base_url, lower_headers
from shared.core.clock import Clock
from shared.core.errors import PackCloudError
from shared.core.ids import is_valid_id
from shared.pixel.hits import GIF, Hit, record_hit, render_snippet
from shared.services import get_services

bp = func.Blueprint()
log = logging.getLogger("packcloud.pixel")

GIF_HEADERS = {
    # Explicit, or the Functions worker would add "; charset=utf-8" to an image.
    "Content-Type": "image/gif",
    "Cache-Control": "no-store, no-cache, must-revalidate, max-age=0",
    "Pragma": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Resource-Policy": "cross-origin",
}


def hit_of(req: func.HttpRequest, clock: Clock) -> Hit:
    return Hit(
        tenant=req.route_params.get("tenant", ""),
        dataset=req.route_params.get("dataset", ""),
        query=dict(req.params),
        headers=lower_headers(req),
        now_epoch=int(clock.now().timestamp()),
    )


@bp.function_name("pixel")
@bp.route(route="px/{tenant}/{dataset}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def pixel(req: func.HttpRequest) -> func.HttpResponse:
    services = get_services()
    hit = hit_of(req, services.clock)
    try:
        record_hit(services.capture, services.settings, hit)
    except Exception as error:
        # Not recorded for a reason of ours (storage unavailable): a 503 that monitoring and retrying clients
        # see, still with the GIF as its body, which browsers render as the image all the same.
        log.warning("pixel hit not recorded: %s", type(error).__name__)
        retry_after = error.retry_after if isinstance(error, PackCloudError) and error.retry_after else 5
        headers = {**GIF_HEADERS, "Retry-After": str(retry_after)}
        return func.HttpResponse(GIF, status_code=503, mimetype="image/gif", headers=headers)
    return func.HttpResponse(GIF, status_code=200, mimetype="image/gif", headers=GIF_HEADERS)


@bp.function_name("pixel_snippet")
@bp.route(route="px/snippet.js", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def pixel_snippet(req: func.HttpRequest) -> func.HttpResponse:
    services = get_services()
    tenant, dataset = req.params.get("tenant", ""), req.params.get("dataset", "")
    doc, status = None, 200
    headers = {"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"}
    if is_valid_id(tenant) and is_valid_id(dataset):
        try:
            doc = services.capture.resolve(tenant, dataset, "pixel").dataset
        except PackCloudError as error:  # an unknown dataset gets the do-nothing script
            if error.status >= 500:  # unreachable storage: the do-nothing script too, uncached, as a 503
                status, headers = error.status, {**headers, **error.headers, "Cache-Control": "no-store"}
    endpoint = f"{base_url(req)}/px/{tenant}/{dataset}"
    return func.HttpResponse(
        render_snippet(doc, endpoint), status_code=status, mimetype="application/javascript", headers=headers
    )
