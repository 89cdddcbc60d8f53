"""An HTTP proxy between a client under test and Azurite that can act before it forwards a request.

A test makes a real race with it: before a client's conditional write reaches Azurite, another writer (straight
to Azurite) changes the blob, so that Azurite itself answers the write `412`. Or a real outage of one kind of
request: the proxy answers it with a storage error instead of forwarding it. The client is the real SDK with
its retries and conditions; only what reaches storage, and when, is the test's.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

from pydantic import SecretStr

from devenv.azurite import ACCOUNT, connection_string
from shared.core.settings import Settings

# Not forwarded: they describe the connection to the proxy, not the request (the body is re-sent whole).
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "upgrade", "host"}


@dataclass(frozen=True)
class Seen:
    """A request as the proxy received it, before it is forwarded."""

    method: str
    blob: str  # "container/name", unquoted, without the account
    headers: dict[str, str]  # lower-case names

    def is_conditional_write(self) -> bool:
        return self.method == "PUT" and "if-match" in self.headers


# Called before each request is forwarded: None forwards it, a status code answers it instead (an outage).
Before = Callable[[Seen], int | None]
# Called when storage has answered a request, before the answer goes back: a slow answer, read before a change.
After = Callable[[Seen], None]


class StorageProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.before: Before | None = None
        self.after: After | None = None
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), type("Handler", (_Handler,), {"proxy": self}))
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def connection_string(self) -> str:
        return connection_string(self.port)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @contextmanager
    def acting(self, before: Before | None = None, *, after: After | None = None) -> Iterator[None]:
        self.before, self.after = before, after
        try:
            yield
        finally:
            self.before, self.after = None, None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's connection pool expects
    proxy: StorageProxy

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _forward(self) -> None:
        if self.headers.get("transfer-encoding"):
            self.send_error(501, "chunked requests are not proxied")
            return
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        headers = {name.lower(): value for name, value in self.headers.items()}
        path = urlsplit(self.path).path
        blob = unquote(path).removeprefix(f"/{ACCOUNT}/")
        seen = Seen(self.command, blob, headers)
        before, after = self.proxy.before, self.proxy.after
        status = before(seen) if before is not None else None
        if status is not None:
            self._answer(status, [("x-ms-error-code", "ServerBusy")], b"")
            return
        upstream = http.client.HTTPConnection("127.0.0.1", self.proxy.upstream_port, timeout=30)
        try:
            sent = {name: value for name, value in headers.items() if name not in HOP_BY_HOP}
            upstream.request(self.command, self.path, body=body, headers=sent)
            answer = upstream.getresponse()
            content = answer.read()
            if after is not None:
                after(seen)
            kept = [(name, value) for name, value in answer.getheaders() if name.lower() not in HOP_BY_HOP]
            self._answer(answer.status, kept, content)
        finally:
            upstream.close()

    def _answer(self, status: int, headers: list[tuple[str, str]], content: bytes) -> None:
        self.send_response_only(status)
        for name, value in headers:
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("content-length", str(len(content)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(content)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_OPTIONS = _forward


def on_conditional_writes(blob: str, act: Callable[[], None]) -> Before:
    """`act` (another writer's turn) before each conditional write of `blob` ("container/name") is forwarded."""

    def before(request: Seen) -> None:
        if request.is_conditional_write() and request.blob == blob:
            act()

    return before


def settings_through(settings: Settings, proxy: StorageProxy) -> Settings:
    """The same settings, with storage reached through the proxy."""
    return settings.model_copy(update={"storage_connection_string": SecretStr(proxy.connection_string)})
