"""The snippet in a real headless Chromium on the demo's single-page application: page views as the address
changes, custom events, outbound links and downloads, the beacon and its image fallback, GPC, the notice link,
and the snippet's size."""

from __future__ import annotations

import gzip
import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from devenv.azurite import free_port
from devenv.demo import DEMO_DATASET, demo_dataset, serve_demo_page
from shared.pixel.hits import render_snippet
from shared.registry.models import DatasetDoc
from tests.factories import BROWSER_UA, ROOT, all_blobs

pytestmark = pytest.mark.browser

NO_BEACON = "delete Navigator.prototype.sendBeacon"
GPC = "Object.defineProperty(navigator, 'globalPrivacyControl', {get: () => true})"
DNT = "Object.defineProperty(navigator, 'doNotTrack', {get: () => '1'})"


@pytest.fixture
def spa(host, manage, tenant_id) -> Iterator[tuple[str, str]]:
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    assert manage.put(f"/manage/tenants/{tenant_id}", json={}).status_code == 201
    answer = manage.put(f"/manage/tenants/{tenant_id}/datasets/{DEMO_DATASET}", json=demo_dataset(origin))
    assert answer.status_code == 201
    server = serve_demo_page(port, host, tenant_id, DEMO_DATASET)
    yield origin, tenant_id
    server.shutdown()


def records(azurite, tenant):
    stored = [json.loads(body) for body in all_blobs(azurite, "records", f"{tenant}/").values()]
    return sorted(stored, key=lambda record: record["id"])  # ids sort in capture order


def page_views(azurite, tenant):
    return [record for record in records(azurite, tenant) if "event" not in record["fields"]]


def is_pixel(url: str) -> bool:
    return "/api/px/" in url and "snippet.js" not in url


def answered(page, dataset: str, *, event: bool):
    """Waits for the answer to the snippet's page view (event=False) or event hit for `dataset`: a beacon may
    still be in flight when the page looks idle."""

    def wanted(response) -> bool:
        request = response.request
        if not is_pixel(response.url) or request.method != "POST" or not response.url.endswith(f"/{dataset}"):
            return False
        return ("event" in json.loads(request.post_data or "{}")) is event

    return page.expect_response(wanted)


def open_app(browser, origin, *init_scripts):
    context = browser.new_context(user_agent=BROWSER_UA)
    for script in init_scripts:
        context.add_init_script(script)
    page = context.new_page()
    sent = []
    page.on("request", lambda request: sent.append(request) if is_pixel(request.url) else None)
    return context, page, sent


def ready(page) -> None:
    """The snippet has run, and whatever it sent has been answered."""
    page.wait_for_function("() => !!(window.packcloud && window.packcloud.snippets)")
    page.wait_for_load_state("networkidle")


def test_three_navigations_in_a_single_page_application_store_exactly_three_page_views(browser, spa, azurite):
    origin, tenant = spa
    context, page, sent = open_app(browser, origin)
    with page.expect_response(lambda response: is_pixel(response.url)):
        page.goto(f"{origin}/app")
    with page.expect_response(lambda response: is_pixel(response.url)):
        page.click("text=Features")
    page.click("text=Features")  # the same page again: no second view
    page.evaluate("history.replaceState({}, '', '/app/features?tab=2#more')")  # same path: no view either
    with page.expect_response(lambda response: is_pixel(response.url)):
        page.click("text=Pricing")
    ready(page)
    assert [record["fields"]["page_url"] for record in page_views(azurite, tenant)] == [
        f"{origin}/app",
        f"{origin}/app/features",
        f"{origin}/app/pricing",
    ]
    assert len(records(azurite, tenant)) == 3 and len(sent) == 3
    # Each hit went as a beacon: a POST whose text/plain body carries the parameters, answered 204.
    assert {(request.method, request.response().status) for request in sent} == {("POST", 204)}
    assert sent[0].header_value("content-type").startswith("text/plain")
    assert json.loads(sent[0].post_data)["page_url"] == f"{origin}/app"
    # One visitor id across the application's pages.
    assert len({record["fields"]["visitor"] for record in records(azurite, tenant)}) == 1
    context.close()


