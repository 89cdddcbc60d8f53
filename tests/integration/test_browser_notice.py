"""The public notice in a real headless Chromium: its text under its own Content-Security-Policy, axe-core's
accessibility rules (0 violations), and the "How we use your data" link the web-form snippet adds."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devenv.azurite import free_port
from devenv.demo import DEMO_FORM, demo_form_dataset, serve_demo_page
from tests.factories import BROWSER_UA, CONTRACT_FORM, EXAMPLE, ROOT, variant

pytestmark = pytest.mark.browser

AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
GERMAN = "Wir melden uns bei Interessenten, die die Preisseite besuchen"
NOTICE_LINK = "How we use your data"


@pytest.fixture
def notices(host, manage, tenant_id) -> str:
    assert manage.put(f"/manage/tenants/{tenant_id}", json={}).status_code == 201
    worded = variant(notice={"languages": {"de": {"purpose": GERMAN, "fields": {"ip": "Ihre gekürzte IP-Adresse"}}}})
    for dataset, declaration in (("visits", worded), ("hostile", CONTRACT_FORM)):
        assert manage.put(f"/manage/tenants/{tenant_id}/datasets/{dataset}", json=declaration).status_code == 201
    return tenant_id


def axe_violations(browser, url: str, locale: str = "en-GB") -> list[dict]:
    """axe-core's violations on the page at `url`. The page's CSP allows no script, so the context that injects
    axe bypasses it; the page itself is unchanged."""
    context = browser.new_context(user_agent=BROWSER_UA, bypass_csp=True, locale=locale)
    try:
        page = context.new_page()
        assert page.goto(url).status in (200, 404)
        page.add_script_tag(path=str(AXE))
        results = page.evaluate("async () => await axe.run(document)")
        assert results["passes"], "axe ran no rule"
        return [{"id": v["id"], "nodes": [n["html"] for n in v["nodes"]]} for v in results["violations"]]
    finally:
        context.close()


def test_the_notice_opens_with_its_text_under_its_own_policy(browser, host, notices):
    context = browser.new_context(user_agent=BROWSER_UA, locale="en-GB")
    page = context.new_page()
    refused: list[str] = []
    page.on("console", lambda message: refused.append(message.text) if message.type == "error" else None)
    answer = page.goto(f"{host}/notice/{notices}/visits")
    assert answer.status == 200
    assert page.inner_text("h1") == "How Contoso Ltd uses your data"
    text = page.inner_text("main")
    for said in (EXAMPLE["purpose"], "delivered into Contoso Ltd's CRM", "14 days", "European Union", "withdraw"):
        assert said in text
    assert page.get_attribute("a[href^='mailto:dpo']", "href") == "mailto:dpo@contoso.example"
    # The inline style applies (style-src 'unsafe-inline'), and nothing the page needs was refused.
    assert page.evaluate("getComputedStyle(document.body).maxWidth") != "none"
    assert refused == []
    context.close()


def test_the_reader_language_shows_the_controller_wording(browser, host, notices):
    context = browser.new_context(user_agent=BROWSER_UA, locale="de-DE")  # Accept-Language: de-DE
    page = context.new_page()
    page.goto(f"{host}/notice/{notices}/visits")
    assert page.inner_text("[lang=de]") == GERMAN
    assert EXAMPLE["purpose"] not in page.inner_text("main")
    context.close()


def test_markup_in_a_purpose_is_text_in_the_browser(browser, host, notices):
    context = browser.new_context(user_agent=BROWSER_UA)
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(f"{host}/notice/{notices}/hostile")
    assert "Answer <script>alert(1)</script> enquiries" in page.inner_text("main")
    assert page.evaluate("document.scripts.length") == 0
    assert dialogs == []
    context.close()


@pytest.mark.parametrize(("dataset", "locale"), [("visits", "en-GB"), ("visits", "de-DE"), ("nothing-here", "en-GB")])
def test_axe_core_finds_no_violation(browser, host, notices, dataset, locale):
    assert axe_violations(browser, f"{host}/notice/{notices}/{dataset}", locale) == []


# ---------------------------------------------------------------- the web-form snippet's link


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


def test_the_form_snippet_links_the_notice_next_to_the_consent_checkbox(browser, host, form_site):
    origin, tenant = form_site
    context = browser.new_context(user_agent=BROWSER_UA)
    page = context.new_page()
    page.goto(f"{origin}/contact")
    page.wait_for_selector("form[data-packcloud-ready]")
    link = page.locator("a.packcloud-notice-link")
    assert link.count() == 1
    assert link.inner_text() == NOTICE_LINK
    assert link.get_attribute("href") == f"{host}/notice/{tenant}/{DEMO_FORM}"
    # Right after the consent checkbox's label.
    beside = page.evaluate(
        "document.querySelector('a.packcloud-notice-link').parentNode.previousElementSibling"
        ".contains(document.querySelector('input[name=consent]'))"
    )
    assert beside is True
    with context.expect_page() as opened:
        link.click()
    notice = opened.value
    notice.wait_for_load_state()
    assert notice.inner_text("h1") == "How Contoso Ltd uses your data"
    assert "Answer enquiries sent from the contact page" in notice.inner_text("main")
    context.close()


FORM_PAGE = """<!doctype html><html lang="en"><head><title>Form</title>
<script async src="{host}/forms/snippet.js"></script></head><body><main>
<form id="plain" data-packcloud-form="{tenant}/{dataset}"><label>E-mail <input name="email"></label>
<button>Send</button></form>
<form id="slotted" data-packcloud-form="{tenant}/{dataset}"><p id="slot" data-packcloud-notice></p>
<label><input type="checkbox" name="consent"> I agree</label><button>Send</button></form>
<form id="off" data-packcloud-form="{tenant}/{dataset}" data-packcloud-notice="off"><button>Send</button></form>
</main></body></html>"""


def test_without_a_consent_checkbox_the_link_is_under_the_form(browser, host, form_site):
    _, tenant = form_site
    context = browser.new_context(user_agent=BROWSER_UA)
    page = context.new_page()
    page.set_content(FORM_PAGE.format(host=host, tenant=tenant, dataset=DEMO_FORM))
    page.wait_for_selector("#off[data-packcloud-ready]")
    href = f"{host}/notice/{tenant}/{DEMO_FORM}"
    last = page.evaluate("document.querySelector('#plain').lastElementChild.querySelector('a')?.href")
    assert last == href
    assert page.evaluate("document.querySelector('#slot a')?.href") == href  # the place the page chose
    assert page.locator("#slotted a.packcloud-notice-link").count() == 1
    assert page.locator("#off a").count() == 0
    context.close()
