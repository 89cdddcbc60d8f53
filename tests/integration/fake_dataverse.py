"""Fakes of Microsoft Entra ID's token endpoint and of the Dataverse Web API, over HTTPS with a test CA (trustme).

Neither has an emulator, so the real clients (azure-identity with MSAL; PackCloud's requests session) talk to these.
They follow the documented behaviour (Microsoft identity platform: OpenID configuration, client credentials with a
secret or a signed client assertion; Dataverse Web API: `$batch` multipart with change sets, upsert by alternate
key, `WhoAmI`, service protection 429s, OData error bodies) and parse what they receive with Python's own MIME
parser, not with PackCloud's code, so that a mistake in one cannot hide in the other.

Entra ID: `GET /{tenant}/v2.0/.well-known/openid-configuration`, `POST /{tenant}/oauth2/v2.0/token`. Unknown tenant:
400 `invalid_tenant` (AADSTS90002); unknown application: 400 `unauthorized_client` (AADSTS700016); wrong secret or a
client assertion not signed by the registered certificate: 401 `invalid_client` (AADSTS7000215); a scope that is
no organisation it knows: 400 `invalid_scope` (AADSTS500011). Tokens are random, with a lifetime; `expire_all()`
ends every token issued so far.

Dataverse: one organisation per server, on port 443 of an address of its own in 127.0.0.0/8 (an organisation URL has
no port). A request without a valid token for this organisation is 401; an application that is not an application
user of the organisation is 403. `PATCH {set}({key}='{value}')` creates the row or updates the one with that key and
answers 204 with `OData-EntityId`; the column rules give Dataverse's 400s (unknown column, a literal of the wrong
type, a value too long). A change set is atomic: on a failure nothing of it stays, and without
`Prefer: odata.continue-on-error` the batch answers with that failure alone (its status, its Content-ID). Scripts:
the next requests' answers (`fail_next`: a 429 with Retry-After, a 5xx, a 401, a 403), and `hold_next`, which
commits the next batch and holds its answer until released (a process killed meanwhile never hears it).

Files (the attachment mover): notes (`annotations`, `documentbody` base64) and e-mail attachments
(`activitymimeattachments`, `body` base64), listed with `$select`, the `$filter` forms the mover sends (`and`,
parenthesised `or`, `eq`/`ne`/`gt` on columns), `$orderby=versionnumber asc`, `Prefer: odata.maxpagesize` and an
`@odata.nextLink` per page; read with `InitializeAnnotationBlocksDownload`/`InitializeAttachmentBlocksDownload` and
`DownloadBlock` (base64 `Data` of one range); changed with `PATCH` (If-Match on the row's `@odata.etag`, 412 when it
moved on, 404 when the row is gone; unknown columns 400), each change raising the row's `versionnumber`. Scripted
answers (`fail_next`) apply to these requests too; `before_patch` lets a test look at the world just before a PATCH
is applied.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import email
import email.policy
import ipaddress
import json
import random
import re
import secrets
import ssl
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import jwt
import trustme
from cryptography import x509

API = "/api/data/v9.2/"
UPSERT = re.compile(r"^/api/data/v9\.2/([a-z][a-z0-9_]*)\(([a-z][a-z0-9_]*)='((?:[^']|'')*)'\)$")
ROW = re.compile(r"^/api/data/v9\.2/(annotations|activitymimeattachments)\(([0-9a-f-]{36})\)$")
FILE_ACTIONS = ("InitializeAnnotationBlocksDownload", "InitializeAttachmentBlocksDownload", "DownloadBlock")
BLOCK_MAX = 4 * 1024 * 1024
NOTE_COLUMNS = frozenset({"documentbody", "filename", "mimetype", "notetext", "subject", "isdocument"})
ATTACHMENT_COLUMNS = frozenset({"body", "filename", "mimetype", "subject"})
_TERM = re.compile(r"^([a-z_][a-z0-9_]*) (eq|ne|gt) (null|true|false|'[^']*'|-?[0-9]+)$")


# ------------------------------------------------------------------------------------------------ TLS


@dataclass
class TrustedCA:
    ca: trustme.CA
    bundle: Path

    @classmethod
    def create(cls, folder: Path) -> TrustedCA:
        ca = trustme.CA()
        bundle = folder / "test-ca.pem"
        ca.cert_pem.write_to_path(str(bundle))
        return cls(ca, bundle)

    def server_context(self, *hosts: str) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ca.issue_cert(*hosts).configure_cert(context)
        return context


def serve(handler: type[BaseHTTPRequestHandler], host: str, port: int, context: ssl.SSLContext) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# ------------------------------------------------------------------------------------------------ Entra ID


@dataclass
class App:
    tenant_id: str
    client_id: str
    secret: str | None = None
    certificate: x509.Certificate | None = None


@dataclass
class Token:
    client_id: str
    resource: str  # the organisation URL the token is for
    expires_at: float


@dataclass
class FakeEntra:
    url: str  # the authority: https://127.0.0.1:PORT
    apps: dict[str, App] = field(default_factory=dict)
    resources: set[str] = field(default_factory=set)
    tokens: dict[str, Token] = field(default_factory=dict)
    token_lifetime_s: int = 3600
    issued: int = 0
    requests: list[tuple[str, str, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def register(
        self, tenant_id: str, client_id: str, *, secret: str | None = None, certificate_pem: str | None = None
    ):
        certificate = x509.load_pem_x509_certificate(certificate_pem.encode()) if certificate_pem else None
        self.apps[client_id] = App(tenant_id, client_id, secret, certificate)

    def expire_all(self) -> None:
        with self.lock:
            for token in self.tokens.values():
                token.expires_at = 0

    def valid(self, token: str, resource: str) -> Token | None:
        found = self.tokens.get(token)
        if found is None or found.expires_at < time.time() or found.resource != resource:
            return None
        return found


def oauth_error(error: str, code: int, description: str) -> dict[str, Any]:
    return {
        "error": error,
        "error_description": f"AADSTS{code}: {description} Trace ID: {uuid.uuid4()}",
        "error_codes": [code],
        "timestamp": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%SZ"),
    }


class _EntraHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    @property
    def entra(self) -> FakeEntra:
        return self.server.entra  # type: ignore[attr-defined]

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.entra.requests.append((self.command, urlsplit(self.path).path, status))
        self.send_response(status)
        self.send_header("content-type", "application/json; charset=utf-8")
        self.send_header("cache-control", "no-store")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        parts = [p for p in urlsplit(self.path).path.split("/") if p]
        if len(parts) == 4 and parts[1:] == ["v2.0", ".well-known", "openid-configuration"]:
            tenant = parts[0]
            if not any(app.tenant_id == tenant for app in self.entra.apps.values()):
                self._answer(400, oauth_error("invalid_tenant", 90002, f"Tenant '{tenant}' not found."))
                return
            base = f"{self.entra.url}/{tenant}"
            self._answer(
                200,
                {
                    "token_endpoint": f"{base}/oauth2/v2.0/token",
                    "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                    "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                    "issuer": f"{base}/v2.0",
                    "jwks_uri": f"{base}/discovery/v2.0/keys",
                    "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
                    "response_types_supported": ["code", "id_token", "token"],
                    "tenant_region_scope": "EU",
                },
            )
            return
        self._answer(404, {"error": "not_found"})

    def do_POST(self) -> None:
        parts = [p for p in urlsplit(self.path).path.split("/") if p]
        length = int(self.headers.get("content-length") or 0)
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        if len(parts) != 4 or parts[1:] != ["oauth2", "v2.0", "token"]:
            self._answer(404, {"error": "not_found"})
            return
        status, body = self._token(parts[0], form)
        self._answer(status, body)

    def _token(self, tenant: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        entra = self.entra
        if form.get("grant_type") != "client_credentials":
            return 400, oauth_error("unsupported_grant_type", 70003, "The grant type is not supported.")
        app = entra.apps.get(form.get("client_id", ""))
        if not any(a.tenant_id == tenant for a in entra.apps.values()):
            return 400, oauth_error("invalid_tenant", 90002, f"Tenant '{tenant}' not found.")
        if app is None or app.tenant_id != tenant:
            return 400, oauth_error("unauthorized_client", 700016, "Application not found in the directory.")
        if not self._authenticated(app, form, f"{entra.url}/{tenant}/oauth2/v2.0/token"):
            return 401, oauth_error("invalid_client", 7000215, "Invalid client secret provided.")
        scope = form.get("scope", "")
        resource = scope.removesuffix("/.default")
        if not scope.endswith("/.default") or resource not in entra.resources:
            return 400, oauth_error("invalid_scope", 500011, "The resource principal was not found in the tenant.")
        token = secrets.token_urlsafe(32)
        with entra.lock:
            entra.tokens[token] = Token(app.client_id, resource, time.time() + entra.token_lifetime_s)
            entra.issued += 1
        lifetime = entra.token_lifetime_s
        return 200, {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": token}

    @staticmethod
    def _authenticated(app: App, form: dict[str, str], audience: str) -> bool:
        if "client_secret" in form:
            return app.secret is not None and secrets.compare_digest(form["client_secret"], app.secret)
        assertion = form.get("client_assertion")
        if app.certificate is None or assertion is None:
            return False
        if form.get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
            return False
        try:
            claims = jwt.decode(
                assertion,
                app.certificate.public_key(),
                algorithms=["RS256", "PS256"],
                audience=audience,  # type: ignore[arg-type]
            )
        except jwt.PyJWTError:
            return False
        return claims.get("iss") == app.client_id and claims.get("sub") == app.client_id


def start_entra(ca: TrustedCA) -> tuple[FakeEntra, ThreadingHTTPServer]:
    server = serve(_EntraHandler, "127.0.0.1", 0, ca.server_context("127.0.0.1"))
    entra = FakeEntra(f"https://127.0.0.1:{server.server_address[1]}")
    server.entra = entra  # type: ignore[attr-defined]
    return entra, server


# ------------------------------------------------------------------------------------------------ Dataverse


@dataclass(frozen=True)
class Column:
    type: str = "string"  # string, int, datetime, bool
    max_length: int = 100


@dataclass
class Table:
    entity: str  # the logical name Dataverse's messages use (`lead` for the set `leads`)
    key: str  # the alternate key's column
    columns: dict[str, Column]


@dataclass
class Scripted:
    status: int
    retry_after: int | None = None


@dataclass
class Held:
    committed: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


@dataclass
class FakeDataverse:
    url: str  # https://127.x.y.z/
    entra: FakeEntra
    users: set[str] = field(default_factory=set)  # client ids that are application users
    tables: dict[str, Table] = field(default_factory=dict)
    rows: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # set -> key value -> row
    upserts: list[tuple[str, str] | None] = field(default_factory=list)  # every committed (set, key value)
    requests: list[tuple[str, str, int]] = field(default_factory=list)
    batch_headers: list[dict[str, str]] = field(default_factory=list)
    scripted: deque[Scripted] = field(default_factory=deque)
    held: deque[Held] = field(default_factory=deque)
    op_seconds: float = 0.0  # simulated service time of one operation
    dop_hint: int = 4
    in_flight: int = 0  # $batch requests being answered now, and the most there were at once
    most_in_flight: int = 0
    # Files: notes and e-mail attachments by id; a version counter as Dataverse's row versions; download tokens.
    notes: dict[str, dict[str, Any]] = field(default_factory=dict)
    mime_attachments: dict[str, dict[str, Any]] = field(default_factory=dict)
    version: int = 1000
    downloads: dict[str, bytes] = field(default_factory=dict, repr=False)
    patches: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)  # (set, id, values) applied
    before_patch: Any = None  # a callable (set, id, values) run before a PATCH; False: not applied, 503
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _next_version(self) -> int:
        self.version += 1
        return self.version

    def add_note(
        self, table: str, record_id: str, file_name: str, data: bytes, mimetype: str = "application/pdf"
    ) -> str:
        note_id = str(uuid.uuid4())
        with self.lock:
            self.notes[note_id] = {
                "annotationid": note_id,
                "objecttypecode": table,
                "_objectid_value": record_id,
                "isdocument": True,
                "filename": file_name,
                "filesize": len(data),
                "mimetype": mimetype,
                "documentbody": base64.b64encode(data).decode(),
                "notetext": None,
                "versionnumber": self._next_version(),
            }
        return note_id

    def add_mime_attachment(self, email_id: str, file_name: str, data: bytes, mimetype: str = "application/pdf") -> str:
        attachment_id = str(uuid.uuid4())
        with self.lock:
            self.mime_attachments[attachment_id] = {
                "activitymimeattachmentid": attachment_id,
                "objecttypecode": "email",
                "_objectid_value": email_id,
                "filename": file_name,
                "filesize": len(data),
                "mimetype": mimetype,
                "body": base64.b64encode(data).decode(),
                "versionnumber": self._next_version(),
            }
        return attachment_id

    def file_bytes(self, entity_set: str, row_id: str) -> bytes | None:
        """A note's or an attachment's file as it is now (None: no body)."""
        rows = self.notes if entity_set == "annotations" else self.mime_attachments
        body = rows[row_id].get("documentbody" if entity_set == "annotations" else "body")
        return None if body is None else base64.b64decode(body)

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    def table(self, name: str, entity: str, key: str, **columns: Column) -> None:
        self.tables[name] = Table(entity, key, {key: Column(max_length=100), **columns})
        self.rows.setdefault(name, {})

    def fail_next(self, status: int, count: int = 1, retry_after: int | None = None) -> None:
        for _ in range(count):
            self.scripted.append(Scripted(status, retry_after))

    def hold_next(self) -> Held:
        held = Held()
        self.held.append(held)
        return held

    def batch_count(self) -> int:
        return sum(1 for method, path, _ in self.requests if method == "POST" and path.endswith("$batch"))

    def reset(self) -> None:
        with self.lock:
            for rows in self.rows.values():
                rows.clear()
            self.upserts.clear()
            self.requests.clear()
            self.batch_headers.clear()
            self.scripted.clear()
            self.held.clear()
            self.notes.clear()
            self.mime_attachments.clear()
            self.downloads.clear()
            self.patches.clear()
        self.before_patch = None
        self.op_seconds, self.dop_hint, self.most_in_flight = 0.0, 4, 0


def odata_error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


@dataclass
class _Outcome:
    content_id: str | None
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None

    def part(self) -> str:
        lines = ["Content-Type: application/http", "Content-Transfer-Encoding: binary"]
        if self.content_id is not None:
            lines.append(f"Content-ID: {self.content_id}")
        reason = {204: "No Content", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}
        lines += ["", f"HTTP/1.1 {self.status} {reason.get(self.status, 'Error')}", "OData-Version: 4.0"]
        lines += [f"{name}: {value}" for name, value in self.headers.items()]
        if self.body is not None:
            lines += ["Content-Type: application/json; odata.metadata=minimal", "", json.dumps(self.body)]
        else:
            lines += ["", ""]
        return "\r\n".join(lines)


class _DataverseHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    @property
    def org(self) -> FakeDataverse:
        return self.server.org  # type: ignore[attr-defined]

    def _answer(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.org.requests.append((self.command, urlsplit(self.path).path, status))
        self.send_response(status)
        for name, value in {"OData-Version": "4.0", "x-ms-dop-hint": str(self.org.dop_hint), **(headers or {})}.items():
            self.send_header(name, value)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        self._answer(status, json.dumps(body).encode(), "application/json; odata.metadata=minimal", headers)

    def _client(self) -> str | None:
        """The application the token is for, when it is valid for this organisation; else answered 401."""
        authorization = self.headers.get("authorization", "")
        token = self.org.entra.valid(authorization.removeprefix("Bearer "), self.org.url.rstrip("/"))
        if not authorization.startswith("Bearer ") or token is None:
            self._answer(
                401, b"", "text/plain", {"WWW-Authenticate": f'Bearer authorization_uri="{self.org.entra.url}"'}
            )
            return None
        return token.client_id

    def _user(self) -> str | None:
        client = self._client()
        if client is None:
            return None
        if client not in self.org.users:
            self._json(403, odata_error("0x80072560", "The user is not a member of the organization."))
            return None
        return client

    def do_GET(self) -> None:
        if urlsplit(self.path).path != API + "WhoAmI":
            if self._user() is not None and not self._scripted_answer():
                self._files_get()
            return
        client = self._user()
        if client is None:
            return
        user = str(uuid.uuid5(uuid.NAMESPACE_URL, self.org.url + client))
        organization = str(uuid.uuid5(uuid.NAMESPACE_URL, self.org.url))
        self._json(200, {"BusinessUnitId": str(uuid.uuid4()), "UserId": user, "OrganizationId": organization})

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length)
        action = urlsplit(self.path).path.removeprefix(API)
        if action in FILE_ACTIONS:
            if self._user() is not None and not self._scripted_answer():
                self._file_action(action, json.loads(raw or b"{}"))
            return
        if urlsplit(self.path).path != API + "$batch":
            self._json(404, odata_error("0x8006088a", "Resource not found for the segment."))
            return
        if self._user() is None:
            return
        with self.org.lock:
            scripted = self.org.scripted.popleft() if self.org.scripted else None
            held = self.org.held.popleft() if self.org.held else None
            self.org.batch_headers.append({k.lower(): v for k, v in self.headers.items()})
        if scripted is not None:
            headers = {"Retry-After": str(scripted.retry_after)} if scripted.retry_after is not None else {}
            message = "Number of requests exceeded the limit of 6000 over time window of 300 seconds."
            code = "0x80072322" if scripted.status == 429 else "0x80040216"
            self._json(scripted.status, odata_error(code, message), headers)
            return
        with self.org.lock:
            self.org.in_flight += 1
            self.org.most_in_flight = max(self.org.most_in_flight, self.org.in_flight)
        try:
            status, body, boundary = self._batch(raw)
        finally:
            with self.org.lock:
                self.org.in_flight -= 1
        if held is not None:
            held.committed.set()
            held.release.wait(120)
        self._answer(status, body, f"multipart/mixed; boundary={boundary}")

    def do_PATCH(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length)
        if self._user() is None or self._scripted_answer():
            return
        found = ROW.match(urlsplit(self.path).path)
        if found is None:
            self._json(405, odata_error("0x80060888", "Only rows of the file tables here."))
            return
        entity_set, row_id = found.group(1), found.group(2)
        values = json.loads(raw)
        if self.org.before_patch is not None and self.org.before_patch(entity_set, row_id, values) is False:
            self._json(503, odata_error("0x80040216", "Scripted: not applied."))  # a change that never arrived
            return
        with self.org.lock:
            rows = self.org.notes if entity_set == "annotations" else self.org.mime_attachments
            row = rows.get(row_id)
            if row is None:
                self._json(404, odata_error("0x80040217", f"{entity_set} With Id = {row_id} Does Not Exist"))
                return
            match = self.headers.get("if-match")
            if match not in (None, "*") and match != _etag(row):
                self._json(412, odata_error("0x80060882", "The version of the existing record doesn't match."))
                return
            # The note table takes no column of one's own (CanCreateAttributes is false): its own writable ones only.
            allowed = NOTE_COLUMNS if entity_set == "annotations" else ATTACHMENT_COLUMNS
            unknown = [column for column in values if column not in allowed]
            if unknown:
                entity = "annotation" if entity_set == "annotations" else "activitymimeattachment"
                message = f"Invalid property '{unknown[0]}' was found in entity 'Microsoft.Dynamics.CRM.{entity}'."
                self._json(400, odata_error("0x80060891", message))
                return
            row.update(values)
            body_column = "documentbody" if entity_set == "annotations" else "body"
            if body_column in values:
                body = values[body_column]
                row["filesize"] = 0 if body is None else len(base64.b64decode(body))
            row["versionnumber"] = self.org._next_version()
            self.org.patches.append((entity_set, row_id, values))
        self._answer(204, b"", "text/plain")

    def _scripted_answer(self) -> bool:
        """A scripted failure for this request, if one is next: answered, and True."""
        with self.org.lock:
            scripted = self.org.scripted.popleft() if self.org.scripted else None
        if scripted is None:
            return False
        headers = {"Retry-After": str(scripted.retry_after)} if scripted.retry_after is not None else {}
        code = "0x80072322" if scripted.status == 429 else "0x80040216"
        self._json(scripted.status, odata_error(code, "Number of requests exceeded the limit."), headers)
        return True

    def _files_get(self) -> None:
        url = urlsplit(self.path)
        found = ROW.match(url.path)
        if found is not None:
            entity_set, row_id = found.group(1), found.group(2)
            with self.org.lock:
                rows = self.org.notes if entity_set == "annotations" else self.org.mime_attachments
                row = rows.get(row_id)
                shown = None if row is None else _shown(row, parse_qs(url.query).get("$select", [""])[0])
            if shown is None:
                self._json(404, odata_error("0x80040217", f"{entity_set} With Id = {row_id} Does Not Exist"))
            else:
                self._json(200, shown)
            return
        entity_set = url.path.removeprefix(API)
        if entity_set not in ("annotations", "activitymimeattachments"):
            self._json(404, odata_error("0x8006088a", "Resource not found for the segment."))
            return
        query = {name: values[0] for name, values in parse_qs(url.query).items()}
        if query.get("$orderby") != "versionnumber asc":
            self._json(400, odata_error("0x80060888", "The fake orders by versionnumber only."))
            return
        page_size = 5000
        prefer = re.search(r"odata\.maxpagesize=([0-9]+)", self.headers.get("prefer", ""))
        if prefer:
            page_size = min(page_size, int(prefer.group(1)))
        after = int(query.get("$skiptoken", "0"))
        with self.org.lock:
            rows = self.org.notes if entity_set == "annotations" else self.org.mime_attachments
            matching = sorted(
                (row for row in rows.values() if row["versionnumber"] > after and _matches(row, query["$filter"])),
                key=lambda row: row["versionnumber"],
            )
            page = [_shown(row, query.get("$select", "")) for row in matching[:page_size]]
        body: dict[str, Any] = {"@odata.context": f"{self.org.url}api/data/v9.2/$metadata#{entity_set}", "value": page}
        headers = {"Preference-Applied": f"odata.maxpagesize={page_size}"} if prefer else {}
        if len(matching) > page_size:
            rest = {name: value for name, value in query.items() if name != "$skiptoken"}
            rest["$skiptoken"] = str(page[-1]["versionnumber"])
            body["@odata.nextLink"] = f"{self.org.url}api/data/v9.2/{entity_set}?" + urlencode(rest, quote_via=quote)
        self._json(200, body, headers)

    def _file_action(self, action: str, body: dict[str, Any]) -> None:
        if action == "DownloadBlock":
            with self.org.lock:
                data = self.org.downloads.get(str(body.get("FileContinuationToken")))
            offset, length = int(body.get("Offset", -1)), int(body.get("BlockLength", 0))
            if data is None or offset < 0 or length <= 0 or length > BLOCK_MAX or offset + length > len(data):
                self._json(400, odata_error("0x80090001", "Invalid block range or token."))
                return
            self._json(200, {"Data": base64.b64encode(data[offset : offset + length]).decode()})
            return
        target = body.get("Target") or {}
        notes = action == "InitializeAnnotationBlocksDownload"
        row_id = str(target.get("annotationid" if notes else "activitymimeattachmentid"))
        with self.org.lock:
            rows = self.org.notes if notes else self.org.mime_attachments
            row = rows.get(row_id)
            encoded = None if row is None else row.get("documentbody" if notes else "body")
        if row is None or encoded is None:
            self._json(404, odata_error("0x80040217", "No file to download."))
            return
        token = secrets.token_urlsafe(24)
        data = base64.b64decode(encoded)
        with self.org.lock:
            self.org.downloads[token] = data
            while len(self.org.downloads) > 4:  # files being read now: a few at most, whatever a test moves
                del self.org.downloads[next(iter(self.org.downloads))]
        self._json(200, {"FileContinuationToken": token, "FileSizeInBytes": len(data), "FileName": row["filename"]})

    # -- the batch ---------------------------------------------------------------------------

    def _batch(self, raw: bytes) -> tuple[int, bytes, str]:
        message = email.message_from_bytes(
            b"Content-Type: " + self.headers.get("content-type", "").encode() + b"\r\n\r\n" + raw,
            policy=email.policy.HTTP,
        )
        continue_on_error = "odata.continue-on-error" in self.headers.get("prefer", "")
        boundary = f"batchresponse_{uuid.uuid4()}"
        parts: list[str] = []
        status = 200
        operations = 0
        for item in message.iter_parts():
            change_set = item.get_content_type() == "multipart/mixed"
            items = list(item.iter_parts()) if change_set else [item]
            operations += len(items)
            failed, answer = self._apply(items, change_set)
            if failed is not None and not continue_on_error:
                status, parts = failed.status, [failed.part()]
                break
            parts.append(answer)
        time.sleep(self.org.op_seconds * operations)
        body = "".join(f"--{boundary}\r\n{part}\r\n" for part in parts) + f"--{boundary}--\r\n"
        return status, body.encode(), boundary

    def _apply(self, items: list[email.message.Message], change_set: bool) -> tuple[_Outcome | None, str]:
        """All or nothing: the operations apply to a copy of the rows, which replaces them only when every one
        succeeded. The failed operation's answer alone, or every answer (in a change set response)."""
        outcomes = []
        with self.org.lock:
            staged = {name: dict(rows) for name, rows in self.org.rows.items()}
            keys = []
            for item in items:
                outcome, key = self._operation(item, staged)
                if outcome.status >= 400:
                    return outcome, outcome.part()
                outcomes.append(outcome)
                keys.append(key)
            self.org.rows = staged
            self.org.upserts.extend(keys)
        if not change_set:
            return None, outcomes[0].part()
        boundary = f"changesetresponse_{uuid.uuid4()}"
        inner = "".join(f"--{boundary}\r\n{outcome.part()}\r\n" for outcome in outcomes) + f"--{boundary}--"
        return None, f"Content-Type: multipart/mixed; boundary={boundary}\r\n\r\n{inner}"

    def _operation(
        self, item: email.message.Message, staged: dict[str, dict[str, dict[str, Any]]]
    ) -> tuple[_Outcome, tuple[str, str] | None]:
        content_id = item.get("Content-ID")
        payload = item.get_payload(decode=True) or b""
        request_line, _, rest = payload.partition(b"\r\n")
        _, _, body = rest.partition(b"\r\n\r\n")
        method, url, _ = request_line.decode().split(" ", 2)
        found = UPSERT.match(urlsplit(url).path)
        if method != "PATCH" or found is None:
            return _Outcome(
                content_id, 405, body=odata_error("0x80060888", "Only upserts by alternate key here.")
            ), None
        name, key, value = found.group(1), found.group(2), found.group(3).replace("''", "'")
        table = self.org.tables.get(name)
        if table is None:
            message = f"Resource not found for the segment '{name}'."
            return _Outcome(content_id, 404, body=odata_error("0x80060888", message)), None
        if key != table.key:
            message = f"The key attribute '{key}' is not defined as an alternate key for the '{table.entity}' entity."
            return _Outcome(content_id, 400, body=odata_error("0x80060892", message)), None
        values = json.loads(body)
        problem = _column_problem(table, values)
        if problem is not None:
            return _Outcome(content_id, 400, body=problem), None
        rows = staged[name]
        row = rows.get(value) or {"id": str(uuid.uuid4())}
        rows[value] = {**row, **values, key: value}
        entity_id = f"{self.org.url}api/data/v9.2/{name}({row['id']})"
        return _Outcome(content_id, 204, headers={"OData-EntityId": entity_id}), (name, value)


