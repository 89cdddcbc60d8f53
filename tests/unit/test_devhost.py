"""The local host's reading of an app without starting it: its HTTP routes, route templates and schedules.
Serving the sample app over real HTTP is in tests/integration/test_devhost.py."""

from __future__ import annotations

import importlib.util
import os

import pytest

from devhost.routes import compile_template, http_routes
from devhost.timers import resolve_schedule
from tests.factories import DEVHOST_SAMPLE_APP as SAMPLE


def test_http_routes_reads_the_app():
    spec = importlib.util.spec_from_file_location("devhost_sample_function_app", SAMPLE / "function_app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    routes = {route.function_name: route for route in http_routes(module.app)}
    assert routes["secret"].auth_level == "FUNCTION" and routes["echo"].auth_level == "ANONYMOUS"
    assert routes["admin_only"].auth_level == "ADMIN"
    assert routes["echo"].methods == ("POST", "GET") and routes["boom"].methods == ()
    names = [route.function_name for route in http_routes(module.app)]
    assert names.index("items_special") < names.index("items_any")


@pytest.mark.parametrize(
    ("template", "path", "params"),
    [
        ("a/{b}", "a/x", {"b": "x"}),
        ("a/{b:int}", "a/12", {"b": "12"}),
        ("a/{b:int}", "a/x", None),
        ("a/{b:guid}", "a/0f8fad5b-d9cb-469f-a165-70867728950e", {"b": "0f8fad5b-d9cb-469f-a165-70867728950e"}),
        ("a/{b?}", "a", {}),
        ("a/{*rest}", "a/x/y", {"rest": "x/y"}),
        ("a/b", "a/b/c", None),
    ],
)
def test_route_templates(template, path, params):
    pattern, _ = compile_template(template)
    found = pattern.fullmatch(path)
    result = None if found is None else {k: v for k, v in found.groupdict().items() if v is not None}
    assert result == params


def test_ncrontab_schedules():
    assert resolve_schedule("0 5 * * * *") == "5 * * * * 0"
    with pytest.raises(RuntimeError, match="six"):
        resolve_schedule("5 * * * *")
    os.environ["DEVHOST_TEST_SCHEDULE"] = "30 0 * * * *"
    try:
        assert resolve_schedule("%DEVHOST_TEST_SCHEDULE%") == "0 * * * * 30"
    finally:
        del os.environ["DEVHOST_TEST_SCHEDULE"]
