"""bench/latency_proxy.py, the relay bench/concurrency.py puts between the host and Azurite: whatever it delays,
the byte stream reaching either side is unchanged, over kept-alive connections, large bodies and errors alike.
(How long it holds a response is the benchmark's to report, not a test's to time.)"""

from __future__ import annotations

import os
import uuid

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobServiceClient

from bench.concurrency import pin
from bench.latency_proxy import delayed_relay
from devenv.azurite import Azurite, connection_string


@pytest.mark.parametrize("delay_ms", [0, 3])
def test_the_relay_passes_every_byte_both_ways(azurite: Azurite, delay_ms: float):
    with delayed_relay(azurite.port, delay_ms) as relay:
        assert relay.port != azurite.port
        service = BlobServiceClient.from_connection_string(connection_string(relay.port))
        container = service.get_container_client(f"relay-{uuid.uuid4().hex[:12]}")
        container.create_container()
        bodies = {f"small-{n}": os.urandom(300 + n) for n in range(20)}  # one kept-alive connection, many requests
        bodies["large"] = os.urandom(3 * 1024 * 1024)  # many chunks each way
        for name, body in bodies.items():
            container.upload_blob(name, body, tags={"kind": name.split("-")[0]})
        for name, body in bodies.items():
            assert container.download_blob(name).readall() == body
        assert container.get_blob_client("small-3").get_blob_tags() == {"kind": "small"}
        with pytest.raises(ResourceNotFoundError):  # an error answer arrives whole, too
            container.download_blob("missing").readall()


def test_pin_moves_every_thread_of_a_process(azurite: Azurite):
    cpus = os.sched_getaffinity(0)
    one = {min(cpus)}
    with delayed_relay(azurite.port, 0) as relay:
        pin(relay.pid, one)
        tasks = os.listdir(f"/proc/{relay.pid}/task")
        assert tasks
        assert all(os.sched_getaffinity(int(task)) == one for task in tasks)
