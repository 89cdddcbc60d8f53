"""The pixel as it was before it went async (issue 21), for the comparison in bench/async_pixel.py; never deployed.

A sync function, run in the worker's thread pool, recording the hit with `record_hit` (the sync SDK's one write)
and answering as the production pixel does; the production pixel (functions/tracking_pixel.py) is now an async
function whose write is awaited with the aio SDK on the worker's event loop.
"""

from __future__ import annotations

import azure.functions as func

from functions.tracking_pixel import GIF_HEADERS, _hit
from shared.core.errors import PackCloudError
from shared.pixel.hits import GIF, record_hit
from shared.services import get_services

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="px/{tenant}/{dataset}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def pixel(req: func.HttpRequest) -> func.HttpResponse:
    services = get_services()
    try:
        record_hit(services.capture, services.settings, _hit(req, dict(req.params)))
    except Exception as error:  # as the production pixel: storage trouble is a 503, still with the GIF
        retry_after = error.retry_after if isinstance(error, PackCloudError) and error.retry_after else 5
        headers = {**GIF_HEADERS, "Retry-After": str(retry_after)}
        return func.HttpResponse(GIF, status_code=503, mimetype="image/gif", headers=headers)
    return func.HttpResponse(GIF, status_code=200, mimetype="image/gif", headers=GIF_HEADERS)