def test_the_back_button_and_a_replaced_path_count_as_page_views(browser, spa, azurite):
    origin, tenant = spa
    context, page, _ = open_app(browser, origin)
    page.goto(f"{origin}/app")
    ready(page)
    with page.expect_response(lambda response: is_pixel(response.url)):
        page.click("text=Pricing")
    with page.expect_response(lambda response: is_pixel(response.url)):
        page.go_back()  # popstate
    with page.expect_response(lambda response: is_pixel(response.url)):
        page.evaluate("history.replaceState({}, '', '/app/features')")
    ready(page)
    assert [record["fields"]["page_url"] for record in page_views(azurite, tenant)] == [
        f"{origin}/app",
        f"{origin}/app/pricing",
        f"{origin}/app",
        f"{origin}/app/features",
    ]
    context.close()


def test_without_sendbeacon_the_image_carries_the_same_hits(browser, spa, azurite):
    origin, tenant = spa
    context, page, sent = open_app(browser, origin, NO_BEACON)
    with page.expect_response(lambda response: is_pixel(response.url)):
        page.goto(f"{origin}/app")
    with page.expect_response(lambda response: is_pixel(response.url)):
        page.click("text=Features")
    with page.expect_response(lambda response: is_pixel(response.url)):
        page.click("#signup")
    ready(page)
    assert {(request.method, request.response().status) for request in sent} == {("GET", 200)}
    assert [record["fields"].get("event") for record in records(azurite, tenant)] == [None, None, "signup"]
    context.close()


def test_a_custom_event_keeps_only_its_declared_properties(browser, spa, azurite):
    origin, tenant = spa
    context, page, sent = open_app(browser, origin)
    page.goto(f"{origin}/app/pricing")
    ready(page)
    with page.expect_response(lambda response: is_pixel(response.url)) as answer:
        page.click("#signup")  # packcloud("event", "signup", {plan: "pro", coupon: "SPRING"})
    assert answer.value.status == 204
    (event,) = [record for record in records(azurite, tenant) if "event" in record["fields"]]
    assert event["fields"]["event"] == "signup" and event["fields"]["plan"] == "pro"
    assert event["fields"]["page_url"] == f"{origin}/app/pricing"  # the page it happened on, as a page view has
    assert set(event["fields"]) == {"event", "plan", "page_url", "visitor", "ip"}
    assert event["dropped_fields"] == 1 and "SPRING" not in json.dumps(event)  # the coupon: counted, not kept
    # An event the dataset does not declare is not even sent.
    page.evaluate("packcloud('event', 'purchase', {plan: 'pro'})")
    ready(page)
    assert len(sent) == 2 and len(records(azurite, tenant)) == 2
    context.close()


def test_events_called_before_the_snippet_loads_wait_in_the_queue(browser, host, spa, azurite):
    origin, tenant = spa
    context, page, _ = open_app(browser, origin)
    # The queue stub runs first; the call goes before the async snippet has loaded.
    page.route(
        f"{host}/px/snippet.js*",
        lambda route: (page.evaluate("packcloud('event', 'signup', {plan: 'free'})"), route.continue_()),
    )
    with answered(page, DEMO_DATASET, event=False), answered(page, DEMO_DATASET, event=True):
        page.goto(f"{origin}/app")
    stored = records(azurite, tenant)
    assert sorted(record["fields"].get("event", "") for record in stored) == ["", "signup"]
    assert next(record for record in stored if "event" in record["fields"])["fields"]["plan"] == "free"
    context.close()


def test_outbound_links_and_downloads_send_their_events_with_the_link_cut(browser, spa, azurite):
    origin, tenant = spa
    context, page, _ = open_app(browser, origin)
    page.route("https://www.example.com/**", lambda route: route.fulfill(status=204))
    page.goto(f"{origin}/app")
    ready(page)
    page.evaluate("document.addEventListener('click', function (e) { e.preventDefault(); })")  # stay on the page
    with page.expect_response(lambda response: is_pixel(response.url)):
        page.click("#outbound")
    with page.expect_response(lambda response: is_pixel(response.url)):
        page.click("#download")
    ready(page)
    events = [record["fields"] for record in records(azurite, tenant) if "event" in record["fields"]]
    assert [(fields["event"], fields["url"]) for fields in events] == [
        ("outbound", "https://www.example.com/partners"),
        ("download", f"{origin}/files/price-list.pdf"),
    ]
    page.click("text=Features")  # a link on the same site is no outbound link
    ready(page)
    assert len([record for record in records(azurite, tenant) if "event" in record["fields"]]) == 2
    context.close()


