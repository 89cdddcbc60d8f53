"""bench/latency_proxy.py, the relay bench/concurrency.py puts between the host and Azurite: whatever it delays,
the byte stream reaching either side is unchanged, over kept-alive connections, large bodies and errors alike; an
answer is held back, not passed on as it arrives; and connections never wait for each other. (How long it holds a
response is the benchmark's to report, not a test's to time: the checks are on order and content.)"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

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


@contextmanager
def fake_upstream(answer: Callable[[int, socket.socket], None]) -> Iterator[int]:
    """A TCP server on a free port of 127.0.0.1 calling `answer(n, connection)` for its n-th connection, each in a
    thread of its own."""
    server = socket.create_server(("127.0.0.1", 0))
    threads: list[threading.Thread] = []

    def accept() -> None:
        for n in range(1_000):
            try:
                connection, _ = server.accept()
            except OSError:  # closed: the test is over
                return
            thread = threading.Thread(target=serve, args=(n, connection), daemon=True)
            threads.append(thread)
            thread.start()

    def serve(n: int, connection: socket.socket) -> None:
        with connection:
            answer(n, connection)

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield server.getsockname()[1]
    finally:
        server.close()
        for thread in threads:
            thread.join(10)


def read_exactly(connection: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        assert chunk, "the relay closed the connection early"
        data += chunk
    return data


def test_connections_do_not_wait_for_each_other():
    """The upstream answers none of its connections until every one has sent its request: a relay that carried one
    connection at a time, or one connection's held answer at a time, would never get there."""
    clients = 8
    everyone_asked = threading.Barrier(clients, timeout=30)
    requests: list[bytes] = []

    def answer(n: int, connection: socket.socket) -> None:
        request = read_exactly(connection, 8)
        requests.append(request)
        everyone_asked.wait()
        connection.sendall(b"answer" + request[-1:])

    with fake_upstream(answer) as upstream, delayed_relay(upstream, 50) as relay:
        answers: dict[int, bytes] = {}

        def ask(n: int) -> None:
            with socket.create_connection(("127.0.0.1", relay.port), timeout=30) as connection:
                connection.sendall(b"request" + bytes([65 + n]))
                answers[n] = read_exactly(connection, 7)

        askers = [threading.Thread(target=ask, args=(n,)) for n in range(clients)]
        for asker in askers:
            asker.start()
        for asker in askers:
            asker.join(60)
    assert not everyone_asked.broken
    assert sorted(requests) == sorted(b"request" + bytes([65 + n]) for n in range(clients))
    assert answers == {n: b"answer" + bytes([65 + n]) for n in range(clients)}


def test_an_answer_is_held_not_passed_on_as_it_arrives():
    """Upstream sends its answer in three pieces; nothing reaches the client before the first piece has been held
    for the relay's delay (a lower bound: a busy machine only makes it later), then all three arrive whole and in
    order."""
    sent_first = threading.Event()
    first_sent_at: list[float] = []
    pieces = [b"first piece;", os.urandom(200_000), b";last piece"]

    def answer(n: int, connection: socket.socket) -> None:
        read_exactly(connection, 7)
        first_sent_at.append(time.monotonic())
        connection.sendall(pieces[0])
        sent_first.set()
        for piece in pieces[1:]:
            connection.sendall(piece)

    with (
        fake_upstream(answer) as upstream,
        delayed_relay(upstream, 1000) as relay,
        socket.create_connection(("127.0.0.1", relay.port), timeout=30) as connection,
    ):
        connection.sendall(b"request")
        assert sent_first.wait(30)
        first_byte = read_exactly(connection, 1)
        arrived_at = time.monotonic()
        assert arrived_at - first_sent_at[0] >= 0.95  # held for the delay, not passed on as it arrived
        assert first_byte + read_exactly(connection, sum(map(len, pieces)) - 1) == b"".join(pieces)
