"""The demo page in a real headless Chromium: one page view with only declared fields; with GPC, nothing."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest

from devenv.azurite import free_port
from devenv.demo import DEMO_DATASET, demo_dataset, serve_demo_page
from tests.conftest import BROWSER_UA, all_blobs

pytestmark = pytest.mark.browser


@pytest.fixture
def demo_site(host, manage, tenant_id) -> Iterator[tuple[str, str]]:
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    assert manage.put(f"/manage/tenants/{tenant_id}", json={}).status_code == 201
    answer = manage.put(f"/manage/tenants/{tenant_id}/datasets/{DEMO_DATASET}", json=demo_dataset(origin))
    assert answer.status_code == 201
    server = serve_demo_page(port, host, tenant_id, DEMO_DATASET)
    yield origin, tenant_id
    server.shutdown()


def records(azurite, tenant):
    return [json.loads(body) for body in all_blobs(azurite, "records", f"{tenant}/").values()]


def is_pixel(url: str) -> bool:
    return "/api/px/" in url and "snippet.js" not in url


def test_a_page_view_lands_with_only_declared_fields(browser, demo_site, azurite):
    origin, tenant = demo_site
    context = browser.new_context(user_agent=BROWSER_UA)
    page = context.new_page()
    with page.expect_response(lambda response: is_pixel(response.url)) as pixel:
        page.goto(f"{origin}/pricing?utm_source=newsletter")
    assert pixel.value.status == 200
    assert pixel.value.header_value("content-type") == "image/gif"
    assert pixel.value.header_value("set-cookie") is None  # no third-party cookie

    (record,) = records(azurite, tenant)
    assert set(record["fields"]) == {"page_url", "visitor", "ip"}
    assert record["fields"]["page_url"] == f"{origin}/pricing?utm_source=newsletter"
    assert re.fullmatch(r"[0-9a-f]{32}", record["fields"]["visitor"])
    assert record["fields"]["ip"] == "127.0.0.0"

    # The visitor id is a first-party cookie of the page's site, reused on the next visit.
    cookies = {cookie["name"]: cookie for cookie in context.cookies(origin)}
    assert cookies["pc_vid"]["value"] == record["fields"]["visitor"]
    assert cookies["pc_vid"]["sameSite"] == "Lax"
    with page.expect_response(lambda response: is_pixel(response.url)):
        page.reload()
    visitors = {r["fields"]["visitor"] for r in records(azurite, tenant)}
    assert len(records(azurite, tenant)) == 2 and visitors == {record["fields"]["visitor"]}
    context.close()


def test_with_gpc_in_the_browser_the_snippet_sends_nothing(browser, demo_site, azurite):
    origin, tenant = demo_site
    context = browser.new_context(user_agent=BROWSER_UA)
    context.add_init_script("Object.defineProperty(navigator, 'globalPrivacyControl', {get: () => true})")
    page = context.new_page()
    pixel_requests: list[str] = []
    page.on("request", lambda request: pixel_requests.append(request.url) if is_pixel(request.url) else None)
    with page.expect_response(lambda response: "snippet.js" in response.url):
        page.goto(f"{origin}/pricing")
    page.wait_for_load_state("networkidle")
    assert pixel_requests == []
    assert records(azurite, tenant) == []
    assert "pc_vid" not in {cookie["name"] for cookie in context.cookies(origin)}
    context.close()


def test_with_only_the_gpc_header_the_server_records_nothing(browser, demo_site, azurite):
    origin, tenant = demo_site
    context = browser.new_context(user_agent=BROWSER_UA, extra_http_headers={"Sec-GPC": "1"})
    page = context.new_page()
    with page.expect_response(lambda response: is_pixel(response.url)) as pixel:
        page.goto(f"{origin}/pricing")
    assert pixel.value.status == 200  # the page still gets its image
    assert records(azurite, tenant) == []
    context.close()
