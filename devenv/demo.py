"""The demo tenant, its pixel and form datasets, and the demo site that embeds both snippets.

Used by `make run` and by the browser tests.
"""

from __future__ import annotations

import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

DEMO_PAGE_DIR = Path(__file__).resolve().parent / "demo_page"
DEMO_TENANT = "demo"
DEMO_DATASET = "pricing-visits"
DEMO_FORM = "contact-form"
DEMO_SIGNINS = "signins"
# A second demo tenant, homed in another region than the local deployment's: its requests show the 421.
DEMO_ELSEWHERE = "demo-us"
DEMO_USER = "0f8fad5b-d9cb-469f-a165-70867728950e"  # a systemuser id, made up
DEMO_PAGES = {"/": "index.html", "/index.html": "index.html", "/pricing": "index.html", "/contact": "contact.html"}
DEMO_PAGES["/thanks"] = "thanks.html"
# A single-page application: its pages are one HTML page that changes the address with history.pushState.
DEMO_PAGES.update({path: "spa.html" for path in ("/app", "/app/features", "/app/pricing")})


def demo_dataset(page_origin: str) -> dict[str, Any]:
    return {
        "capability": "pixel",
        "purpose": "Follow up on leads who visit the pricing page",
        "legal_basis": "consent",
        "retention_days": 14,
        "controller": {"name": "Contoso Ltd", "email": "privacy@contoso.example"},
        "dpo": {"name": "Jane Roe", "email": "dpo@contoso.example"},
        "subject_field": "visitor",
        "fields": [
            {"name": "page_url", "type": "url", "required": True, "personal": False, "max_length": 2048},
            {"name": "visitor", "type": "string", "required": False, "personal": True, "max_length": 64},
            {"name": "ip", "type": "ip", "required": False, "personal": True},
            # Custom events (the SPA page): which event a record is, and the properties the events declare.
            {"name": "event", "type": "string", "personal": False, "max_length": 40},
            {"name": "plan", "type": "choice", "options": ["free", "pro"], "personal": False},
            {"name": "url", "type": "url", "personal": False, "max_length": 2048},
        ],
        "events": [
            {"name": "signup", "properties": ["plan"]},
            {"name": "outbound", "properties": ["url"]},
            {"name": "download", "properties": ["url"]},
        ],
        "allowed_origins": [page_origin],
    }


def demo_form_dataset(page_origin: str) -> dict[str, Any]:
    return {
        "capability": "webform",
        "purpose": "Answer enquiries sent from the contact page",
        "legal_basis": "consent",
        "retention_days": 7,
        "controller": {"name": "Contoso Ltd", "email": "privacy@contoso.example"},
        "subject_field": "email",
        "fields": [
            {"name": "email", "type": "email", "required": True},
            {"name": "name", "type": "string", "max_length": 200},
            {"name": "topic", "type": "choice", "options": ["sales", "support"], "personal": False},
            {"name": "rating", "type": "integer", "personal": False},
        ],
        "allowed_origins": [page_origin],
        "redirect_url": f"{page_origin}/thanks",
        "honeypot_field": "fax_number",
        "consent_field": "consent",
        "consent_text_version": "contact-2026-11",
    }


def demo_signins_dataset() -> dict[str, Any]:
    return {
        "capability": "geologin",
        "purpose": "Security monitoring of user sign-ins",
        "legal_basis": "legitimate_interest",
        "retention_days": 30,
        "controller": {"name": "Contoso Ltd", "email": "privacy@contoso.example"},
        "subject_field": "user_id",
        "fields": [
            {"name": "user_id", "type": "string", "required": True},
            {"name": "signed_in_at", "type": "datetime", "personal": False},
            {"name": "country", "type": "string"},
            {"name": "ip", "type": "ip"},
        ],
    }


def create_demo(api_base: str, function_key: str, page_origin: str, tenant: str = DEMO_TENANT) -> dict[str, Any]:
    """Create (or find) the demo tenant and dataset through the manage API; answers the tenant document."""
    headers = {"x-functions-key": function_key}
    with httpx.Client(base_url=api_base, headers=headers, timeout=30) as client:
        answer = client.put(f"/manage/tenants/{tenant}", json={"name": "Contoso (demo)"})
        answer.raise_for_status()
        dataset = client.put(f"/manage/tenants/{tenant}/datasets/{DEMO_DATASET}", json=demo_dataset(page_origin))
        dataset.raise_for_status()
        form = client.put(f"/manage/tenants/{tenant}/datasets/{DEMO_FORM}", json=demo_form_dataset(page_origin))
        form.raise_for_status()
        signins = client.put(f"/manage/tenants/{tenant}/datasets/{DEMO_SIGNINS}", json=demo_signins_dataset())
        signins.raise_for_status()
        return answer.json()


def create_demo_elsewhere(api_base: str, function_key: str, region: str = "us") -> dict[str, Any]:
    """Create (or find) the demo tenant homed in another region: every tenant request for it is a 421 naming
    that region's URL (PACKCLOUD_REGION_URLS)."""
    headers = {"x-functions-key": function_key}
    with httpx.Client(base_url=api_base, headers=headers, timeout=30) as client:
        answer = client.put(f"/manage/tenants/{DEMO_ELSEWHERE}", json={"name": "Fabrikam (demo)", "region": region})
        answer.raise_for_status()
        return dict(answer.json())


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """No access log: a demo is still a web server that sees visitors' addresses."""


def render_page(name: str, api_base: str, page_origin: str, tenant: str, dataset: str, form: str) -> bytes:
    template = (DEMO_PAGE_DIR / name).read_text(encoding="utf-8")
    values = {"API_BASE": api_base, "PAGE_ORIGIN": page_origin, "TENANT": tenant, "DATASET": dataset, "FORM": form}
    for key, value in values.items():
        template = template.replace("{{" + key + "}}", value)
    return template.encode("utf-8")


def serve_demo_page(
    port: int, api_base: str, tenant: str = DEMO_TENANT, dataset: str = DEMO_DATASET, form: str = DEMO_FORM
) -> ThreadingHTTPServer:
    """Serve the demo site on 127.0.0.1:port from a thread; call .shutdown() to stop."""
    origin = f"http://127.0.0.1:{port}"
    pages = {path: render_page(name, api_base, origin, tenant, dataset, form) for path, name in DEMO_PAGES.items()}

    class Handler(_QuietHandler):
        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            if path == "/favicon.ico":  # the site has no icon; saying so keeps the browser console clean
                self.send_response(204)
                self.end_headers()
                return
            page = pages.get(path)
            if page is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

    server = ThreadingHTTPServer(("127.0.0.1", port), partial(Handler))
    threading.Thread(target=server.serve_forever, name="demo-page", daemon=True).start()
    return server
