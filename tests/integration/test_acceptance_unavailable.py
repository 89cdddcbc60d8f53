"""Acceptance of the day's routes when storage cannot be reached, written from README.md ("Storage trouble is a
503, soon"), openapi.yaml, docs/transparency.md and docs/links.md alone: a 503 with `Retry-After` in the form each
route promises (the notice's page or JSON, never cached; the short link's page; the beacon's and the API's JSON
error), never a 500 and never a hang. The host is a cold one whose storage is a closed port."""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest

from devenv.azurite import free_port
from devenv.local_host import start_local_host, stop_local_host
from tests.factories import (
    BROWSER_UA,
    FUNCTION_KEY,
    HOST_MASTER_KEY,
    UNREACHABLE_STORAGE,
    documented_errors,
    settings_values,
)

TENANT = "t-somewhere"


@pytest.fixture(scope="module")
def cold() -> Iterator[httpx.Client]:
    port = free_port()
    env = {
        **os.environ,
        **settings_values(UNREACHABLE_STORAGE),
        "PACKCLOUD_STORAGE_TIMEOUT_SECONDS": "1",
        "DEVHOST_FUNCTION_KEY": FUNCTION_KEY,
        "DEVHOST_MASTER_KEY": HOST_MASTER_KEY,
    }
    process = start_local_host(port, env)
    try:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}/api", headers={"user-agent": BROWSER_UA}, timeout=60
        ) as client:
            yield client
    finally:
        stop_local_host(process)


def unavailable(answer: httpx.Response) -> None:
    assert answer.status_code == 503, answer.text
    assert int(answer.headers["retry-after"]) > 0


def test_the_notice_is_a_503_page_or_json_never_cached(cold):
    page = cold.get(f"/notice/{TENANT}/visits")
    unavailable(page)
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-store"
    data = cold.get(f"/notice/{TENANT}/visits?format=json")
    unavailable(data)
    assert data.headers["cache-control"] == "no-store"
    assert documented_errors(data, "/notice/{tenant}/{dataset}", "get") == []


def test_a_short_link_is_a_503_page(cold):
    page = cold.get(f"/go/{TENANT}/{'A' * 24}")
    unavailable(page)
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == "default-src 'none'; style-src 'unsafe-inline'"


@pytest.mark.parametrize(
    ("method", "route", "path", "body", "headers"),
    [
        ("post", "/px/{tenant}/{dataset}", f"/px/{TENANT}/visits", b'{"page_url": "https://a.example/"}',
         {"content-type": "text/plain", "origin": "https://a.example"}),
        ("post", "/links/{tenant}/{dataset}", f"/links/{TENANT}/assets", b'{"target_url": "https://a.example/"}',
         {"content-type": "application/json", "authorization": "Bearer pck_any"}),
        ("get", "/privacy/{tenant}/report", f"/privacy/{TENANT}/report", None, {"authorization": "Bearer pck_any"}),
        ("get", "/manage/tenants/{tenant}/dpo-webhook", f"/manage/tenants/{TENANT}/dpo-webhook", None,
         {"x-functions-key": FUNCTION_KEY}),
        ("get", "/manage/tenants/{tenant}/email-events/key", f"/manage/tenants/{TENANT}/email-events/key", None,
         {"x-functions-key": FUNCTION_KEY}),
    ],
)  # fmt: skip
def test_the_api_answers_a_documented_503(cold, method, route, path, body, headers):
    answer = cold.request(method.upper(), path, content=body, headers=headers)
    unavailable(answer)
    assert documented_errors(answer, route, method) == []
