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
"""

from __future__ import annotations

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
from urllib.parse import parse_qs, urlsplit

import jwt
import trustme
from cryptography import x509

API = "/api/data/v9.2/"
UPSERT = re.compile(r"^/api/data/v9\.2/([a-z][a-z0-9_]*)\(([a-z][a-z0-9_]*)='((?:[^']|'')*)'\)$")


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
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

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
            self._json(404, odata_error("0x8006088a", "Resource not found for the segment."))
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
