"""Web forms (PowerWebForm, PowerSurveyPlus).

POST    /api/forms/{tenant}/{dataset}   a submission from a customer's page (anonymous; CORS)
OPTIONS /api/forms/{tenant}/{dataset}   the CORS preflight
GET     /api/forms/snippet.js           the script that enhances <form data-packcloud-form="TENANT/DATASET">

The submission route is an async function, as the pixel's hit routes are: the worker runs it on its event loop,
where the record's write (and an idempotency key's marker) is awaited with the aio storage client instead of a
thread of its pool (bench/README.md, "The form route async"). Nothing it does blocks the loop: see
`FormIntake.submit_async`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import azure.functions as func

from functions._http import SECURITY_HEADERS, base_url, handles_errors_async, json_response, lower_headers
from shared.services import get_services

if TYPE_CHECKING:
    from shared.webform.intake import FormAnswer

bp = func.Blueprint()


def _shaped(answer: FormAnswer) -> func.HttpResponse:
    if answer.body is None:
        return func.HttpResponse(status_code=answer.status, headers={**SECURITY_HEADERS, **answer.headers})
    return json_response(answer.body, answer.status, answer.headers)


@bp.function_name("webform_submit")
@bp.route(route="forms/{tenant}/{dataset}", methods=["POST", "OPTIONS"], auth_level=func.AuthLevel.ANONYMOUS)
@handles_errors_async
async def webform_submit(req: func.HttpRequest) -> func.HttpResponse:
    from shared.webform.intake import FormPost

    forms = get_services().forms
    tenant, dataset = req.route_params.get("tenant", ""), req.route_params.get("dataset", "")
    headers = lower_headers(req)
    if req.method == "OPTIONS":
        return _shaped(await forms.preflight_async(tenant, dataset, headers))
    return _shaped(await forms.submit_async(FormPost(tenant, dataset, req.get_body(), headers)))


@bp.function_name("webform_snippet")
@bp.route(route="forms/snippet.js", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def webform_snippet(req: func.HttpRequest) -> func.HttpResponse:
    from shared.webform.intake import render_snippet

    return func.HttpResponse(
        render_snippet(f"{base_url(req)}/forms"),
        status_code=200,
        headers={
            "Content-Type": "application/javascript; charset=utf-8",
            "Cache-Control": "public, max-age=300",
            "X-Content-Type-Options": "nosniff",
            "Cross-Origin-Resource-Policy": "cross-origin",
        },
    )
