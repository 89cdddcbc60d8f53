"""openapi.yaml describes exactly the routes the function app registers, with their methods."""

import yaml

from devhost.routes import http_routes
from tests.factories import ROOT

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "options", "head"}


def registered() -> set[tuple[str, str]]:
    """Every route of the app in any role: the registration routes exist in the home deployment only."""
    import azure.functions as func

    import function_app
    from functions import registration

    apps = [function_app.app]
    if "registration" not in function_app.settings.role:
        home_only = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
        home_only.register_functions(registration.bp)
        apps.append(home_only)
    return {
        ("/" + route.route, method.upper()) for app in apps for route in http_routes(app) for method in route.methods
    }


def documented() -> set[tuple[str, str]]:
    spec = yaml.safe_load((ROOT / "openapi.yaml").read_text())
    return {(path, method.upper()) for path, item in spec["paths"].items() for method in item if method in HTTP_METHODS}


def test_openapi_paths_and_methods_match_the_function_app():
    assert registered() == documented()


NOT_JSON_EVEN_IN_ERROR = {"pixel": "image/gif", "pixel_snippet": "application/javascript"}
# Pages people open in a browser: an error is a page there too, and the error JSON for a program that asks for JSON.
PAGES = {"notice"}
# What a person opens in a browser answers its errors as a page: a followed link.
HTML_PAGES = {"links_go": ("404", "503")}


def test_every_documented_error_uses_the_error_schema():
    spec = yaml.safe_load((ROOT / "openapi.yaml").read_text())
    page_error = spec["components"]["responses"]["PageError"]["content"]
    assert page_error["application/json"] == spec["components"]["responses"]["Error"]["content"]["application/json"]
    for item in spec["paths"].values():
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            for status, response in operation["responses"].items():
                if operation["operationId"] in NOT_JSON_EVEN_IN_ERROR and status == "503":
                    # What a page embeds answers in its own type even then: a GIF, a do-nothing script.
                    assert list(response["content"]) == [NOT_JSON_EVEN_IN_ERROR[operation["operationId"]]]
                    assert "Retry-After" in response["headers"]
                elif status.startswith(("4", "5")) and operation["operationId"] in PAGES:
                    assert response == {"$ref": "#/components/responses/PageError"}, (method, status)
                elif status in HTML_PAGES.get(operation["operationId"], ()):
                    assert list(response["content"]) == ["text/html"]
                elif status.startswith(("4", "5")):
                    assert response == {"$ref": "#/components/responses/Error"}, (method, status)


def test_every_route_that_needs_storage_documents_its_503():
    # tests/integration/test_faults.py checks each of them really answers 503 with Retry-After while storage is away.
    spec = yaml.safe_load((ROOT / "openapi.yaml").read_text())
    without = {
        operation["operationId"]
        for item in spec["paths"].values()
        for method, operation in item.items()
        if method in HTTP_METHODS and "503" not in operation["responses"]
    }
    assert without == {"webform_snippet"}  # a static script