def _column_problem(table: Table, values: dict[str, Any]) -> dict[str, Any] | None:
    for column, value in values.items():
        spec = table.columns.get(column)
        if spec is None:
            message = f"Invalid property '{column}' was found in entity 'Microsoft.Dynamics.CRM.{table.entity}'."
            return odata_error("0x80060891", message)
        if spec.type == "int" and not (isinstance(value, int) and not isinstance(value, bool)):
            return odata_error("0x80048d19", f"Cannot convert the literal '{value}' to the expected type 'Edm.Int32'.")
        if spec.type == "string" and isinstance(value, str) and len(value) > spec.max_length:
            message = (
                f"A validation error occurred. The length of the '{column}' attribute of the '{table.entity}' entity "
                f"exceeded the maximum allowed length of '{spec.max_length}'."
            )
            return odata_error("0x80044331", message)
    return None


def _etag(row: dict[str, Any]) -> str:
    return f'W/"{row["versionnumber"]}"'


def _shown(row: dict[str, Any], select: str) -> dict[str, Any]:
    columns = [c for c in select.split(",") if c] or [c for c in row if c not in ("documentbody", "body")]
    return {"@odata.etag": _etag(row), **{column: row.get(column) for column in columns}}


def _literal(text: str) -> Any:
    if text == "null":
        return None
    if text in ("true", "false"):
        return text == "true"
    if text.startswith("'"):
        return text[1:-1]
    return int(text)


