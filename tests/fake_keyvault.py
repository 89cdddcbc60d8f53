"""A small HTTPS server that speaks the part of the Key Vault secrets REST API PackCloud uses.

No Key Vault emulator exists, so the real `azure-keyvault-secrets` client is tested against this: the bearer
challenge (401 with WWW-Authenticate, then the token), set, get, delete (soft delete: the deleted secret is
kept, disabled, as Key Vault does with purge protection on), and the deleted-secret read the delete poller makes.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import threading
import time
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
class FakeKeyVault:
    url: str
    ca_file: Path
    secrets: dict[str, str] = field(default_factory=dict)
    deleted: dict[str, str] = field(default_factory=dict)
    requests: list[tuple[str, str, int]] = field(default_factory=list)
    down: bool = False

    def client_options(self) -> dict[str, object]:
        # The SDK checks that a challenge's resource is a parent domain of the vault's host; 127.0.0.1 has none.
        return {"connection_verify": str(self.ca_file), "verify_challenge_resource": False, "retry_total": 0}


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

    def _route(self) -> tuple[str, str] | None:
        parts = [p for p in urlsplit(self.path).path.split("/") if p]
        if len(parts) >= 2 and parts[0] in ("secrets", "deletedsecrets"):
            return parts[0], parts[1]
        return None

    def _bundle(self, name: str, value: str | None, deleted: bool = False) -> dict:
        now = int(time.time())
        bundle = {
            "id": f"{self.vault.url}/secrets/{name}/0123456789abcdef0123456789abcdef",
            "attributes": {"enabled": not deleted, "created": now, "updated": now, "recoveryLevel": "Recoverable"},
            "contentType": "text/plain",
        }
        if value is not None:
            bundle["value"] = value
        if deleted:
            bundle |= {
                "recoveryId": f"{self.vault.url}/deletedsecrets/{name}",
                "deletedDate": now,
                "scheduledPurgeDate": now + 90 * 86400,
            }
        return bundle

    def _handle(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.vault.down:
            self._answer(503, {"error": {"code": "ServiceUnavailable", "message": "down"}})
            return
        if self.headers.get("authorization") != f"Bearer {TOKEN}":
            self._answer(
                401, {"error": {"code": "Unauthorized", "message": "no token"}}, {"WWW-Authenticate": CHALLENGE}
            )
            return
        route = self._route()
        if route is None:
            self._answer(400, {"error": {"code": "BadParameter", "message": "unknown path"}})
            return
        collection, name = route
        not_found = {"error": {"code": "SecretNotFound", "message": "A secret with this name was not found."}}
        if collection == "secrets" and self.command == "PUT":
            value = json.loads(raw)["value"]
            self.vault.secrets[name] = value
            self.vault.deleted.pop(name, None)
            self._answer(200, self._bundle(name, value))
        elif collection == "secrets" and self.command == "GET":
            if name in self.vault.secrets:
                self._answer(200, self._bundle(name, self.vault.secrets[name]))
            else:
                self._answer(404, not_found)
        elif collection == "secrets" and self.command == "DELETE":
            if name in self.vault.secrets:
                self.vault.deleted[name] = self.vault.secrets.pop(name)
                self._answer(200, self._bundle(name, None, deleted=True))
            else:
                self._answer(404, not_found)
        elif collection == "deletedsecrets" and self.command == "GET":
            if name in self.vault.deleted:
                self._answer(200, self._bundle(name, None, deleted=True))
            else:
                self._answer(404, not_found)
        else:
            self._answer(405, {"error": {"code": "BadParameter", "message": "method not allowed"}})

    do_GET = do_PUT = do_DELETE = _handle
