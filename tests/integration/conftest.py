"""Integration fixtures: a real Azurite per test session, services wired to it, the local host over real HTTP
and headless Chromium."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import httpx
import pytest

from devenv.azurite import Azurite, start_azurite
from tests.factories import BROWSER_UA, FUNCTION_KEY, running_host, settings_env, settings_for
from tests.integration.storage_proxy import StorageProxy

if TYPE_CHECKING:
    from playwright.sync_api import Browser


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    instance = start_azurite()
    yield instance
    instance.stop()


@pytest.fixture(scope="session", autouse=True)
def _process_settings(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """function_app reads its settings from the environment at import, as in Azure.

    The local secrets file is the session's own (under xdist, each worker's): the default, `.state/` of the
    checkout, would be shared by the workers' hosts and by a `make run` of the same checkout."""
    saved = dict(os.environ)
    os.environ.update(settings_env(azurite))
    os.environ["PACKCLOUD_LOCAL_SECRETS_PATH"] = str(tmp_path_factory.mktemp("state") / "secrets.json")
    from shared.core.settings import get_settings

    get_settings.cache_clear()
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="module")
def own_azurite() -> Iterator[Azurite]:
    """A module's own Azurite, for tests whose purges or whole-container reads go over every blob the store holds:
    on the session's, that is every tenant the other tests left (the DPO report's thirty days of purges took a
    setup of 96 to 106 s there in a full run, 8 s alone)."""
    instance = start_azurite()
    yield instance
    instance.stop()


@pytest.fixture
def services_azurite(request: pytest.FixtureRequest, azurite: Azurite) -> Azurite:
    """The Azurite a test's settings and services use: the session's, or the module's own for a test or module
    marked `own_azurite`."""
    if request.node.get_closest_marker("own_azurite") is not None:
        own: Azurite = request.getfixturevalue("own_azurite")
        return own
    return azurite


@pytest.fixture
def settings(services_azurite: Azurite):
    return settings_for(services_azurite)


@pytest.fixture
def services(settings, clock):
    from shared.services import Services

    return Services.build(settings, clock)


@pytest.fixture(scope="session")
def host(azurite: Azurite) -> Iterator[str]:
    """The local host serving function_app.py on a free port; yields the API base URL."""
    with running_host(azurite) as url:
        yield url


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
