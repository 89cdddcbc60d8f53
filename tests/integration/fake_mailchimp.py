"""A fake of Mailchimp's Marketing API (3.0), for the endpoints PackCloud uses, over plain HTTP on loopback.

The real API has no emulator; PackCloud calls it with httpx (no Mailchimp client library), so the fake is what
httpx talks to, at `http://127.0.0.1:<port>/<dc>/3.0` (PACKCLOUD_MAILCHIMP_API_BASE `.../{dc}/3.0`). It follows the
documented behaviour: HTTP Basic auth with any user name and the API key as password (401 problem JSON
otherwise); errors as `application/problem+json` (`type`, `title`, `status`, `detail`, `instance`, and `errors`
for validation); members addressed by the MD5 of the lower-cased address; an unknown merge field refused with 400;
DELETE archives a member, `actions/delete-permanent` forgets it; campaigns and email activity paged by `count`
and `offset`, activity filtered by `since`.

It also keeps what a test needs to check: the members it holds, the most connections open at once per key (Mailchimp
allows 10), and scripts: `fail_next` (the next requests answer a status, with Retry-After), `hold` (requests to a
path block until released).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


def member_hash(email: str) -> str:
    return hashlib.md5(email.strip().lower().encode(), usedforsecurity=False).hexdigest()


def now_iso() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


@dataclass
class Audience:
    merge_fields: set[str]
    members: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Campaign:
    id: str
    list_id: str
    send_time: str
    # [{"email_address": ..., "activity": [{"action", "timestamp", "url"?}]}]
    emails: list[dict[str, Any]] = field(default_factory=list)


class FakeMailchimp:
    def __init__(self, dc: str, api_key: str, latency_s: float = 0.0) -> None:
        self.dc = dc
        self.api_key = api_key
        self.latency_s = latency_s
        self.audiences: dict[str, Audience] = {}
        self.campaigns: list[Campaign] = []
        self.requests: list[tuple[str, str]] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self._scripted: deque[tuple[int, int | None]] = deque()
        self.holds: dict[str, threading.Event] = {}
        self.server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/{{dc}}/3.0"

    def audience(self, list_id: str, *merge_fields: str) -> Audience:
        self.audiences[list_id] = Audience(set(merge_fields))
        return self.audiences[list_id]

    def fail_next(self, status: int, count: int = 1, retry_after: int | None = None) -> None:
        with self._lock:
            self._scripted.extend([(status, retry_after)] * count)

    def hold(self, path_part: str) -> threading.Event:
        """Requests whose path contains `path_part` wait until the event is set."""
        self.holds[path_part] = threading.Event()
        return self.holds[path_part]

    def member(self, list_id: str, email: str) -> dict[str, Any] | None:
        return self.audiences[list_id].members.get(member_hash(email))

    # -- the server side ---------------------------------------------------------------------------

    def enter(self) -> None:
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)

    def leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def scripted(self) -> tuple[int, int | None] | None:
        with self._lock:
            return self._scripted.popleft() if self._scripted else None


def problem(status: int, title: str, detail: str, errors: list[dict[str, str]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "https://mailchimp.com/developer/marketing/docs/errors/",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": "00000000-0000-0000-0000-000000000000",
    }
    if errors is not None:
        body["errors"] = errors
    return body


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ThreadingHTTPServer

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the tests read what the fake holds, not its log."""

    @property
    def fake(self) -> FakeMailchimp:
        return self.server.fake  # type: ignore[attr-defined]

    def _send(self, status: int, body: dict[str, Any] | None, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        kind = "application/problem+json" if status >= 400 else "application/json"
        if data:
            self.send_header("Content-Type", f"{kind}; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> None:
        fake = self.fake
        fake.enter()
        try:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            url = urlsplit(self.path)
            fake.requests.append((method, url.path))
            for part, event in list(fake.holds.items()):
                if part in url.path:
                    event.wait(60)
            if fake.latency_s:
                time.sleep(fake.latency_s)
            prefix = f"/{fake.dc}/3.0"
            if not url.path.startswith(prefix + "/"):
                return self._send(404, problem(404, "Resource Not Found", "The requested resource could not be found."))
            if not self._authorised():
                return self._send(401, problem(401, "API Key Invalid", "Your API key may be invalid."))
            scripted = fake.scripted()
            if scripted is not None:
                status, retry_after = scripted
                headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
                title = "Too Many Requests" if status == 429 else "Internal Server Error"
                return self._send(status, problem(status, title, "Scripted by the test."), headers)
            body = json.loads(raw) if raw else {}
            query = {name: values[0] for name, values in parse_qs(url.query).items()}
            status, answer = self._route(method, url.path[len(prefix) :].strip("/").split("/"), body, query)
            self._send(status, answer)
        finally:
            fake.leave()

    def _authorised(self) -> bool:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            _, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return password == self.fake.api_key

    def _route(
        self, method: str, parts: list[str], body: dict[str, Any], query: dict[str, str]
    ) -> tuple[int, dict[str, Any] | None]:
        fake = self.fake
        if parts == ["ping"] and method == "GET":
            return 200, {"health_status": "Everything's Chimpy!"}
        if parts[0] == "lists" and len(parts) >= 4 and parts[2] == "members":
            audience = fake.audiences.get(parts[1])
            if audience is None:
                return 404, problem(404, "Resource Not Found", "The requested resource could not be found.")
            return self._member(method, audience, parts[1], parts[3], parts[4:], body)
        if parts == ["campaigns"] and method == "GET":
            since = query.get("since_send_time", "")
            sent = [c for c in fake.campaigns if c.send_time >= since]
            offset, count = int(query.get("offset", 0)), int(query.get("count", 10))
            page = sent[offset : offset + count]
            shown = [{"id": c.id, "send_time": c.send_time, "recipients": {"list_id": c.list_id}} for c in page]
            return 200, {"campaigns": shown, "total_items": len(sent)}
        if parts[0] == "reports" and len(parts) == 3 and parts[2] == "email-activity" and method == "GET":
            campaign = next((c for c in fake.campaigns if c.id == parts[1]), None)
            if campaign is None:
                return 404, problem(404, "Resource Not Found", "The requested resource could not be found.")
            since = query.get("since")
            emails = []
            for item in campaign.emails:
                activity = [a for a in item["activity"] if since is None or a["timestamp"] > since]
                if activity:
                    emails.append(
                        {**item, "campaign_id": campaign.id, "list_id": campaign.list_id, "activity": activity}
                    )
            offset, count = int(query.get("offset", 0)), int(query.get("count", 10))
            return 200, {
                "emails": emails[offset : offset + count],
                "campaign_id": campaign.id,
                "total_items": len(emails),
            }
        return 404, problem(404, "Resource Not Found", "The requested resource could not be found.")

    def _member(
        self, method: str, audience: Audience, list_id: str, key: str, rest: list[str], body: dict[str, Any]
    ) -> tuple[int, dict[str, Any] | None]:
        existing = audience.members.get(key)
        if rest == ["actions", "delete-permanent"] and method == "POST":
            if existing is None:
                return 404, problem(404, "Resource Not Found", "The requested resource could not be found.")
            del audience.members[key]
            return 204, None
        if rest == ["tags"] and method == "POST":
            if existing is None:
                return 404, problem(404, "Resource Not Found", "The requested resource could not be found.")
            existing.setdefault("tags", []).extend(tag["name"] for tag in body.get("tags", []))
            return 204, None
        if rest:
            return 404, problem(404, "Resource Not Found", "The requested resource could not be found.")
        if method == "GET":
            return (200, existing) if existing else (404, problem(404, "Resource Not Found", "Not found."))
        if method == "DELETE":
            if existing is None:
                return 404, problem(404, "Resource Not Found", "The requested resource could not be found.")
            existing["status"] = "archived"
            return 204, None
        if method != "PUT":
            return 405, problem(405, "Method Not Allowed", "The requested method and resource are not compatible.")
        email = str(body.get("email_address", ""))
        if "@" not in email or member_hash(email) != key:
            errors = [{"field": "email_address", "message": "This value should be a valid email."}]
            return 400, problem(400, "Invalid Resource", "The resource submitted could not be validated.", errors)
        unknown = sorted(set(body.get("merge_fields", {})) - audience.merge_fields)
        if unknown:
            errors = [{"field": name, "message": "Unknown merge field"} for name in unknown]
            return 400, problem(400, "Invalid Resource", "The resource submitted could not be validated.", errors)
        now = now_iso()
        if existing is None:
            status = body.get("status_if_new") or body.get("status") or "subscribed"
            existing = {
                "id": key,
                "email_address": email,
                "status": status,
                "merge_fields": {},
                "timestamp_signup": "",
                "timestamp_opt": now if status == "subscribed" else "",
                "list_id": list_id,
            }
            audience.members[key] = existing
        elif body.get("status"):
            if body["status"] == "subscribed" and existing["status"] != "subscribed":
                existing["timestamp_opt"] = now
            existing["status"] = body["status"]
        existing["merge_fields"].update(body.get("merge_fields", {}))
        existing["last_changed"] = now
        return 200, existing

    def do_GET(self) -> None:
        self._handle("GET")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")


def start_mailchimp(dc: str, api_key: str, latency_s: float = 0.0) -> FakeMailchimp:
    fake = FakeMailchimp(dc, api_key, latency_s)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.fake = fake  # type: ignore[attr-defined]
    fake.server = server
    threading.Thread(target=server.serve_forever, name="fake-mailchimp", daemon=True).start()
    return fake
