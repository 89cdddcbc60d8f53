"""Region pinning on the operator's routes (README "Region pinning"): for a tenant homed in another region, every
function-key route that names a tenant answers 421 with that region and its base URL, before anything is read or
stored; never a 404 "it has none", which would send the operator astray.

The routes are read from the function app, not listed here, so a route added later is held to the rule too; the
few that are not are named below with the reason."""

from __future__ import annotations

import re

from devhost.routes import HttpRoute
from tests.factories import US_URL, blob_states, documented_errors

# (route, method): why the tenant's home region does not matter there.
EXEMPT = {
    ("manage/tenants/{tenant}", "PUT"): "creates the tenant document that names the home region (how this test "
    "makes a tenant homed elsewhere); changing that region is its own 409",
    ("manage/tenants/{tenant}", "GET"): "shows the tenant document, which is what says where the tenant is homed",
    ("manage/tenants/{tenant}", "DELETE"): "removes the tenant document this deployment holds: no other deployment "
    "could",
    ("registrations/{tenant}", "GET"): "the home deployment keeps the registrations of every region: showing one is "
    "its job wherever the tenant is homed",
    ("registrations/{tenant}", "DELETE"): "the home deployment deregisters a tenant of any region (it deletes the "
    "tenant there through that region's manage API)",
}
# Any valid id for a route's other parameters: the 421 comes before they are looked up.
SOME_ID = "some-id"


def operator_routes() -> list[HttpRoute]:
    """Every function-key route that names a tenant, in any role (the registration routes are the home's only)."""
    import azure.functions as func

    import function_app
    from devhost.routes import http_routes
    from functions import registration

    apps = [function_app.app]
    if "registration" not in function_app.settings.role:
        home_only = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
        home_only.register_functions(registration.bp)
        apps.append(home_only)
    return [
        route
        for app in apps
        for route in http_routes(app)
        if route.auth_level == "FUNCTION" and "{tenant}" in route.route
    ]


def test_every_operator_route_of_a_tenant_homed_elsewhere_is_a_421(manage, azurite, tenant_id):
    assert manage.put(f"/manage/tenants/{tenant_id}", json={"region": "us"}).status_code == 201
    routes = operator_routes()
    checked = {(route.route, method) for route in routes for method in route.methods}
    assert set(EXEMPT) <= checked, "an exemption names no route of the app"
    assert len(checked - set(EXEMPT)) >= 20  # the manage routes of every capability, not an empty enumeration
    before = blob_states(azurite, ("registry", "state", "audit"), within=(tenant_id,))
    wrong: list[str] = []
    for route in routes:
        assert route.methods, route.route  # a route of every method would need each one checked
        path = re.sub(r"\{[a-z_]+\}", SOME_ID, route.route.replace("{tenant}", tenant_id))
        for method in route.methods:
            if (route.route, method) in EXEMPT:
                continue
            body = {"json": {}} if method in ("PUT", "POST") else {}
            answer = manage.request(method, f"/{path}", **body)
            shown = f"{method} /{route.route}: {answer.status_code} {answer.text[:120]}"
            if answer.status_code != 421:
                wrong.append(shown)
                continue
            found = answer.json()
            if (found.get("error"), found.get("region"), found.get("base_url")) != ("misdirected", "us", US_URL):
                wrong.append(shown)
            wrong.extend(f"{shown}: {error}" for error in documented_errors(answer, f"/{route.route}", method))
    assert wrong == []
    assert blob_states(azurite, ("registry", "state", "audit"), within=(tenant_id,)) == before
