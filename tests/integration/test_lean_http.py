"""bench/lean_http.py, the client bench/concurrency.py loads the host with: it must read every answer exactly to its
end (or the next answer on the kept-alive connection would be read wrong) and report its status."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from bench.lean_http import AnswerError, Connection, request_bytes


@contextmanager
def canned_server(answers: list[bytes]) -> Iterator[tuple[str, list[bytes]]]:
    """A server on 127.0.0.1 that sends `answers[i]` for the i-th request head it reads (one connection, kept
    alive until the answers run out or one ends with `connection: close`); what it read, by request."""
    server = socket.create_server(("127.0.0.1", 0))
    seen: list[bytes] = []

    def serve() -> None:
        pending = list(answers)
        while pending:
            connection, _ = server.accept()
            with connection:
                buffer = b""
                while pending:
                    while b"\r\n\r\n" not in buffer:
                        data = connection.recv(4096)
                        if not data:
                            break
                        buffer += data
                    if b"\r\n\r\n" not in buffer:
                        break
                    head, buffer = buffer.split(b"\r\n\r\n", 1)
                    seen.append(head)
                    answer = pending.pop(0)
                    connection.sendall(answer)
                    if b"connection: close" in answer.lower():
                        break

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}", seen
    finally:
        server.close()
        thread.join(5)


def test_answers_of_every_framing_are_read_to_their_end_on_one_connection():
    answers = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello",
        b"HTTP/1.1 201 Created\r\ntransfer-encoding: chunked\r\n\r\n4\r\nwiki\r\n5;x=y\r\npedia\r\n0\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\nConnection: close\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",  # on a new connection: the last one was closed
    ]
    with canned_server(answers) as (base, seen):
        connection = Connection(base)
        statuses = [connection.exchange(request_bytes("GET", f"/{n}", {"host": "x"})) for n in range(len(answers))]
        connection.close()
    assert statuses == [200, 201, 204, 404, 200]
    assert [head.split(b" ")[1] for head in seen] == [b"/0", b"/1", b"/2", b"/3", b"/4"]


def test_an_answer_cut_short_or_without_a_length_is_an_error():
    for answer in (b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\nConnection: close\r\n\r\nshort", b"HTTP/1.1 200 OK\r\n"):
        with canned_server([answer]) as (base, _):
            connection = Connection(base)
            with pytest.raises(AnswerError):
                connection.exchange(request_bytes("GET", "/", {"host": "x"}))
            connection.close()
    unframed = b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nbody to the end"
    with canned_server([unframed]) as (base, _), pytest.raises(AnswerError, match="without a length"):
        Connection(base).exchange(request_bytes("GET", "/", {"host": "x"}))


def test_a_request_with_a_body_says_its_length():
    encoded = request_bytes("POST", "/forms/t/d", {"host": "h", "content-type": "application/json"}, b'{"a":1}')
    assert encoded == (
        b'POST /forms/t/d HTTP/1.1\r\nhost: h\r\ncontent-type: application/json\r\ncontent-length: 7\r\n\r\n{"a":1}'
    )
