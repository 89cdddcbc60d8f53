"""A small HTTPS server that speaks the part of the Key Vault secrets REST API PackCloud uses, as Key Vault does
in a vault with soft delete and purge protection on (infra/modules/key-vault.bicep).

No Key Vault emulator exists, so the real `azure-keyvault-secrets` client is tested against this. As documented
for the Secrets REST API (Set Secret, Get Secret, Delete Secret, Get Deleted Secret(s), Recover Deleted Secret,
Purge Deleted Secret) and as the service answers:
- the bearer challenge: 401 with WWW-Authenticate, then the token;
- Set Secret writes a new version; Get Secret reads the latest (or a given) version;
- Delete Secret soft-deletes the secret with all its versions: it is then in the deleted collection, disabled,
  and its name cannot be reused: Set Secret answers 409 Conflict, inner error `ObjectIsDeletedButRecoverable`;
- deletion and recovery are asynchronous: for `lag` requests after Delete Secret, Get Deleted Secret answers 404
  and Set Secret 409 `ObjectIsBeingDeleted`; after Recover Deleted Secret, Get Secret answers 404 and Set Secret
  409 `ObjectIsBeingRecovered` (counted in requests, not time, so that tests do not depend on timing);
- Recover Deleted Secret brings back every version; Purge Deleted Secret is refused with 403 Forbidden while
  purge protection is on (the vault then purges only at the end of its retention), else 204;
- Get Deleted Secrets lists the soft-deleted secrets.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from azure.core.credentials import AccessToken
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

TOKEN = "fake-vault-token"
SCOPE = "https://vault.azure.net/.default"
RECOVERY_LEVEL = "Recoverable"  # soft delete with purge protection
RETENTION_DAYS = 90
NOT_FOUND = {"error": {"code": "SecretNotFound", "message": "A secret with this name was not found."}}
PURGE_REFUSED = (
    'Operation "purge" is not allowed because purge protection is enabled for this vault. Key Vault service will '
    "automatically purge it after the retention period has passed."
)
CHALLENGE = (
    'Bearer authorization="https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000", '
    'resource="https://vault.azure.net"'
)


class FakeCredential:
    """The token the fake accepts; production uses DefaultAzureCredential (the app's managed identity)."""

    def __init__(self) -> None:
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken(TOKEN, int(time.time()) + 3600)


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake-keyvault")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "vault.pem", folder / "vault.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@dataclass
class Pending:
    """An asynchronous operation still under way, for so many more requests that touch its secret."""

    kind: str  # "delete" or "recover"
    left: int


@dataclass
class FakeKeyVault:
    url: str
    ca_file: Path
    secrets: dict[str, str] = field(default_factory=dict)  # active secrets: the latest value
    deleted: dict[str, str] = field(default_factory=dict)  # soft-deleted secrets: the latest value
    versions: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # (version, value), oldest first
    pending: dict[str, Pending] = field(default_factory=dict)
    requests: list[tuple[str, str, int]] = field(default_factory=list)
    down: bool = False
    purge_protection: bool = True
    lag: int = 2  # requests during which a deletion or recovery is still in progress
    puts_left: int | None = None  # when set: writes after this many more answer 503 (reads, deletes still work)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def client_options(self) -> dict[str, object]:
        # The SDK checks that a challenge's resource is a parent domain of the vault's host; 127.0.0.1 has none.
        return {"connection_verify": str(self.ca_file), "verify_challenge_resource": False, "retry_total": 0}

    def reset(self) -> None:
        for collection in (self.secrets, self.deleted, self.versions, self.pending):
            collection.clear()
        self.requests.clear()
        self.down, self.purge_protection, self.lag, self.puts_left = False, True, 2, None

    def start(self, name: str, kind: str) -> None:
        if self.lag > 0:
            self.pending[name] = Pending(kind, self.lag)

    def in_progress(self, name: str, kind: str) -> bool:
        """Whether the operation of this kind on the secret is still under way; each question counts."""
        pending = self.pending.get(name)
        if pending is None or pending.kind != kind:
            return False
        pending.left -= 1
        if pending.left <= 0:
            del self.pending[name]
        return True


def start_fake_keyvault(folder: Path) -> tuple[FakeKeyVault, ThreadingHTTPServer]:
    cert_path, key_path = self_signed_certificate(folder)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    vault = FakeKeyVault(f"https://127.0.0.1:{server.server_address[1]}", cert_path)
    server.vault = vault  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return vault, server


def serving_fake_keyvault(folder: Path) -> Iterator[FakeKeyVault]:
    """The fake for the life of a fixture: `yield from` it."""
    vault, server = start_fake_keyvault(folder)
    yield vault
    server.shutdown()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # the tests read `requests`, not stderr
        pass

    @property
    def vault(self) -> FakeKeyVault:
        return self.server.vault  # type: ignore[attr-defined]

    def _answer(self, status: int, body: dict | None = None, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        self.vault.requests.append((self.command, urlsplit(self.path).path, status))
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("content-type", "application/json; charset=utf-8")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _parts(self) -> list[str]:
        return [p for p in urlsplit(self.path).path.split("/") if p]

    def _bundle(self, name: str, version: str, value: str | None, deleted: bool = False) -> dict:
        now = int(time.time())
        bundle = {
            "id": f"{self.vault.url}/secrets/{name}/{version}",
            "attributes": {"enabled": not deleted, "created": now, "updated": now, "recoveryLevel": RECOVERY_LEVEL},
            "contentType": "text/plain",
        }
        if value is not None:
            bundle["value"] = value
        if deleted:
            bundle |= {
                "recoveryId": f"{self.vault.url}/deletedsecrets/{name}",
                "deletedDate": now,
                "scheduledPurgeDate": now + RETENTION_DAYS * 86400,
            }
        return bundle

    def _latest(self, name: str) -> tuple[str, str]:
        return self.vault.versions[name][-1]

    def _handle(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        refuse_put = self.command == "PUT" and self.vault.puts_left is not None and self.vault.puts_left <= 0
        if self.vault.down or refuse_put:
            self._answer(503, {"error": {"code": "ServiceUnavailable", "message": "down"}})
            return
        if self.headers.get("authorization") != f"Bearer {TOKEN}":
            self._answer(
                401, {"error": {"code": "Unauthorized", "message": "no token"}}, {"WWW-Authenticate": CHALLENGE}
            )
            return
        parts = self._parts()
        route = (self.command, parts[0] if parts else "", len(parts), parts[-1] if len(parts) == 3 else "")
        handler = {
            ("PUT", "secrets", 2, ""): self._set,
            ("GET", "secrets", 2, ""): self._get,
            ("DELETE", "secrets", 2, ""): self._delete,
            ("GET", "deletedsecrets", 1, ""): self._list_deleted,
            ("GET", "deletedsecrets", 2, ""): self._get_deleted,
            ("DELETE", "deletedsecrets", 2, ""): self._purge,
            ("POST", "deletedsecrets", 3, "recover"): self._recover,
        }.get(route)
        if handler is None and self.command == "GET" and len(parts) == 3 and parts[0] == "secrets":
            handler = self._get
        if handler is None:
            self._answer(405, {"error": {"code": "BadParameter", "message": "method not allowed"}})
            return
        with self.vault.lock:
            handler(parts[1] if len(parts) > 1 else "", raw)

    def _set(self, name: str, raw: bytes) -> None:
        vault = self.vault
        if vault.in_progress(name, "delete"):
            self._answer(409, conflict(f"Secret {name} is currently being deleted.", "ObjectIsBeingDeleted"))
        elif vault.in_progress(name, "recover"):
            message = f"Secret {name} is currently being recovered and cannot be re-created; retry later."
            self._answer(409, conflict(message, "ObjectIsBeingRecovered"))
        elif name in vault.deleted:
            message = (
                f"Secret {name} is currently in a deleted but recoverable state, and its name cannot be reused; "
                "in this state, the secret can only be recovered or purged."
            )
            self._answer(409, conflict(message, "ObjectIsDeletedButRecoverable"))
        else:
            value = json.loads(raw)["value"]
            if vault.puts_left is not None:
                vault.puts_left -= 1
            version = uuid.uuid4().hex
            vault.versions.setdefault(name, []).append((version, value))
            vault.secrets[name] = value
            self._answer(200, self._bundle(name, version, value))

    def _get(self, name: str, raw: bytes) -> None:
        vault = self.vault
        if name not in vault.secrets or vault.in_progress(name, "recover"):
            self._answer(404, NOT_FOUND)
            return
        wanted = self._parts()[2] if len(self._parts()) == 3 else None
        found = [(v, value) for v, value in vault.versions[name] if wanted in (None, v)]
        if not found:
            self._answer(404, NOT_FOUND)
            return
        version, value = found[-1]
        self._answer(200, self._bundle(name, version, value))

    def _delete(self, name: str, raw: bytes) -> None:
        vault = self.vault
        if name not in vault.secrets:
            self._answer(404, NOT_FOUND)
            return
        vault.deleted[name] = vault.secrets.pop(name)
        vault.start(name, "delete")
        self._answer(200, self._bundle(name, self._latest(name)[0], None, deleted=True))

    def _get_deleted(self, name: str, raw: bytes) -> None:
        if name not in self.vault.deleted or self.vault.in_progress(name, "delete"):
            self._answer(404, deleted_not_found(name))
            return
        self._answer(200, self._bundle(name, self._latest(name)[0], None, deleted=True))

    def _list_deleted(self, name: str, raw: bytes) -> None:
        items = [self._bundle(n, self._latest(n)[0], None, deleted=True) for n in sorted(self.vault.deleted)]
        self._answer(200, {"value": items, "nextLink": None})

    def _recover(self, name: str, raw: bytes) -> None:
        vault = self.vault
        if vault.in_progress(name, "delete"):
            self._answer(409, conflict(f"Secret {name} is currently being deleted.", "ObjectIsBeingDeleted"))
        elif name not in vault.deleted:
            self._answer(404, deleted_not_found(name))
        else:
            vault.secrets[name] = vault.deleted.pop(name)
            vault.start(name, "recover")
            self._answer(200, self._bundle(name, self._latest(name)[0], None))

    def _purge(self, name: str, raw: bytes) -> None:
        vault = self.vault
        if name not in vault.deleted:
            self._answer(404, deleted_not_found(name))
        elif vault.purge_protection:
            self._answer(403, {"error": {"code": "Forbidden", "message": PURGE_REFUSED}})
        else:
            del vault.deleted[name]
            del vault.versions[name]
            self._answer(204)

    do_GET = do_PUT = do_DELETE = do_POST = _handle


def conflict(message: str, reason: str) -> dict:
    return {"error": {"code": "Conflict", "message": message, "innererror": {"code": reason}}}


def deleted_not_found(name: str) -> dict:
    return {"error": {"code": "SecretNotFound", "message": f"Deleted Secret not found: {name}"}}
