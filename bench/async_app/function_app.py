"""The pixel as an async function, for the experiment in bench/async_pixel.py; never deployed.

The hit goes through the same chain of checks and the same record as the production pixel (`record_hit` with the
real capture store); only the one Put Blob is awaited with the aio SDK on the worker's event loop instead of sent
by the sync SDK from a worker thread.
"""

from __future__ import annotations

import contextlib
import contextvars

import azure.functions as func
from azure.core.exceptions import ResourceExistsError
from azure.storage.blob.aio import BlobServiceClient as AsyncBlobServiceClient
from azure.storage.blob.aio import ContainerClient as AsyncContainerClient

from functions.tracking_pixel import GIF_HEADERS, _hit
from shared.capture.store import CaptureStore, Target, record_blob
from shared.pixel.hits import GIF, record_hit
from shared.registry.models import Record
from shared.services import get_services
from shared.storage.blobs import JSON_CONTENT, RECORDS

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
_prepared: contextvars.ContextVar[list[tuple[Target, Record]]] = contextvars.ContextVar("prepared")
_clients: dict[str, AsyncContainerClient] = {}


class PreparingStore(CaptureStore):
    """The production store, whose commit hands the prepared record to the async function instead of writing it."""

    def commit(self, target: Target, record: Record) -> None:
        _prepared.get().append((target, record))


def _store() -> PreparingStore:
    services = get_services()
    return PreparingStore(services.storage, services.registry, services.settings, services.clock, services.counts)


_stores: list[PreparingStore] = []


def _container() -> AsyncContainerClient:
    if RECORDS not in _clients:
        secret = get_services().settings.storage_connection_string
        assert secret is not None, "the experiment runs against Azurite"
        service = AsyncBlobServiceClient.from_connection_string(secret.get_secret_value())
        _clients[RECORDS] = service.get_container_client(RECORDS)
    return _clients[RECORDS]


@app.route(route="px/{tenant}/{dataset}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def pixel(req: func.HttpRequest) -> func.HttpResponse:
    services = get_services()
    if not _stores:
        _stores.append(_store())
    store = _stores[0]
    hit = _hit(req, dict(req.params))
    _prepared.set([])
    record_hit(store, services.settings, hit)
    for target, record in _prepared.get():
        name = record_blob(record.tenant, record.dataset, record.id)
        body = record.model_dump_json().encode("utf-8")
        with contextlib.suppress(ResourceExistsError):
            await _container().upload_blob(
                name, body, overwrite=False, tags=store._tags(record, target.dataset), content_settings=JSON_CONTENT
            )
        services.counts.add(record.tenant, record.dataset, record.captured_at)
    return func.HttpResponse(GIF, status_code=200, mimetype="image/gif", headers=GIF_HEADERS)
