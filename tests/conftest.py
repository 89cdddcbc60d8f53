"""Fixtures: a real Azurite per test session, services wired to it, and the local host over real HTTP."""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, sync_playwright

from devenv.azurite import Azurite, free_port, start_azurite
from devenv.local_host import start_local_host, stop_local_host

ROOT = Path(__file__).resolve().parent.parent
MASTER_KEY = secrets.token_urlsafe(48)
FUNCTION_KEY = secrets.token_urlsafe(24)
HOST_MASTER_KEY = secrets.token_urlsafe(24)
# A real browser's user agent: the pixel ignores HTTP libraries as bots.
BROWSER_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Safari/537.36"
# The session host's web-form limit: above what one test sends to its own tenant, low enough to reach.
FORM_RATE_PER_MINUTE = 300
EU_URL = "https://packcloud-eu.example.net/api"
US_URL = "https://packcloud-us.example.net/api"


def settings_env(azurite: Azurite, region: str = "eu") -> dict[str, str]:
    return {
        "PACKCLOUD_REGION": region,
        "PACKCLOUD_STORAGE_CONNECTION_STRING": azurite.connection_string,
        "PACKCLOUD_MASTER_KEY": MASTER_KEY,
        "PACKCLOUD_REGION_URLS": f'{{"eu": "{EU_URL}", "us": "{US_URL}"}}',
        # The default schedule purges at minute 5 of every hour: a test host would purge in the background,
        # scanning every blob the session's tests left, at a moment no test chose. Once a year instead; the
        # tests that purge run it themselves.
        "PACKCLOUD_PURGE_SCHEDULE": "0 0 0 1 1 *",
    }


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
def clock():
    from shared.core.clock import ManualClock

    return ManualClock(datetime(2026, 11, 23, 10, 0, tzinfo=UTC))


def settings_for(azurite: Azurite):
    from shared.core.settings import Settings

    return Settings(**{k.removeprefix("PACKCLOUD_").lower(): v for k, v in settings_env(azurite).items()})


@pytest.fixture
def settings(azurite: Azurite):
    return settings_for(azurite)


@pytest.fixture
def services(settings, clock):
    from shared.services import Services

    return Services.build(settings, clock)


@pytest.fixture
def tenant_id() -> str:
    return "t-" + uuid.uuid4().hex[:12]


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


def all_blobs(azurite: Azurite, container: str, prefix: str = "") -> dict[str, bytes]:
    """Every blob of a container with its content: what is really in storage."""
    from azure.core.exceptions import ResourceNotFoundError
    from azure.storage.blob import BlobServiceClient

    client = BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client(container)
    try:
        return {
            blob.name: client.download_blob(blob.name).readall()
            for blob in client.list_blobs(name_starts_with=prefix or None)
        }
    except ResourceNotFoundError:
        return {}


def blob_states(azurite: Azurite, containers: tuple[str, ...], *, within: tuple[str, ...] = ()) -> dict[str, dict]:
    """Each blob's ETag, metadata and tags, listed without downloading a byte: any write, deletion or re-tagging
    shows, which is what "nothing changed" is checked against. `within`: only names containing one of these.

    Downloading every blob instead took 15 s a call late in the run, when the session's Azurite holds every test's.
    """
    from azure.core.exceptions import ResourceNotFoundError
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    states: dict[str, dict] = {}
    for container in containers:
        try:
            listed = list(service.get_container_client(container).list_blobs(include=["metadata", "tags"]))
        except ResourceNotFoundError:
            listed = []
        states[container] = {
            blob.name: (blob.etag, blob.metadata, blob.tags)
            for blob in listed
            if not within or any(part in blob.name for part in within)
        }
    return states


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
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield instance
        instance.close()
