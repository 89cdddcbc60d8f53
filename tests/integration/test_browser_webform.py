"""The demo contact form in a real headless Chromium: with the snippet, without JavaScript, and from a
site the dataset does not allow. Storage is read directly after each."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from devenv.azurite import free_port
from devenv.demo import DEMO_FORM, demo_form_dataset, serve_demo_page
from tests.factories import BROWSER_UA, all_blobs

pytestmark = pytest.mark.browser


@pytest.fixture
def form_site(host, manage, tenant_id) -> Iterator[tuple[str, str]]:
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    assert manage.put(f"/manage/tenants/{tenant_id}", json={}).status_code == 201
    answer = manage.put(f"/manage/tenants/{tenant_id}/datasets/{DEMO_FORM}", json=demo_form_dataset(origin))
    assert answer.status_code == 201, answer.text
    server = serve_demo_page(port, host, tenant_id)
    yield origin, tenant_id
    server.shutdown()


def records(azurite, tenant):
    return [json.loads(body) for body in all_blobs(azurite, "records", f"{tenant}/").values()]


def fill(page, email: str) -> None:
    page.fill("input[name=email]", email)
    page.fill("input[name=name]", "Jane Roe")
    page.select_option("select[name=topic]", "support")
    page.fill("input[name=rating]", "9")
    page.check("input[name=consent]")


def assert_only_declared(record) -> None:
    assert record["fields"] == {"email": "jane@example.com", "name": "Jane Roe", "topic": "support", "rating": 9}
    assert record["dropped_fields"] == 1
    assert record["meta"]["consent"]["text_version"] == "contact-2026-11"
    assert "winter-sale-7731" not in json.dumps(record)  # the undeclared hidden field never reaches storage


def test_the_snippet_submits_with_fetch_and_follows_the_redirect(browser, form_site, azurite):
    origin, tenant = form_site
    page = browser.new_context(user_agent=BROWSER_UA).new_page()
    page.goto(f"{origin}/contact")
    page.wait_for_selector("form[data-packcloud-ready]")
    fill(page, "jane@example.com")
    with page.expect_response(lambda r: "/api/forms/" in r.url and r.request.method == "POST") as posted:
        page.click("button[type=submit]")
    answer = posted.value
    assert answer.status == 201
    assert answer.request.headers["idempotency-key"]  # the snippet's submission id
    page.wait_for_url(f"{origin}/thanks")  # the dataset's redirect_url, from the JSON answer
    (record,) = records(azurite, tenant)
    assert_only_declared(record)


def test_the_snippet_shows_field_errors_inline_and_stores_nothing(browser, form_site, azurite):
    origin, tenant = form_site
    page = browser.new_context(user_agent=BROWSER_UA).new_page()
    page.goto(f"{origin}/contact")
    page.wait_for_selector("form[data-packcloud-ready]")
    fill(page, "not-an-address")
    page.uncheck("input[name=consent]")
    page.click("button[type=submit]")
    page.wait_for_selector("form[data-packcloud-state=invalid]")
    shown = page.eval_on_selector_all(".packcloud-error", "nodes => nodes.map(n => n.dataset.field)")
    assert sorted(shown) == ["consent", "email"]
    assert page.get_attribute("input[name=email]", "aria-invalid") == "true"
    assert page.url == f"{origin}/contact"
    assert records(azurite, tenant) == []


def test_without_javascript_the_plain_post_is_redirected(browser, form_site, azurite):
    origin, tenant = form_site
    page = browser.new_context(user_agent=BROWSER_UA, java_script_enabled=False).new_page()
    page.goto(f"{origin}/contact")
    fill(page, "jane@example.com")
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert page.url == f"{origin}/thanks?packcloud_status=sent"
    (record,) = records(azurite, tenant)
    assert_only_declared(record)

    # A bad value without JavaScript: back to the form, the error named in the query, nothing stored.
    page.goto(f"{origin}/contact")
    fill(page, "nope")
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert page.url.startswith(f"{origin}/contact?")
    assert "packcloud_error=invalid_fields" in page.url and "packcloud_fields=email" in page.url
    assert len(records(azurite, tenant)) == 1


def test_a_site_not_in_allowed_origins_is_blocked(browser, form_site, host, azurite):
    _, tenant = form_site
    port = free_port()
    stranger = serve_demo_page(port, host, tenant)  # the same form, served from another origin
    try:
        page = browser.new_context(user_agent=BROWSER_UA).new_page()
        page.goto(f"http://127.0.0.1:{port}/contact")
        page.wait_for_selector("form[data-packcloud-ready]")
        fill(page, "jane@example.com")
        page.click("button[type=submit]")
        page.wait_for_selector("form[data-packcloud-state=failed]")

        plain = browser.new_context(user_agent=BROWSER_UA, java_script_enabled=False).new_page()
        plain.goto(f"http://127.0.0.1:{port}/contact")
        fill(plain, "jane@example.com")
        with plain.expect_navigation():
            plain.click("button[type=submit]")
        assert "origin_not_allowed" in plain.content()
    finally:
        stranger.shutdown()
    assert records(azurite, tenant) == []
