"""A fake of Microsoft Graph's SharePoint drives over HTTPS (trustme CA), for the real GraphClient to talk to.

What it follows (Microsoft Graph v1.0 documentation): `GET /sites/{site}/drives/{drive}`; `GET
/drives/{drive}/root:/{path}` (404 itemNotFound when there is none); `PUT /drives/{drive}/root:/{path}:/content`
(a simple upload; `@microsoft.graph.conflictBehavior=fail` gives 409 nameAlreadyExists on a taken name); `POST
…:/createUploadSession` (`{"item": {"@microsoft.graph.conflictBehavior": "fail"}}`), whose upload URL is
pre-authenticated (an Authorization header there is 401) and takes `PUT`s with `Content-Range: bytes a-b/total`,
in order, of multiples of 320 KiB except the last, answering 202 with `nextExpectedRanges`, 416 for a range it
has, and 201 with the driveItem after the last byte; `GET` on it gives the session's state. Names are
case-insensitive, as in SharePoint. Tokens come from the fake Entra ID (tests/integration/fake_dataverse.py) for
the resource that is this server's origin, and an application reaches only the sites it was granted
(`Sites.Selected`): 403 accessDenied elsewhere.

Stored files are hashed here with the `quickxorhash` C library, not PackCloud's QuickXorHash, so that a mistake in
one cannot hide in the other; the hash is returned in `file.hashes.quickXorHash`.

Scripts: `fail_next` (the next requests of a kind answer 429/503 with Retry-After, or any other status; with
`applied`, after the request took effect, as when an answer is lost on the way), and
`expire_next` (the next upload sessions disappear after that many fragments, as expired ones do: 404 itemNotFound).
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import json
import random
import threading
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

import quickxorhash

from tests.integration.fake_dataverse import FakeEntra, TrustedCA, serve, start_entra

SIMPLE_UPLOAD_MAX = 4 * 1024 * 1024
FRAGMENT_UNIT = 320 * 1024
MAX_FRAGMENT = 60 * 1024 * 1024
Kind = Literal["api", "upload"]  # requests to Graph itself, or to an upload URL


@dataclass
class Item:
    id: str
    drive_id: str
    name: str
    size: int
    quick_xor_hash: str
    data: bytes | None  # None when the fake keeps hashes only (benchmarks of large files)


@dataclass
class Session:
    id: str
    drive_id: str
    key: str  # the item's path, lower case
    name: str
    size: int | None = None
    received: int = 0  # bytes 0 .. received-1 are here
    fragments: int = 0
    expires_after: int | None = None  # fragments after which this session is gone
    data: bytearray = field(default_factory=bytearray)
    hasher: Any = field(default_factory=quickxorhash.quickxorhash)


@dataclass
class Scripted:
    status: int
    kind: Kind | None
    retry_after: str | None
    applied: bool = False  # the request takes effect, and its answer is this failure (an answer lost on the way)


@dataclass
class FakeGraph:
    origin: str  # https://127.x.y.z: the token resource
    entra: FakeEntra
    keep_content: bool = True
    sites: dict[str, set[str]] = field(default_factory=dict)  # site id -> its drive ids
    granted: dict[str, set[str]] = field(default_factory=dict)  # client id -> site ids (Sites.Selected)
    items: dict[tuple[str, str], Item] = field(default_factory=dict)  # (drive, lower-case path) -> item
    sessions: dict[str, Session] = field(default_factory=dict)
    scripted: deque[Scripted] = field(default_factory=deque)
    expiring: deque[int] = field(default_factory=deque)  # for the next sessions: fragments after which each is gone
    requests: list[tuple[str, Kind, int]] = field(default_factory=list)  # method, kind, status
    fragments: list[tuple[int, int]] = field(default_factory=list)  # (offset, length) of every fragment received
    authorized_uploads: int = 0  # upload URL requests that carried an Authorization header
    # Re-entrant: an answer (which logs the request under the lock) may be given while the lock is held.
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    @property
    def url(self) -> str:
        return self.origin + "/v1.0"

    def add_drive(self, site_id: str, drive_id: str) -> None:
        self.sites.setdefault(site_id, set()).add(drive_id)

    def grant(self, client_id: str, site_id: str) -> None:
        self.granted.setdefault(client_id, set()).add(site_id)

    def put(self, drive_id: str, path: str, data: bytes) -> Item:
        """An item already in the library (someone's, or an earlier run's)."""
        hasher = quickxorhash.quickxorhash()
        hasher.update(data)
        return self._store(drive_id, path.lower(), path.rsplit("/", 1)[-1], data, hasher.digest())

    def item(self, drive_id: str, path: str) -> Item | None:
        return self.items.get((drive_id, path.lower()))

    def fail_next(
        self,
        status: int,
        count: int = 1,
        *,
        kind: Kind | None = None,
        retry_after: str | None = None,
        applied: bool = False,
    ) -> None:
        for _ in range(count):
            self.scripted.append(Scripted(status, kind, retry_after, applied))

    def expire_next(self, after_fragments: int, sessions: int = 1) -> None:
        """The next `sessions` upload sessions disappear (as expired ones do) after that many fragments each."""
        self.expiring.extend([after_fragments] * sessions)

    def count(self, method: str, kind: Kind, status: int | None = None) -> int:
        return sum(1 for m, k, s in self.requests if m == method and k == kind and (status is None or s == status))

    def reset(self) -> None:
        with self.lock:
            self.items.clear()
            self.sessions.clear()
            self.scripted.clear()
            self.requests.clear()
            self.fragments.clear()
            self.expiring.clear()
            self.authorized_uploads = 0

    def _store(self, drive_id: str, key: str, name: str, data: bytes | None, digest: bytes, size: int = -1) -> Item:
        size = len(data) if data is not None else size
        item = Item(str(uuid.uuid4()), drive_id, name, size, base64.b64encode(digest).decode(), data)
        item.data = data if self.keep_content else None
        self.items[(drive_id, key)] = item
        return item

    def drive_item(self, item: Item) -> dict[str, Any]:
        return {
            "id": item.id,
            "name": item.name,
            "size": item.size,
            "webUrl": f"https://contoso.sharepoint.example/sites/attachments/{item.id}",
            "parentReference": {"driveId": item.drive_id},
            "file": {"mimeType": "application/octet-stream", "hashes": {"quickXorHash": item.quick_xor_hash}},
        }


def graph_error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "innerError": {"request-id": str(uuid.uuid4())}}}


class _GraphHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    @property
    def graph(self) -> FakeGraph:
        return self.server.graph  # type: ignore[attr-defined]

    # -- answers ----------------------------------------------------------------------------------

    def _answer(self, status: int, body: dict[str, Any] | None, headers: dict[str, str] | None = None) -> None:
        lost: Scripted | None = getattr(self, "lost_answer", None)
        if lost is not None:  # done, but the client hears a failure instead
            self.lost_answer = None
            status, body = lost.status, graph_error("generalException", "Scripted after the request took effect.")
            headers = {"Retry-After": lost.retry_after} if lost.retry_after is not None else {}
        data = json.dumps(body).encode() if body is not None else b""
        kind: Kind = "upload" if urlsplit(self.path).path.startswith("/upload/") else "api"
        with self.graph.lock:
            self.graph.requests.append((self.command, kind, status))
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        self._answer(status, graph_error(code, message), headers)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("content-length") or 0))

    def _scripted(self, kind: Kind) -> bool:
        with self.graph.lock:
            queue = self.graph.scripted
            found = next((s for s in queue if s.kind in (None, kind)), None)
            if found is not None:
                queue.remove(found)
        if found is None:
            return False
        if found.applied:
            self.lost_answer = found
            return False
        headers = {"Retry-After": found.retry_after} if found.retry_after is not None else {}
        code = {429: "activityLimitReached", 503: "serviceNotAvailable"}.get(found.status, "generalException")
        self._error(found.status, code, "Scripted.", headers)
        return True

    def _client(self) -> str | None:
        """The application whose valid Graph token this is; else answered 401."""
        authorization = self.headers.get("authorization", "")
        token = self.graph.entra.valid(authorization.removeprefix("Bearer "), self.graph.origin)
        if not authorization.startswith("Bearer ") or token is None:
            self._error(401, "InvalidAuthenticationToken", "Access token is empty or invalid.")
            return None
        return token.client_id

    def _drive_allowed(self, client: str, drive_id: str) -> bool:
        site = next((s for s, drives in self.graph.sites.items() if drive_id in drives), None)
        if site is None:
            self._error(404, "itemNotFound", "The drive does not exist.")
            return False
        if site not in self.graph.granted.get(client, set()):
            self._error(403, "accessDenied", "Either scp or roles claim need to be present in the token.")
            return False
        return True

    # -- routes -----------------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._route(b"")

    def do_PUT(self) -> None:
        self._route(self._body())

    def do_POST(self) -> None:
        self._route(self._body())

    def do_DELETE(self) -> None:
        self._route(b"")

    def _route(self, body: bytes) -> None:
        split = urlsplit(self.path)
        if split.path.startswith("/upload/"):
            if not self._scripted("upload"):
                self._upload_url(split.path.removeprefix("/upload/"), body)
            return
        if self._scripted("api"):
            return
        client = self._client()
        if client is None:
            return
        parts = split.path.split("/")
        query = {k: v[0] for k, v in parse_qs(split.query).items()}
        # /v1.0/sites/{site}/drives/{drive}
        if len(parts) == 6 and parts[1:3] == ["v1.0", "sites"] and parts[4] == "drives" and self.command == "GET":
            site, drive = unquote(parts[3]), unquote(parts[5])
            if drive not in self.graph.sites.get(site, set()):
                self._error(404, "itemNotFound", "The site or drive does not exist.")
            elif site not in self.graph.granted.get(client, set()):
                self._error(403, "accessDenied", "Access denied.")
            else:
                self._answer(200, {"id": drive, "driveType": "documentLibrary", "name": "Documents"})
            return
        # /v1.0/drives/{drive}/root:/{path}[:/content | :/createUploadSession]
        prefix = "/v1.0/drives/"
        if not split.path.startswith(prefix) or "/root:/" not in split.path:
            self._error(400, "invalidRequest", "Unsupported segment.")
            return
        drive_part, _, rest = split.path.removeprefix(prefix).partition("/root:/")
        drive = unquote(drive_part)
        if not self._drive_allowed(client, drive):
            return
        action = ""
        for suffix in (":/content", ":/createUploadSession"):
            if rest.endswith(suffix):
                rest, action = rest.removesuffix(suffix), suffix[2:]
        segments = [unquote(segment) for segment in rest.split("/")]
        if any(not s or "/" in s or ":" in s for s in segments):
            self._error(400, "invalidRequest", "Invalid path.")
            return
        path = "/".join(segments)
        key = path.lower()
        if action == "" and self.command == "GET":
            item = self.graph.items.get((drive, key))
            if item is None:
                self._error(404, "itemNotFound", "The resource could not be found.")
            else:
                self._answer(200, self.graph.drive_item(item))
        elif action == "content" and self.command == "PUT":
            self._simple_upload(drive, key, segments[-1], body, query.get("@microsoft.graph.conflictBehavior"))
        elif action == "createUploadSession" and self.command == "POST":
            self._create_session(drive, key, segments[-1], body)
        else:
            self._error(405, "invalidRequest", "Method not allowed.")

    def _simple_upload(self, drive: str, key: str, name: str, body: bytes, behaviour: str | None) -> None:
        if len(body) > SIMPLE_UPLOAD_MAX:
            self._error(413, "requestTooLarge", "Use an upload session for files over 4 MB.")
            return
        with self.graph.lock:
            if behaviour == "fail" and (drive, key) in self.graph.items:
                self._error(409, "nameAlreadyExists", "The specified item name already exists.")
                return
            hasher = quickxorhash.quickxorhash()
            hasher.update(body)
            item = self.graph._store(drive, key, name, body, hasher.digest())
        self._answer(201, self.graph.drive_item(item))

    def _create_session(self, drive: str, key: str, name: str, body: bytes) -> None:
        try:
            behaviour = json.loads(body or b"{}").get("item", {}).get("@microsoft.graph.conflictBehavior")
        except (ValueError, AttributeError):
            self._error(400, "invalidRequest", "Unreadable body.")
            return
        with self.graph.lock:
            if behaviour == "fail" and (drive, key) in self.graph.items:
                self._error(409, "nameAlreadyExists", "The specified item name already exists.")
                return
            expires_after = self.graph.expiring.popleft() if self.graph.expiring else None
            session = Session(uuid.uuid4().hex, drive, key, name, expires_after=expires_after)
            self.graph.sessions[session.id] = session
        self._answer(
            200,
            {
                "uploadUrl": f"{self.graph.origin}/upload/{session.id}",
                "expirationDateTime": "2030-01-01T00:00:00Z",
                "nextExpectedRanges": ["0-"],
            },
        )

    # -- the upload URL ---------------------------------------------------------------------------

    def _upload_url(self, session_id: str, body: bytes) -> None:
        if "authorization" in {name.lower() for name in self.headers}:
            with self.graph.lock:
                self.graph.authorized_uploads += 1
            self._error(401, "unauthenticated", "The upload URL is pre-authenticated: no Authorization header.")
            return
        session = self.graph.sessions.get(session_id)
        if session is None:
            self._error(404, "itemNotFound", "The upload session was not found.")
            return
        if self.command == "GET":
            self._answer(200, self._state(session))
        elif self.command == "DELETE":
            self.graph.sessions.pop(session_id, None)
            self._answer(204, None)
        elif self.command == "PUT":
            self._fragment(session, body)
        else:
            self._error(405, "invalidRequest", "Method not allowed.")

    def _state(self, session: Session) -> dict[str, Any]:
        end = "" if session.size is None else str(session.size - 1)
        return {"expirationDateTime": "2030-01-01T00:00:00Z", "nextExpectedRanges": [f"{session.received}-{end}"]}

    def _fragment(self, session: Session, body: bytes) -> None:
        content_range = self.headers.get("content-range", "")
        try:
            unit, _, spec = content_range.partition(" ")
            span, _, total_text = spec.partition("/")
            first_text, _, last_text = span.partition("-")
            first, last, total = int(first_text), int(last_text), int(total_text)
        except ValueError:
            self._error(400, "invalidRange", "Content-Range is missing or malformed.")
            return
        length = last - first + 1
        if unit != "bytes" or length != len(body) or length <= 0 or length > MAX_FRAGMENT or last >= total:
            self._error(400, "invalidRange", "The Content-Range does not match the body.")
            return
        if length % FRAGMENT_UNIT and last != total - 1:
            self._error(400, "invalidRange", "Fragments must be multiples of 320 KiB.")
            return
        with self.graph.lock:
            if session.size is None:
                session.size = total
            if total != session.size:
                self._error(400, "invalidRange", "The declared size changed.")
                return
            if first < session.received:
                self._error(416, "invalidRange", "The fragment overlaps a range already received.")
                return
            if first > session.received:
                self._error(400, "invalidRange", "Fragments must be uploaded in order.")
                return
            session.hasher.update(body)
            if self.graph.keep_content:
                session.data += body
            session.received += length
            session.fragments += 1
            self.graph.fragments.append((first, length))
            if session.expires_after is not None and session.fragments >= session.expires_after:
                # Gone after this fragment: its answer comes, the next request finds no session.
                self.graph.sessions.pop(session.id, None)
            if session.received < total:
                answer = self._state(session)
                item = None
            else:
                self.graph.sessions.pop(session.id, None)
                if (session.drive_id, session.key) in self.graph.items:
                    self._error(409, "nameAlreadyExists", "The specified item name already exists.")
                    return
                data = bytes(session.data) if self.graph.keep_content else None
                item = self.graph._store(
                    session.drive_id, session.key, session.name, data, session.hasher.digest(), total
                )
        if item is None:
            self._answer(202, answer)
        else:
            self._answer(201, self.graph.drive_item(item))


def start_graph(ca: TrustedCA, entra: FakeEntra) -> tuple[FakeGraph, ThreadingHTTPServer]:
    """Graph on port 443 of a loopback address of its own (in 127.200-254.x.x, apart from the fake Dataverses)."""
    for _ in range(20):
        host = str(
            ipaddress.IPv4Address(f"127.{random.randint(200, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}")
        )
        with contextlib.suppress(OSError):
            server = serve(_GraphHandler, host, 443, ca.server_context(host))
            break
    else:
        raise RuntimeError("no loopback address with a free port 443")
    graph = FakeGraph(f"https://{host}", entra)
    entra.resources.add(graph.origin)
    server.graph = graph  # type: ignore[attr-defined]
    return graph, server


@contextlib.contextmanager
def graph_fakes(folder: Path) -> Iterator[tuple[TrustedCA, FakeEntra, FakeGraph]]:
    ca = TrustedCA.create(folder)
    entra, entra_server = start_entra(ca)
    graph, graph_server = start_graph(ca, entra)
    try:
        yield ca, entra, graph
    finally:
        for server in (graph_server, entra_server):
            server.shutdown()
            server.server_close()
