"""What reading proxy settings from the environment at every request costs a capture's Put Blob (not part of
`make bench`: it decided how shared/storage builds its transports).

One process, one Azurite, the record's Put Blob with its index tags, alternately through a transport told to read
the environment (the SDK's default: aiohttp then looks up the proxy and ~/.netrc for every request, each in a
worker thread) and through one told not to (what PackCloud builds when no proxy is set), ROUNDS times each; the
CPU time of this process per upload, medians of the rounds. The aio transport is the pixel's; the sync one (the
other routes') is measured too, where requests reads the same settings in the calling thread.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from typing import Any

from azure.core.pipeline.transport import AioHttpTransport
from azure.storage.blob import BlobServiceClient
from azure.storage.blob.aio import BlobServiceClient as AsyncBlobServiceClient

from bench.common import write_results
from bench.pixel import sample_record_bytes, sample_tags
from devenv.azurite import start_azurite
from shared.storage.blobs import CountingTransport

UPLOADS = 500
ROUNDS = 5


async def aio_cpu_ms(connection_string: str, container: str, read_environment: bool) -> float:
    body, tags = sample_record_bytes(), sample_tags()
    transport = AioHttpTransport(use_env_settings=read_environment)
    async with AsyncBlobServiceClient.from_connection_string(connection_string, transport=transport) as service:
        client = service.get_container_client(container)
        for _ in range(20):  # warm-up: the connection
            await client.upload_blob(f"aio/{uuid.uuid4().hex}.json", body, tags=tags)
        started = time.process_time()
        for _ in range(UPLOADS):
            await client.upload_blob(f"aio/{uuid.uuid4().hex}.json", body, tags=tags)
        return (time.process_time() - started) * 1000 / UPLOADS


def sync_cpu_ms(connection_string: str, container: str, read_environment: bool) -> float:
    body, tags = sample_record_bytes(), sample_tags()
    transport = CountingTransport()
    transport.session.trust_env = read_environment
    client = BlobServiceClient.from_connection_string(connection_string, transport=transport)
    container_client = client.get_container_client(container)
    for _ in range(20):
        container_client.upload_blob(f"sync/{uuid.uuid4().hex}.json", body, tags=tags)
    started = time.process_time()
    for _ in range(UPLOADS):
        container_client.upload_blob(f"sync/{uuid.uuid4().hex}.json", body, tags=tags)
    return (time.process_time() - started) * 1000 / UPLOADS


def main() -> dict[str, Any]:
    azurite = start_azurite()
    try:
        container = "transport-" + uuid.uuid4().hex[:8]
        BlobServiceClient.from_connection_string(azurite.connection_string).create_container(container)
        samples: dict[str, list[float]] = {"aio_env": [], "aio_once": [], "sync_env": [], "sync_once": []}
        for _ in range(ROUNDS):
            for read_environment in (True, False):
                suffix = "env" if read_environment else "once"
                samples[f"aio_{suffix}"].append(
                    asyncio.run(aio_cpu_ms(azurite.connection_string, container, read_environment))
                )
                samples[f"sync_{suffix}"].append(sync_cpu_ms(azurite.connection_string, container, read_environment))
    finally:
        azurite.stop()
    medians = {key: round(statistics.median(values), 3) for key, values in samples.items()}
    result = {
        "cpu_ms_per_upload": medians,
        "aio_ratio": round(medians["aio_once"] / medians["aio_env"], 3),
        "sync_ratio": round(medians["sync_once"] / medians["sync_env"], 3),
        "uploads": UPLOADS,
        "rounds": ROUNDS,
    }
    write_results("storage_transport", result)
    print(
        f"storage transport: CPU ms per Put Blob, reading the environment at every request vs once: aio "
        f"{medians['aio_env']} -> {medians['aio_once']} (x {result['aio_ratio']}), sync {medians['sync_env']} -> "
        f"{medians['sync_once']} (x {result['sync_ratio']})"
    )
    return result


if __name__ == "__main__":
    main()
