"""The ASGI application: requests become azure.functions.HttpRequest objects, as the Functions host makes them."""

from __future__ import annotations

import asyncio
import hmac
import inspect
import json
import logging
import sys
import traceback
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qsl, unquote

import azure.functions as func

from devhost.routes import HttpRoute, TimerFunction
from devhost.timers import TimerRunner

MAX_BODY_BYTES = 100 * 1024 * 1024  # the Azure Functions host's own request limit
MAX_HEADER_BYTES = 32 * 1024  # Kestrel's MaxRequestHeadersTotalSize, which the Functions host runs on: a 431
WORKER_THREADS = 32  # when PYTHON_THREADPOOL_THREAD_COUNT is not set
THREAD_COUNT_SETTING = "PYTHON_THREADPOOL_THREAD_COUNT"  # the Azure Python worker's own setting, read the same way

log = logging.getLogger("devhost")
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def worker_threads(environ: Mapping[str, str]) -> int:
    """The sync functions' thread pool size: PYTHON_THREADPOOL_THREAD_COUNT (1 to 32, as Azure allows), else 32."""
    value = environ.get(THREAD_COUNT_SETTING, "").strip()
    if not value:
        return WORKER_THREADS
    if not value.isdigit() or not 1 <= int(value) <= 32:
        raise ValueError(f"{THREAD_COUNT_SETTING} must be a whole number from 1 to 32")
    return int(value)


def _json(status: int, error: str, detail: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    body = json.dumps({"error": error, "detail": detail}).encode()
    return status, [(b"content-type", b"application/json")], body


class FunctionHost:
    def __init__(
        self,
        routes: list[HttpRoute],
        timers: list[TimerFunction],
        route_prefix: str,
        function_key: str,
        master_key: str,
        threads: int = WORKER_THREADS,
    ) -> None:
        self.routes = routes
        self.prefix = "/" + route_prefix.strip("/") if route_prefix.strip("/") else ""
        self.function_key = function_key
        self.master_key = master_key
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="function")
        self.timers = TimerRunner(timers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        status, headers, body = await self._handle(scope, receive)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.timers.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.timers.stop()
                self.pool.shutdown(wait=True)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _read_body(self, receive: Receive) -> bytes | None:
        chunks, size = [], 0
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                return None
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    def _key_ok(self, level: str, headers: dict[str, str], query: dict[str, str]) -> bool:
        if level == "ANONYMOUS":
            return True
        presented = headers.get("x-functions-key") or query.get("code") or ""
        accepted = [self.master_key] if level == "ADMIN" else [self.function_key, self.master_key]
        return any(hmac.compare_digest(presented.encode(), key.encode()) for key in accepted)

    async def _handle(self, scope: Scope, receive: Receive) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        method = scope["method"].upper()
        raw_path = scope.get("raw_path") or scope["path"].encode()
        path = raw_path.decode("latin-1")
        query_string = scope.get("query_string", b"").decode("latin-1")
        query: dict[str, str] = {}
        for name, value in parse_qsl(query_string, keep_blank_values=True):
            query.setdefault(name, value)  # the first value of a repeated name, as the Functions host does
        if sum(len(name) + len(value) for name, value in scope["headers"]) > MAX_HEADER_BYTES:
            return _json(431, "headers_too_large", f"the request headers are larger than {MAX_HEADER_BYTES} bytes")
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            key = name.decode("latin-1").lower()
            headers[key] = f"{headers[key]}, {value.decode('latin-1')}" if key in headers else value.decode("latin-1")

        if path.startswith("/admin/functions/") and method == "POST":
            return await self._admin_run(path.removeprefix("/admin/functions/"), headers, query)
        if not path.startswith(self.prefix + "/"):
            return _json(404, "not_found", "no function answers this path")
        relative = path[len(self.prefix) + 1 :]
        matches = [(route, params) for route in self.routes if (params := route.match(unquote(relative))) is not None]
        if not matches:
            return _json(404, "not_found", "no function answers this path")
        allowed = [(route, params) for route, params in matches if route.allows(method)]
        if not allowed:
            methods = sorted({m for route, _ in matches for m in route.methods})
            status, response_headers, answer = _json(405, "method_not_allowed", f"allowed: {', '.join(methods)}")
            return status, [*response_headers, (b"allow", ", ".join(methods).encode())], answer
        route, params = allowed[0]
        if not self._key_ok(route.auth_level, headers, query):
            return _json(401, "unauthorized", "send a valid function key in x-functions-key or ?code=")
        body = await self._read_body(receive)
        if body is None:
            return _json(413, "body_too_large", f"the body is larger than {MAX_BODY_BYTES} bytes")

        # As the Azure front end does: the client address is appended to X-Forwarded-For.
        client = scope.get("client") or ("", 0)
        peer = client[0]
        headers["x-forwarded-for"] = f"{headers['x-forwarded-for']}, {peer}" if headers.get("x-forwarded-for") else peer
        host = headers.get("host", "127.0.0.1")
        url = f"{scope.get('scheme', 'http')}://{host}{path}" + (f"?{query_string}" if query_string else "")
        request = func.HttpRequest(method, url, headers=headers, params=query, route_params=params, body=body)
        return await self._invoke(route, request)

    async def _invoke(
        self, route: HttpRoute, request: func.HttpRequest
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        try:
            if inspect.iscoroutinefunction(route.handler):
                response = await route.handler(**{route.binding_name: request})
            else:
                loop = asyncio.get_running_loop()
                response = await loop.run_in_executor(self.pool, lambda: route.handler(**{route.binding_name: request}))
        except Exception:
            print(f"function {route.function_name} failed:", file=sys.stderr)
            traceback.print_exc()
            return _json(500, "internal", "the function failed")
        if response is None:
            return 204, [], b""
        headers = [
            (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in response.headers.items()
        ]
        if not any(name == b"content-type" for name, _ in headers) and response.mimetype:
            content_type = response.mimetype + (f"; charset={response.charset}" if response.charset else "")
            headers.append((b"content-type", content_type.encode()))
        return response.status_code, headers, response.get_body() or b""

    async def _admin_run(
        self, name: str, headers: dict[str, str], query: dict[str, str]
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """Core Tools' admin API: POST /admin/functions/{name} runs a non-HTTP function now."""
        if not self._key_ok("ADMIN", headers, query):
            return _json(401, "unauthorized", "the admin API needs the master key in x-functions-key")
        if not self.timers.knows(name):
            return _json(404, "not_found", "no timer function with this name")
        if query.get("wait") == "true":
            loop = asyncio.get_running_loop()
            error = await loop.run_in_executor(self.pool, lambda: self.timers.run_now(name))
            if error is not None:
                return _json(500, "internal", "the function failed")
            return 200, [(b"content-type", b"application/json")], b'{"status": "completed"}'
        self.pool.submit(self.timers.run_now, name)
        return 202, [(b"content-type", b"application/json")], b'{"status": "started"}'
