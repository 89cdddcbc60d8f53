"""The tracking pixel and its script.

GET  /api/px/{tenant}/{dataset}   a hit in the query, answered with the GIF
POST /api/px/{tenant}/{dataset}   the same hit in a beacon's body (the snippet's navigator.sendBeacon), answered 204
GET  /api/px/snippet.js           the embeddable script

The hit routes are async functions: the worker runs them on its event loop, where the record's one write is
awaited with the aio storage client, instead of in its thread pool (bench/README.md: 15% more captures/s, 30%
less CPU per capture). Nothing they do blocks the loop: see `record_hit_async`.
"""

from __future__ import annotations

import logging

import azure.functions as func

from functions._http import SECURITY_HEADERS, base_url, handles_errors_async, lower_headers
from shared.core.errors import PackCloudError
from shared.core.ids import is_valid_id
from shared.pixel.beacon import beacon_params
from shared.pixel.hits import GIF, Hit, record_hit_async, render_snippet
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


def _hit(req: func.HttpRequest, params: dict[str, str]) -> Hit:
    return Hit(
        tenant=req.route_params.get("tenant", ""),
        dataset=req.route_params.get("dataset", ""),
        query=params,
        headers=lower_headers(req),
        now_epoch=int(get_services().clock.now().timestamp()),
    )


@bp.function_name("pixel")
@bp.route(route="px/{tenant}/{dataset}", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
async def pixel(req: func.HttpRequest) -> func.HttpResponse:
    if req.method == "POST":
        return await _beacon(req)
    services = get_services()
    hit = _hit(req, dict(req.params))
    try:
        await record_hit_async(services.capture, services.settings, hit)
    except Exception as error:
        # Not recorded for a reason of ours (storage unavailable): a 503 that monitoring and retrying clients
        # see, still with the GIF as its body, which browsers render as the image all the same.
        log.warning("pixel hit not recorded: %s", type(error).__name__)
        retry_after = error.retry_after if isinstance(error, PackCloudError) and error.retry_after else 5
        headers = {**GIF_HEADERS, "Retry-After": str(retry_after)}
        return func.HttpResponse(GIF, status_code=503, mimetype="image/gif", headers=headers)
    return func.HttpResponse(GIF, status_code=200, mimetype="image/gif", headers=GIF_HEADERS)


@handles_errors_async
async def _beacon(req: func.HttpRequest) -> func.HttpResponse:
    """The GET's rules on the body's parameters. A body that is no hit is a 4xx naming why; otherwise 204,
    recorded or not (as the GIF, it never tells a page which rule held a hit back); storage trouble a JSON 503."""
    services = get_services()
    params = beacon_params(req.get_body(), req.headers.get("content-type"), services.settings.max_body_bytes)
    await record_hit_async(services.capture, services.settings, _hit(req, params))
    return func.HttpResponse(
        status_code=204, headers={**SECURITY_HEADERS, "Cross-Origin-Resource-Policy": "cross-origin"}
    )


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