@pytest.mark.parametrize("objection", [GPC, DNT], ids=["gpc", "dnt"])
def test_with_gpc_or_dnt_nothing_is_sent_or_stored_but_the_notice_link_is_set(browser, host, spa, azurite, objection):
    origin, tenant = spa
    context, page, sent = open_app(browser, origin, objection)
    with page.expect_response(lambda response: "snippet.js" in response.url):
        page.goto(f"{origin}/app")
    page.wait_for_load_state("networkidle")
    page.click("text=Features")
    page.click("#signup")
    page.evaluate("packcloud('event', 'signup', {plan: 'free'})")
    page.evaluate("document.addEventListener('click', function (e) { e.preventDefault(); })")
    page.click("#outbound")
    page.click("#download")
    page.wait_for_load_state("networkidle")
    assert sent == [] and records(azurite, tenant) == []
    assert "pc_vid" not in {cookie["name"] for cookie in context.cookies(origin)}
    notice = page.get_attribute("[data-packcloud-notice]", "href")
    assert notice == f"{host}/notice/{tenant}/{DEMO_DATASET}"
    context.close()


def test_the_notice_link_points_at_the_datasets_notice(browser, host, spa, azurite):
    origin, tenant = spa
    context, page, _ = open_app(browser, origin)
    page.goto(f"{origin}/")
    ready(page)
    assert page.get_attribute("[data-packcloud-notice]", "href") == f"{host}/notice/{tenant}/{DEMO_DATASET}"
    context.close()


TERSER = ROOT / "node_modules" / ".bin" / "terser"


def test_the_snippet_is_under_2_kb_minified_and_gzipped():
    now = datetime(2026, 11, 27, tzinfo=UTC)
    declared = {**demo_dataset("https://www.contoso.example"), "tenant": "contoso", "id": DEMO_DATASET}
    dataset = DatasetDoc.model_validate({**declared, "created_at": now, "updated_at": now})
    script = render_snippet(dataset, f"https://packcloud-eu.example.net/api/px/contoso/{DEMO_DATASET}")
    minified = subprocess.run(
        [str(TERSER), "--compress", "--mangle"], input=script.encode(), capture_output=True, check=True, timeout=120
    ).stdout
    assert b"sendBeacon" in minified and b"pushState" in minified  # the whole snippet, configured
    assert len(gzip.compress(minified, compresslevel=9)) < 2048


def test_every_snippet_on_a_page_gets_the_events_called_before_it_loaded(browser, host, manage, spa, azurite):
    """Two datasets on one page: an event called before either snippet has loaded reaches both, the second
    loaded only after the first has sent it."""
    origin, tenant = spa
    assert manage.put(f"/manage/tenants/{tenant}/datasets/second", json=demo_dataset(origin)).status_code == 201
    context, page, _ = open_app(browser, origin)
    page.route(
        f"{host}/px/snippet.js?tenant={tenant}&dataset={DEMO_DATASET}",
        lambda route: (page.evaluate("packcloud('event', 'signup', {plan: 'pro'})"), route.continue_()),
    )
    with answered(page, DEMO_DATASET, event=False), answered(page, DEMO_DATASET, event=True):
        page.goto(f"{origin}/app")
    with answered(page, "second", event=False), answered(page, "second", event=True):
        page.evaluate(
            "src => { const s = document.createElement('script'); s.src = src; document.head.appendChild(s); }",
            f"{host}/px/snippet.js?tenant={tenant}&dataset=second",
        )
    stored = records(azurite, tenant)
    events = sorted(record["dataset"] for record in stored if record["fields"].get("event") == "signup")
    assert events == sorted([DEMO_DATASET, "second"])
    assert len(stored) == 4  # a page view and the event in each
    context.close()
