"""Tracked links in a real headless Chromium: a click on a link in a page lands on the asset and stores one
visit; with Global Privacy Control, the click still lands and nothing is stored."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from devenv.azurite import free_port
from tests.factories import BROWSER_UA, CONTACT, LINKS, all_blobs

pytestmark = pytest.mark.browser

ASSET = "<!doctype html><title>Brochure</title><h1>The spring brochure</h1>"


@pytest.fixture
def site(host, manage, anon, tenant_id) -> Iterator[tuple[str, str, str]]:
    """A site with the asset, a link dataset whose targets must be on it, and a page linking to a tracked link."""
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    created = manage.put(f"/manage/tenants/{tenant_id}", json={})
    assert created.status_code == 201
    answer = manage.put(f"/manage/tenants/{tenant_id}/datasets/assets", json={**LINKS, "allowed_origins": [origin]})
    assert answer.status_code == 201
    made = anon.post(
        f"/links/{tenant_id}/assets",
        json={"target_url": f"{origin}/brochure?edition=spring", "contact_id": CONTACT},
        headers={"authorization": f"Bearer {created.json()['api_key']}"},
    )
    assert made.status_code == 201, made.text
    # The region's public URL is configured for the test host; the page links to the host itself.
    link = f"{host}/go/{tenant_id}/{made.json()['link']}"
    pages = {
        "/mail": f'<!doctype html><title>Mail</title><p><a id="asset" href="{link}">Our spring brochure</a></p>',
        "/brochure?edition=spring": ASSET,
    }

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path not in pages:
                self.send_error(404)
                return
            body = pages[self.path].encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield origin, tenant_id, made.json()["link"]
    server.shutdown()


def records(azurite, tenant):
    return [json.loads(body) for body in all_blobs(azurite, "records", f"{tenant}/").values()]


def click_through(browser, origin: str, **options):
    context = browser.new_context(user_agent=BROWSER_UA, **options)
    page = context.new_page()
    page.goto(f"{origin}/mail")
    with page.expect_navigation(url=f"{origin}/brochure?edition=spring"):
        page.click("#asset")
    landed = (page.url, page.inner_text("h1"))
    context.close()
    return landed


def test_a_click_lands_on_the_asset_and_stores_one_visit(browser, site, azurite):
    origin, tenant, link = site
    assert click_through(browser, origin) == (f"{origin}/brochure?edition=spring", "The spring brochure")
    (record,) = records(azurite, tenant)
    assert record["dataset"] == "assets"
    assert record["fields"]["link_id"] == link and record["fields"]["contact_id"] == CONTACT
    assert record["fields"]["target_url"] == f"{origin}/brochure"
    assert record["fields"]["referrer"] == f"{origin}/"  # the browser sends the page's origin only
    assert record["fields"]["ip"] == "127.0.0.0"


def test_with_gpc_the_click_still_lands_and_nothing_is_stored(browser, site, azurite):
    origin, tenant, _ = site
    landed = click_through(browser, origin, extra_http_headers={"Sec-GPC": "1"})
    assert landed == (f"{origin}/brochure?edition=spring", "The spring brochure")
    assert records(azurite, tenant) == []
