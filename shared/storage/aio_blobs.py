"""The Blob Storage account for async functions: the aio SDK's client, built as blobs.py builds the sync one.

Same account and credential (the managed identity in Azure, through azure.identity.aio; Azurite's connection
string locally), same connect and read timeouts, same linear retries, and the same request counter, so a
storage call gives up within the same bound on either path. Errors map to a 503 through blobs.py's
`storage_errors`, the one mapping: it is a plain context manager, so `with storage_errors(): await ...` maps
what the awaited call raises (the aio transport raises the same AzureError types as the sync one).

One client per event loop (an aiohttp session belongs to the loop that opened it), opened on first use and
closed when its loop shuts down: it is held by an async generator, whose `finally` the loop runs on
`shutdown_asyncgens()`, which `asyncio.run` (and so uvicorn, the local host) calls before closing the loop.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any

from shared.core.settings import Settings
from shared.storage.blobs import CONNECTION_TIMEOUT_S, PROXY_SETTINGS, RETRY, CountingTransport, environment_names
from shared.storage.identity import async_app_credential

if TYPE_CHECKING:
    from azure.storage.blob.aio import BlobServiceClient, ContainerClient

AIO_SDK = "azure.storage.blob.aio"


def counting_aio_transport(counter: CountingTransport, **kwargs: Any) -> Any:
    """The aio transport, counting each request into the sync transport's counter (benchmarks, the cost model).
    Built on first use: importing it imports aiohttp."""
    from azure.core.pipeline.transport import AioHttpTransport

    # azure.core exports AioHttpTransport through a module __getattr__, which mypy reads as Any.
    class AsyncCountingTransport(AioHttpTransport):  # type: ignore[misc]  # subclassing Any: see the line above
        async def send(self, request: Any, **options: Any) -> Any:
            counter.note(request.method, request.url)
            return await super().send(request, **options)

    # aiohttp reads only proxies (and ~/.netrc) from the environment: a CA bundle setting does not concern it.
    return AsyncCountingTransport(use_env_settings=environment_names(PROXY_SETTINGS), **kwargs)


class AsyncBlobs:
    """The aio client of this process's event loop. Its tasks share it; no lock is needed, as they run on one
    thread."""

    def __init__(self, settings: Settings, counter: CountingTransport) -> None:
        self._settings = settings
        self._counter = counter
        self._loop: asyncio.AbstractEventLoop | None = None
        self._service: BlobServiceClient | None = None
        self._lifetime: AsyncGenerator[None] | None = None
        # Built once per loop: making a container client parses the account's configuration again (~0.15 ms,
        # some 7% of a pixel hit's CPU), and one client serves any number of concurrent tasks.
        self._containers: dict[str, ContainerClient] = {}
        self._sdk_loaded = False  # set by load_sdk (once imported already, its first call costs a thread hop)

    @property
    def open(self) -> bool:
        return self._service is not None

    async def load_sdk(self) -> None:
        """Import the aio SDK (aiohttp's client and azure.storage.blob.aio, ~20 ms of CPU) in a worker thread: a
        cold start's first request does it while its registry reads wait for storage, not after them. Until one
        import has ended, every caller waits in a thread of its own: the module is in sys.modules from the moment
        its import begins, and the client made from it on the event loop would wait there for the rest."""
        if not self._sdk_loaded:
            await asyncio.to_thread(importlib.import_module, AIO_SDK)  # an import under way: waits for its end
            self._sdk_loaded = True

    async def container(self, name: str) -> ContainerClient:
        loop = asyncio.get_running_loop()
        if self._service is None or self._loop is not loop:
            await self.load_sdk()  # in a worker thread, never on the loop; then checked again, as it awaited
        if self._service is None or self._loop is not loop:
            # A new loop (tests run several, one after the other): the client of the old one cannot be used
            # here, and was closed when that loop shut down.
            credential = None if self._settings.storage_connection_string else async_app_credential(self._settings)
            self._loop, self._service = loop, self._make_service(credential)
            self._lifetime = self._hold(self._service, credential)
            self._containers = {}
            await anext(self._lifetime)
        client = self._containers.get(name)
        if client is None:
            client = self._containers[name] = self._service.get_container_client(name)
        return client

    def _make_service(self, credential: Any) -> BlobServiceClient:
        # Imported on first use: aiohttp and the aio SDK are not needed by a cold start that serves other routes.
        from azure.storage.blob.aio import BlobServiceClient, LinearRetry

        transport = counting_aio_transport(
            self._counter, connection_timeout=CONNECTION_TIMEOUT_S, read_timeout=self._settings.storage_timeout_seconds
        )
        retry = LinearRetry(**RETRY)
        if credential is None:
            assert self._settings.storage_connection_string is not None  # settings require one or the other
            return BlobServiceClient.from_connection_string(
                self._settings.storage_connection_string.get_secret_value(), transport=transport, retry_policy=retry
            )
        return BlobServiceClient(
            str(self._settings.storage_account_url),
            credential=credential,
            transport=transport,
            retry_policy=retry,
        )

    async def _hold(self, service: BlobServiceClient, credential: Any) -> AsyncGenerator[None]:
        """Suspended at its `yield` for the life of the loop; closed by the loop's shutdown."""
        try:
            yield
        finally:
            if self._service is service:
                self._service = None
            await service.close()  # its transport's aiohttp session
            if credential is not None:
                await credential.close()
