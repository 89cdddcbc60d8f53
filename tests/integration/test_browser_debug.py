"""The README's promise from a newcomer's side: the demo page in a headless browser stores nothing (its user agent
says HeadlessChrome, a bot), a normal browser's stores one record, and the local host in debug mode (`make run
DEBUG=1`) says which, with a reason code and no value."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from devenv.azurite import free_port, wait_for_port
from devenv.demo import DEMO_DATASET, demo_dataset, serve_demo_page
from devenv.local_host import stop_local_host
from tests.factories import BROWSER_UA, FUNCTION_KEY, HOST_MASTER_KEY, ROOT, all_blobs, settings_env

pytestmark = pytest.mark.browser


@pytest.fixture
def debug_host(azurite, tmp_path) -> Iterator[tuple[str, object]]:
    """The local host as `make run DEBUG=1` starts it: every logger at DEBUG, its output kept."""
    port = free_port()
    log_path = tmp_path / "host.log"
    env = {
        **os.environ,
        **settings_env(azurite),
        "DEVHOST_FUNCTION_KEY": FUNCTION_KEY,
        "DEVHOST_MASTER_KEY": HOST_MASTER_KEY,
        "DEVHOST_LOG_LEVEL": "debug",
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "devhost", "--root", str(ROOT), "--port", str(port)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            wait_for_port(port, 60, process)
            yield f"http://127.0.0.1:{port}/api", log_path
        finally:
            stop_local_host(process)


def reasons(log_path) -> list[str]:
    return [line for line in log_path.read_text(errors="replace").splitlines() if "pixel hit" in line]


def test_a_headless_browser_stores_nothing_a_normal_one_stores_one_and_debug_mode_says_why(
    browser, debug_host, azurite, tenant_id
):
    host, log_path = debug_host
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=host, headers={"x-functions-key": FUNCTION_KEY}, timeout=30) as manage:
        assert manage.put(f"/manage/tenants/{tenant_id}", json={}).status_code == 201
        answer = manage.put(f"/manage/tenants/{tenant_id}/datasets/{DEMO_DATASET}", json=demo_dataset(origin))
        assert answer.status_code == 201, answer.text
    server = serve_demo_page(port, host, tenant_id, DEMO_DATASET)
    try:
        headless = browser.new_context()  # Playwright's own user agent: "... HeadlessChrome/..."
        assert "HeadlessChrome" in headless.new_page().evaluate("navigator.userAgent")
        page = headless.new_page()
        with page.expect_response(lambda response: "/api/px/" in response.url and "snippet" not in response.url):
            page.goto(f"{origin}/pricing?utm_source=newsletter")
        assert all_blobs(azurite, "records", f"{tenant_id}/") == {}
        assert any(line.endswith("pixel hit not recorded: bot") for line in reasons(log_path))

        normal = browser.new_context(user_agent=BROWSER_UA).new_page()
        with normal.expect_response(lambda response: "/api/px/" in response.url and "snippet" not in response.url):
            normal.goto(f"{origin}/pricing")
        (record,) = [json.loads(body) for body in all_blobs(azurite, "records", f"{tenant_id}/").values()]
        assert record["fields"]["page_url"] == f"{origin}/pricing"
        assert any(line.endswith("pixel hit: recorded") for line in reasons(log_path))
    finally:
        server.shutdown()
    for line in reasons(log_path):  # a reason code, never a value of the hit
        assert origin not in line and "pricing" not in line and "Mozilla" not in line and tenant_id not in line
