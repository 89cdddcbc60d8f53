"""A DPO webhook receiver over HTTPS with a test CA (trustme), on an address of its own in 127.0.0.0/8.

It keeps every request it gets (headers and raw body) and answers 200, or what the test scripted for the next
requests: a status (`fail_next`) or a redirect (`redirect_next`). `verified` checks a request's signature the way
docs/dpo-notifications.md tells receivers to, with Python's hmac, not with PackCloud's code.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.integration.fake_dataverse import TrustedCA, serve


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)

    def verified(self, secret: str) -> bool:
        timestamp = self.headers["x-packcloud-timestamp"]
        expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + self.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, self.headers["x-packcloud-signature"])


@dataclass
class Receiver:
    address: str
    port: int = 0
    received: list[Received] = field(default_factory=list)
    answers: deque[tuple[int, dict[str, str]]] = field(default_factory=deque)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    def url(self, host: str | None = None, path: str = "/hooks/dpo") -> str:
        return f"https://{host or self.address}:{self.port}{path}"

    def fail_next(self, count: int, status: int = 503) -> None:
        with self.lock:
            self.answers.extend([(status, {})] * count)

    def redirect_next(self, location: str, status: int = 302) -> None:
        with self.lock:
            self.answers.append((status, {"Location": location}))

    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            return [item.event for item in self.received]

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def start_receiver(ca: TrustedCA, address: str, *names: str) -> Receiver:
    receiver = Receiver(address)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            with receiver.lock:
                receiver.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                status, headers = receiver.answers.popleft() if receiver.answers else (200, {})
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return None

    receiver.server = serve(Handler, address, 0, ca.server_context(address, *names))
    receiver.port = receiver.server.server_address[1]
    return receiver
