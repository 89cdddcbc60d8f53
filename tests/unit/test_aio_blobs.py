"""The aio storage client of the async pixel is built as the sync one: same timeouts, retries and identity, and
closed when its event loop shuts down."""

from __future__ import annotations

from typing import Any

from azure.identity.aio import DefaultAzureCredential
from pydantic import AnyHttpUrl

from shared.core.settings import Settings
from shared.storage.aio_blobs import AsyncBlobs
from shared.storage.blobs import (
    CA_BUNDLE_SETTINGS,
    PROXY_SETTINGS,
    CountingTransport,
    environment_names,
    make_service_client,
    make_transport,
)
from tests.factories import run_on_own_loop


def opened(settings: Settings) -> tuple[AsyncBlobs, Any]:
    """An AsyncBlobs whose client was opened inside an asyncio.run, and that client (no request is sent)."""
    blobs = AsyncBlobs(settings, CountingTransport())

    async def open_it() -> Any:
        await blobs.container("records")
        return blobs._service

    return blobs, run_on_own_loop(open_it())


def retry_of(client: Any) -> dict[str, Any]:
    return {name: value for name, value in vars(client._config.retry_policy).items() if name != "next"}


def test_the_aio_client_has_the_sync_clients_timeouts_and_retries(settings):
    sync = make_service_client(settings, make_transport(settings))
    _, aio = opened(settings)
    assert retry_of(aio) == retry_of(sync)
    assert type(aio._config.retry_policy).__name__ == type(sync._config.retry_policy).__name__ == "LinearRetry"
    sync_config, aio_config = sync._pipeline._transport.connection_config, aio._pipeline._transport.connection_config
    assert (aio_config.timeout, aio_config.read_timeout) == (sync_config.timeout, sync_config.read_timeout)
    assert aio_config.read_timeout == settings.storage_timeout_seconds


def test_it_is_closed_when_its_event_loop_shuts_down_and_a_new_loop_gets_a_new_one(settings):
    blobs = AsyncBlobs(settings, CountingTransport())

    async def use() -> Any:
        await blobs.container("records")
        first = blobs._service
        await blobs.container("state")
        assert blobs._service is first  # one client per loop
        return first

    first = run_on_own_loop(use())
    assert not blobs.open
    assert run_on_own_loop(use()) is not first


def test_an_account_url_uses_the_managed_identity_through_azure_identity_aio(settings):
    in_azure = settings.model_copy(
        update={
            "storage_connection_string": None,
            "storage_account_url": AnyHttpUrl("https://packcloudeu.blob.core.windows.net"),
            "managed_identity_client_id": "0f8fad5b-d9cb-469f-a165-70867728950e",
        }
    )
    _, aio = opened(in_azure)
    assert isinstance(aio.credential, DefaultAzureCredential)
    assert aio.url.startswith("https://packcloudeu.blob.core.windows.net")


def test_a_connection_string_needs_no_credential_object(settings):
    _, aio = opened(settings)
    assert not isinstance(aio.credential, DefaultAzureCredential)


def test_the_transports_read_proxy_settings_only_when_the_environment_names_them(settings, monkeypatch):
    # Reading them at every request costs aiohttp two thread hops an upload; with none set there is nothing to read.
    for name in (*PROXY_SETTINGS, *CA_BUNDLE_SETTINGS):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("NO_PROXY", "*")  # an exception list without a proxy changes nothing
    monkeypatch.setenv("HTTPS_PROXY", "")
    assert CountingTransport().session.trust_env is False
    assert opened(settings)[1]._pipeline._transport._use_env_settings is False
    proxies = {
        "HTTPS_PROXY": "http://proxy.contoso.example:3128",
        "https_proxy": "http://p:1",
        "ALL_PROXY": "socks5://p:1",
    }
    for name, value in proxies.items():
        with monkeypatch.context() as scoped:
            scoped.setenv(name, value)
            assert CountingTransport().session.trust_env is True, name
            assert opened(settings)[1]._pipeline._transport._use_env_settings is True, name
    with monkeypatch.context() as scoped:
        # requests verifies with a CA bundle the environment names (a TLS-inspecting proxy's); aiohttp never reads it
        # requests' order: REQUESTS_CA_BUNDLE, then CURL_CA_BUNDLE. Taken once, so the environment is not trusted
        # for it: that made requests look up proxies and ~/.netrc at every request as well.
        scoped.setenv("CURL_CA_BUNDLE", "/etc/ssl/curl.pem")
        assert CountingTransport().connection_config.verify == "/etc/ssl/curl.pem"
        scoped.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/inspecting-proxy.pem")
        transport = CountingTransport()
        assert transport.session.trust_env is False
        assert transport.connection_config.verify == "/etc/ssl/inspecting-proxy.pem"
        assert opened(settings)[1]._pipeline._transport._use_env_settings is False
        scoped.setenv("HTTPS_PROXY", "http://proxy.contoso.example:3128")  # with a proxy, requests reads both itself
        assert CountingTransport().session.trust_env is True
    assert CountingTransport().connection_config.verify is True
    assert environment_names(PROXY_SETTINGS, {"http_proxy": "http://p:1"}) is True
    assert environment_names(PROXY_SETTINGS, {"HTTP_PROXY": "", "NO_PROXY": "localhost"}) is False
