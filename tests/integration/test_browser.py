"""The demo page in a real headless Chromium: one page view with only declared fields; with GPC, nothing;
the visitor cookie's expiry fixed at creation; the consent hook; sites that send no referrer."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from devenv.azurite import free_port
from devenv.demo import DEMO_DATASET, demo_dataset, serve_demo_page
from shared.pixel.hits import GIF
from tests.factories import BROWSER_UA, all_blobs

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
    assert (pixel.value.request.method, pixel.value.status) == ("POST", 204)  # a beacon, where the browser has one
    assert pixel.value.header_value("set-cookie") is None  # no third-party cookie

    (record,) = records(azurite, tenant)
    assert set(record["fields"]) == {"page_url", "visitor", "ip"}
    assert record["fields"]["page_url"] == f"{origin}/pricing"  # the query is cut unless the dataset keeps it
    assert re.fullmatch(r"[0-9a-f]{32}", record["fields"]["visitor"])
    assert record["fields"]["ip"] == "127.0.0.0"

    # The visitor id is a first-party cookie of the page's site, reused on the next visit.
    cookies = {cookie["name"]: cookie for cookie in context.cookies(origin)}
    assert cookies["pc_vid"]["value"].split(".")[0] == record["fields"]["visitor"]
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
    assert pixel.value.status == 204  # the beacon is answered as any other
    assert records(azurite, tenant) == []
    context.close()


RETENTION_SECONDS = demo_dataset("http://127.0.0.1")["retention_days"] * 86400
VISITOR_COOKIE = re.compile(r"([0-9a-f]{32})\.([0-9]+)")
NO_REFERRER = {"Referrer-Policy": "no-referrer"}
QUEUE_STUB = (
    "<script>window.packcloud=window.packcloud||function(){(packcloud.q=packcloud.q||[]).push(arguments)};</script>"
)


def visitor_cookie(context, origin):
    return next((cookie for cookie in context.cookies(origin) if cookie["name"] == "pc_vid"), None)


def test_the_visitor_cookie_expires_a_retention_after_its_creation_and_is_never_extended(browser, demo_site, azurite):
    origin, tenant = demo_site
    context = browser.new_context(user_agent=BROWSER_UA)
    page = context.new_page()
    with page.expect_response(lambda response: is_pixel(response.url)):
        page.goto(f"{origin}/pricing")
    first = visitor_cookie(context, origin)
    visitor, created = VISITOR_COOKIE.fullmatch(first["value"]).groups()
    # Max-Age counts from the browser's now, a moment after the creation time the snippet wrote (whole seconds).
    assert 0 <= first["expires"] - (int(created) + RETENTION_SECONDS) < 60

    for _ in range(2):
        with page.expect_response(lambda response: is_pixel(response.url)):
            page.reload()
    again = visitor_cookie(context, origin)
    assert (again["value"], again["expires"]) == (first["value"], first["expires"])
    assert {r["fields"]["visitor"] for r in records(azurite, tenant)} == {visitor}
    context.close()


@pytest.mark.parametrize(
    "planted",
    [
        "{id}.{too_old}",  # created longer ago than the retention (a clock moved, a retention shortened)
        "{id}.{future}",  # created more than a day ahead
        "{id}",  # written by the snippet before the creation time was kept: its age is unknown
    ],
)
def test_a_visitor_id_without_a_known_age_within_the_retention_is_replaced(browser, demo_site, azurite, planted):
    origin, tenant = demo_site
    context = browser.new_context(user_agent=BROWSER_UA)
    old_id = "ab" * 16
    now = int(context.new_page().evaluate("Date.now() / 1000"))
    value = planted.format(id=old_id, too_old=now - RETENTION_SECONDS - 60, future=now + 2 * 86400)
    context.add_cookies([{"name": "pc_vid", "value": value, "url": origin, "expires": now + 400 * 86400}])
    page = context.new_page()
    with page.expect_response(lambda response: is_pixel(response.url)):
        page.goto(f"{origin}/pricing")
    (record,) = records(azurite, tenant)
    assert re.fullmatch(r"[0-9a-f]{32}", record["fields"]["visitor"]) and record["fields"]["visitor"] != old_id
    cookie = visitor_cookie(context, origin)
    visitor, created = VISITOR_COOKIE.fullmatch(cookie["value"]).groups()
    assert visitor == record["fields"]["visitor"] and abs(int(created) - now) < 60
    assert cookie["expires"] < now + RETENTION_SECONDS + 60  # the planted 400 days are gone with it
    context.close()


@pytest.fixture
def own_site(host, manage, tenant_id) -> Iterator[tuple[str, str, dict[str, tuple[str, dict[str, str]]]]]:
    """The demo dataset on a site whose pages (path -> HTML, response headers) each test writes. Served from
    loopback like the demo site: Chromium lets only such pages load scripts from the loopback host."""
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    assert manage.put(f"/manage/tenants/{tenant_id}", json={}).status_code == 201
    answer = manage.put(f"/manage/tenants/{tenant_id}/datasets/{DEMO_DATASET}", json=demo_dataset(origin))
    assert answer.status_code == 201
    pages: dict[str, tuple[str, dict[str, str]]] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path not in pages:
                self.send_error(404)
                return
            html, headers = pages[self.path]
            body = html.encode()
            self.send_response(200)
            for name, value in {"Content-Type": "text/html", "Content-Length": str(len(body)), **headers}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield origin, tenant_id, pages
    server.shutdown()


def snippet_tag(host: str, tenant: str, consent: str | None = None) -> str:
    attribute = f' data-consent="{consent}"' if consent else ""
    return f'<script async{attribute} src="{host}/px/snippet.js?tenant={tenant}&dataset={DEMO_DATASET}"></script>'


def snippet_ran(page) -> None:
    """The snippet has run (it registered with window.packcloud) and anything it sent has gone out."""
    page.wait_for_function(
        "() => !!(window.packcloud && window.packcloud.snippets && window.packcloud.snippets.length)"
    )
    page.wait_for_load_state("networkidle")


def consent_page(host: str, tenant: str, consent: str, before: str = "") -> str:
    return f"<!doctype html><title>c</title>{QUEUE_STUB}{before}{snippet_tag(host, tenant, consent)}"


def test_with_consent_required_nothing_is_sent_or_stored_until_the_page_gives_it(browser, host, own_site, azurite):
    origin, tenant, pages = own_site
    pages["/consent"] = (consent_page(host, tenant, "required"), {})
    context = browser.new_context(user_agent=BROWSER_UA)
    page = context.new_page()
    pixel_requests: list[str] = []
    page.on("request", lambda request: pixel_requests.append(request.url) if is_pixel(request.url) else None)
    page.goto(f"{origin}/consent")
    snippet_ran(page)
    assert pixel_requests == [] and records(azurite, tenant) == []
    assert visitor_cookie(context, origin) is None

    page.evaluate("packcloud('consent', false)")  # refused: still nothing
    page.wait_for_load_state("networkidle")
    assert pixel_requests == [] and visitor_cookie(context, origin) is None

    with page.expect_response(lambda response: is_pixel(response.url)) as pixel:
        page.evaluate("packcloud('consent', true)")
    assert pixel.value.status == 204
    (record,) = records(azurite, tenant)
    assert record["fields"]["page_url"] == f"{origin}/consent"
    assert visitor_cookie(context, origin)["value"].split(".")[0] == record["fields"]["visitor"]

    page.evaluate("packcloud('consent', false)")  # withdrawn: the id is forgotten, nothing more is sent
    page.wait_for_load_state("networkidle")
    assert visitor_cookie(context, origin) is None and len(pixel_requests) == 1
    context.close()


def test_consent_given_before_the_snippet_loads_waits_in_the_queue(browser, host, own_site, azurite):
    origin, tenant, pages = own_site
    pages["/consent"] = (consent_page(host, tenant, "required", "<script>packcloud('consent', true)</script>"), {})
    context = browser.new_context(user_agent=BROWSER_UA)
    page = context.new_page()
    with page.expect_response(lambda response: is_pixel(response.url)):
        page.goto(f"{origin}/consent")
    (record,) = records(azurite, tenant)
    assert visitor_cookie(context, origin)["value"].split(".")[0] == record["fields"]["visitor"]
    context.close()


def test_with_consent_for_the_visitor_id_page_views_go_without_it_until_given(browser, host, own_site, azurite):
    origin, tenant, pages = own_site
    pages["/consent"] = (consent_page(host, tenant, "visitor"), {})
    context = browser.new_context(user_agent=BROWSER_UA)
    page = context.new_page()
    pixel_requests: list[str] = []
    page.on("request", lambda request: pixel_requests.append(request.url) if is_pixel(request.url) else None)
    with page.expect_response(lambda response: is_pixel(response.url)):
        page.goto(f"{origin}/consent")
    (record,) = records(azurite, tenant)
    assert "visitor" not in record["fields"] and visitor_cookie(context, origin) is None

    page.evaluate("packcloud('consent', true)")  # the id is set for the next page views; this one is not resent
    page.wait_for_load_state("networkidle")
    assert VISITOR_COOKIE.fullmatch(visitor_cookie(context, origin)["value"])
    assert len(pixel_requests) == 1 and len(records(azurite, tenant)) == 1
    context.close()


NO_BEACON = "delete Navigator.prototype.sendBeacon"


@pytest.mark.parametrize("policy_in", ["header", "meta"])
@pytest.mark.parametrize("transport", ["beacon", "image"])
def test_a_site_that_sends_no_referrer_still_counts_through_the_snippet_only(
    browser, host, own_site, azurite, policy_in, transport
):
    """The snippet's hit names the page's origin whatever the page's policy (the beacon in its Origin header, the
    image, where a browser has no beacon, in a Referer of its own policy); a bare <img> sends nothing, and its
    page_url alone, which any site could write, no longer counts."""
    origin, tenant, pages = own_site
    bare = f'<img src="{host}/px/{tenant}/{DEMO_DATASET}?page_url={origin}/bare&visitor=bare-img" alt="">'
    meta = '<meta name="referrer" content="no-referrer">' if policy_in == "meta" else ""
    html = f"<!doctype html>{meta}<title>n</title>{snippet_tag(host, tenant)}{bare}"
    pages["/private"] = (html, NO_REFERRER if policy_in == "header" else {})
    context = browser.new_context(user_agent=BROWSER_UA)
    if transport == "image":
        context.add_init_script(NO_BEACON)
    page = context.new_page()
    requests: dict[str, Any] = {}

    def seen(request) -> None:
        if is_pixel(request.url):
            requests["bare" if "bare-img" in request.url else "snippet"] = request

    page.on("request", seen)
    with page.expect_response(lambda response: is_pixel(response.url) and "bare-img" not in response.url) as pixel:
        page.goto(f"{origin}/private")
    snippet_ran(page)
    sent = {name: request.all_headers() for name, request in requests.items()}
    assert not sent["bare"].get("referer")
    if transport == "beacon":
        assert (pixel.value.request.method, pixel.value.status) == ("POST", 204)
        # No Referer: the record below stands only because Chromium's Origin header named the site.
        assert not sent["snippet"].get("referer")
    else:
        assert pixel.value.status == 200 and pixel.value.body() == GIF
        assert sent["snippet"]["referer"] == f"{origin}/"  # the origin, never the path
    (record,) = records(azurite, tenant)
    assert record["fields"]["page_url"] == f"{origin}/private" and record["fields"]["visitor"] != "bare-img"
    context.close()


def test_a_dataset_that_keeps_url_queries_gets_them_from_the_snippet(browser, demo_site, manage, azurite):
    origin, tenant = demo_site
    kept = {**demo_dataset(origin), "keep_url_query": True}
    assert manage.put(f"/manage/tenants/{tenant}/datasets/{DEMO_DATASET}", json=kept).status_code == 200
    context = browser.new_context(user_agent=BROWSER_UA)
    page = context.new_page()
    with page.expect_response(lambda response: is_pixel(response.url)):
        page.goto(f"{origin}/pricing?utm_source=newsletter#plans")
    (record,) = records(azurite, tenant)
    assert record["fields"]["page_url"] == f"{origin}/pricing?utm_source=newsletter#plans"
    context.close()
