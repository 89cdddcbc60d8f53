"""bench/latency_proxy.py, the relay bench/concurrency.py puts between the host and Azurite: whatever it delays,
the byte stream reaching either side is unchanged, over kept-alive connections, large bodies and errors alike; an
answer is held back, not passed on as it arrives; and connections never wait for each other. (How long it holds a
response is the benchmark's to report, not a test's to time: the checks are on order and content.) Its timing of
upstream gives one time per request on kept-alive connections, however many chunks each way, each at least upstream's
pause, taken before the hold."""

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
        # One time per SDK request, a 3 MB body in many chunks each way alike: Create Container, a Put Blob and a
        # Get Blob per body (3 MB is under both SDK's single-request sizes), Get Blob Tags, the missing Get Blob.
        times = relay.take_storage_times()
        assert times.requests == len(times.seconds) == 1 + 2 * len(bodies) + 2


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


def paused_upstream(pauses: list[float]) -> Callable[[int, socket.socket], None]:
    """An upstream reading 8-byte requests, each naming its pause (an index into `pauses`), answering each after it,
    in two pieces, until its connection closes."""

    def answer(n: int, connection: socket.socket) -> None:
        while request := connection.recv(8, socket.MSG_WAITALL):
            time.sleep(pauses[request[-1]])
            connection.sendall(b"answer")
            time.sleep(0.01)
            connection.sendall(request[-1:])

    return answer


def ask_in_two_pieces(connection: socket.socket, pause: int) -> bytes:
    """A request sent as two chunks 20 ms apart (a header, then its body): one request to the relay."""
    connection.sendall(b"requ")
    time.sleep(0.02)
    connection.sendall(b"est" + bytes([pause]))
    return read_exactly(connection, 7)


def test_the_relay_times_upstream_per_request_on_kept_alive_connections():
    """Four connections ask five requests each, one at a time, each in two chunks, and upstream answers each after a
    pause of its own and in two chunks: twenty requests, twenty times, and on one connection the times come in the
    order of its requests, each at least its pause (lower bounds: a busy machine only makes them later). Taking the
    times starts anew."""
    pauses = [0.0, 0.2, 0.05]
    order = [1, 0, 1, 0, 2]  # one connection's requests, by pause
    with fake_upstream(paused_upstream(pauses)) as upstream, delayed_relay(upstream, 3) as relay:
        with socket.create_connection(("127.0.0.1", relay.port), timeout=30) as connection:
            assert [ask_in_two_pieces(connection, pause) for pause in order] == [b"answer" + bytes([p]) for p in order]
        alone = relay.take_storage_times()
        assert alone.requests == len(alone.seconds) == len(order)
        assert all(seconds >= pauses[pause] for seconds, pause in zip(alone.seconds, order, strict=True))

        def client(n: int) -> None:
            with socket.create_connection(("127.0.0.1", relay.port), timeout=30) as connection:
                for pause in order:
                    assert ask_in_two_pieces(connection, pause) == b"answer" + bytes([pause])

        clients = [threading.Thread(target=client, args=(n,)) for n in range(3)]
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join(60)
        together = relay.take_storage_times()
        assert together.requests == len(together.seconds) == 3 * len(order)
        assert sum(seconds >= pauses[1] for seconds in together.seconds) >= 3 * order.count(1)
        assert relay.take_storage_times().requests == 0


def test_the_time_is_upstreams_not_the_relays_hold():
    """The time of a request is there as soon as upstream's answer reached the relay, while the relay still holds
    the answer back from the client (for a minute: nothing reaches it during the test)."""
    with (
        fake_upstream(paused_upstream([0.0])) as upstream,
        delayed_relay(upstream, 60_000) as relay,
        socket.create_connection(("127.0.0.1", relay.port), timeout=30) as connection,
    ):
        connection.sendall(b"request\0")
        taken: list[float] = []
        while not taken:
            taken += relay.take_storage_times().seconds
            time.sleep(0.01)
        assert len(taken) == 1
        connection.setblocking(False)  # a socket with a timeout would wait for data, whatever the flags
        with pytest.raises(BlockingIOError):  # nothing readable: the answer is still held
            connection.recv(1)