def _term(row: dict[str, Any], text: str) -> bool:
    text = text.strip()
    if text.startswith("(") and text.endswith(")"):
        return any(_term(row, part) for part in text[1:-1].split(" or "))
    found = _TERM.match(text)
    if found is None:
        raise ValueError(f"the fake does not read this filter term: {text}")
    column, operator, value = found.group(1), found.group(2), _literal(found.group(3))
    actual = row.get(column)
    if operator == "eq":
        return bool(actual == value)
    if operator == "ne":
        return bool(actual != value)
    return actual is not None and actual > value


def _matches(row: dict[str, Any], where: str) -> bool:
    return all(_term(row, part) for part in where.split(" and "))


def start_dataverse(ca: TrustedCA, entra: FakeEntra) -> tuple[FakeDataverse, ThreadingHTTPServer]:
    """An organisation on port 443 of an address of its own: organisation URLs carry no port."""
    for _ in range(20):
        host = str(
            ipaddress.IPv4Address(f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}")
        )
        with contextlib.suppress(OSError):
            server = serve(_DataverseHandler, host, 443, ca.server_context(host))
            break
    else:
        raise RuntimeError("no loopback address with a free port 443")
    org = FakeDataverse(f"https://{host}/", entra)
    entra.resources.add(org.url.rstrip("/"))
    server.org = org  # type: ignore[attr-defined]
    return org, server


@contextlib.contextmanager
def fakes(folder: Path, organisations: int = 1) -> Iterator[tuple[TrustedCA, FakeEntra, list[FakeDataverse]]]:
    ca = TrustedCA.create(folder)
    entra, entra_server = start_entra(ca)
    started = [start_dataverse(ca, entra) for _ in range(organisations)]
    try:
        yield ca, entra, [org for org, _ in started]
    finally:
        for _, server in started:
            server.shutdown()
            server.server_close()
        entra_server.shutdown()
        entra_server.server_close()
