"""An HTTP/1.1 client that costs its caller as little CPU as it can: pre-encoded requests over one kept-alive socket.

bench/concurrency.py's client threads share a core with Azurite and the latency relay, and what they spend per
request is taken from storage, not from the host being measured. httpx builds, validates and parses every request
and answer in Python; here a request is bytes made once (the pixel's differs only in the visitor id) and an answer
is read just far enough to know its status and where it ends (Content-Length or chunked), which every answer is
checked for.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

HEAD_END = b"\r\n\r\n"
CHUNK = 65536


class AnswerError(RuntimeError):
    """The server closed the connection or sent an answer this client does not read."""


def request_bytes(method: str, target: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} {target} HTTP/1.1", *(f"{name}: {value}" for name, value in headers.items())]
    if body or method in ("POST", "PUT"):
        lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class Connection:
    """One kept-alive connection to `base` (http://host:port), reopened if the server closes it between requests."""

    def __init__(self, base: str, timeout: float = 30) -> None:
        parts = urlsplit(base)
        if parts.scheme != "http" or parts.hostname is None or parts.port is None:
            raise ValueError(f"not an http://host:port address: {base}")
        self.address = (parts.hostname, parts.port)
        self.host_header = f"{parts.hostname}:{parts.port}"
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self.buffer = bytearray()

    def _open(self) -> socket.socket:
        sock = socket.create_connection(self.address, self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer.clear()
        return sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def exchange(self, request: bytes) -> int:
        """Sends `request` and reads its whole answer; its status code."""
        if self.sock is None:
            self.sock = self._open()
        self.sock.sendall(request)
        status, close = self._read_answer(self.sock)
        if close:
            self.close()
        return status

    def _fill(self, sock: socket.socket) -> None:
        data = sock.recv(CHUNK)
        if not data:
            self.close()
            raise AnswerError("the server closed the connection before the answer ended")
        self.buffer += data

    def _read_answer(self, sock: socket.socket) -> tuple[int, bool]:
        while (end := self.buffer.find(HEAD_END)) < 0:
            self._fill(sock)
        head = bytes(self.buffer[:end]).lower()
        del self.buffer[: end + len(HEAD_END)]
        status = int(head[9:12])
        close = b"\r\nconnection: close" in head
        if (at := head.find(b"\r\ncontent-length:")) >= 0:
            line_end = head.find(b"\r\n", at + 2)
            length = int(head[at + 17 : line_end if line_end >= 0 else len(head)])
            while len(self.buffer) < length:
                self._fill(sock)
            del self.buffer[:length]
        elif b"\r\ntransfer-encoding: chunked" in head:
            self._skip_chunks(sock)
        elif status not in (204, 304) and not 100 <= status < 200:
            raise AnswerError(
                f"an answer ({status}) without a length: this client needs one on a kept-alive connection"
            )
        return status, close

    def _skip_chunks(self, sock: socket.socket) -> None:
        while True:
            while (line_end := self.buffer.find(b"\r\n")) < 0:
                self._fill(sock)
            size = int(bytes(self.buffer[:line_end]).split(b";", 1)[0], 16)
            del self.buffer[: line_end + 2]
            if size == 0:  # no trailers are sent by the local host: the blank line ends the answer
                while len(self.buffer) < 2:
                    self._fill(sock)
                del self.buffer[:2]
                return
            while len(self.buffer) < size + 2:
                self._fill(sock)
            del self.buffer[: size + 2]
