"""Integration fixtures: a real Azurite per test session, services wired to it, the local host over real HTTP
and headless Chromium."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import httpx
import pytest

from devenv.azurite import Azurite, free_port, start_azurite
from devenv.local_host import start_local_host, stop_local_host
from tests.factories import (
    BROWSER_UA,
    FORM_RATE_PER_MINUTE,
    FUNCTION_KEY,
    HOST_MASTER_KEY,
    settings_env,
    settings_for,
)
from tests.integration.storage_proxy import StorageProxy

if TYPE_CHECKING:
    from playwright.sync_api import Browser


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    instance = start_azurite()
    yield instance
    instance.stop()


@pytest.fixture(scope="session", autouse=True)
def _process_settings(azurite: Azurite) -> Iterator[None]:
    """function_app reads its settings from the environment at import, as in Azure."""
    saved = dict(os.environ)
    os.environ.update(settings_env(azurite))
    from shared.core.settings import get_settings

    get_settings.cache_clear()
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def settings(azurite: Azurite):
    return settings_for(azurite)


@pytest.fixture
def services(settings, clock):
    from shared.services import Services

    return Services.build(settings, clock)


@pytest.fixture(scope="session")
def host(azurite: Azurite) -> Iterator[str]:
    """The local host serving function_app.py on a free port; yields the API base URL."""
    port = free_port()
    env = {
        **os.environ,
        **settings_env(azurite),
        "DEVHOST_FUNCTION_KEY": FUNCTION_KEY,
        "DEVHOST_MASTER_KEY": HOST_MASTER_KEY,
        "PACKCLOUD_FORM_RATE_PER_MINUTE": str(FORM_RATE_PER_MINUTE),
    }
    process = start_local_host(port, env)
    yield f"http://127.0.0.1:{port}/api"
    stop_local_host(process)


@pytest.fixture
def manage(host: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=host, headers={"x-functions-key": FUNCTION_KEY}, timeout=30) as client:
        yield client


@pytest.fixture
def anon(host: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=host, headers={"user-agent": BROWSER_UA}, timeout=30) as client:
        yield client


CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps trying to reach Google's hosts.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    # Imported here, so that only a test that asks for the browser loads Playwright.
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def proxy(azurite: Azurite) -> Iterator[StorageProxy]:
    """An HTTP proxy in front of the session's Azurite that a test can have act before forwarding a request."""
    proxy = StorageProxy(azurite.port)
    yield proxy
    proxy.close()
