"""A fake of Twilio's Programmable Messaging REST API, reached by the real `twilio` client as `api.twilio.com`.

The client is not told another URL: it is given an HTTPS proxy (`HTTPS_PROXY`, which `requests` under the
client honours) that tunnels `CONNECT api.twilio.com:443` to this fake, and the fake presents a certificate for
`api.twilio.com` from a test CA (trustme) that the client trusts through `REQUESTS_CA_BUNDLE`. So the client's
URL building, Basic auth, form encoding and TLS verification all run as in production. The proxy tunnels no other
host. Both listen on 127.0.0.37, an address of this fake's own.

`POST /2010-04-01/Accounts/{AccountSid}/Messages.json`: Basic auth with the Account SID and Auth Token, or an API
key SID and secret registered for the account (else 401, Twilio error 20003); `To` and `Body` and one of `From`
and `MessagingServiceSid` (else 400, 21604 / 21602 / 21603); then the next scripted answer (`script`: a 400 with a
Twilio error code, a 429, a 500, or HOLD: sent, answered late), or 201 with the message.
"""

from __future__ import annotations

import base64
import json
import secrets
import select
import socket
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import trustme

ADDRESS = "127.0.0.37"
HOST = "api.twilio.com"
MESSAGES = "/2010-04-01/Accounts/{}/Messages.json"
HOLD = 0  # script (HOLD, seconds): the message is sent, its answer comes that much later


def new_sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


@dataclass
class Sent:
    account: str
    user: str
    form: dict[str, str]


@dataclass
class FakeTwilio:
    proxy_url: str
    ca_bundle: Path
    accounts: dict[str, str] = field(default_factory=dict)  # Account SID -> Auth Token
    api_keys: dict[str, tuple[str, str]] = field(default_factory=dict)  # API key SID -> (Account SID, secret)
    script: deque[tuple[int, int | None]] = field(default_factory=deque)  # (status, Twilio error code)
    sent: list[Sent] = field(default_factory=list)
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def account(self) -> tuple[str, str]:
        sid, token = new_sid("AC"), secrets.token_hex(16)
        self.accounts[sid] = token
        return sid, token

    def api_key(self, account_sid: str) -> tuple[str, str]:
        sid, secret = new_sid("SK"), secrets.token_urlsafe(24)
        self.api_keys[sid] = (account_sid, secret)
        return sid, secret

    def authorised(self, account: str, header: str | None) -> str | None:
        if not header or not header.startswith("Basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return None
        if user == account and self.accounts.get(account) == password:
            return user
        if self.api_keys.get(user) == (account, password):
            return user
        return None


def _error(status: int, code: int, message: str) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


class _Handler(BaseHTTPRequestHandler):
    fake: FakeTwilio

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        fake = self.fake
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode()
        with fake.lock:
            fake.requests += 1
        parts = self.path.split("/")
        if len(parts) != 5 or parts[1] != "2010-04-01" or parts[2] != "Accounts" or parts[4] != "Messages.json":
            return self._answer(404, _error(404, 20404, "The requested resource was not found"))
        account = parts[3]
        user = fake.authorised(account, self.headers.get("Authorization"))
        if user is None:
            return self._answer(401, _error(401, 20003, "Authenticate"))
        if self.headers.get("Content-Type", "").split(";")[0] != "application/x-www-form-urlencoded":
            return self._answer(400, _error(400, 20001, "Unsupported content type"))
        form = {name: values[0] for name, values in parse_qs(raw, keep_blank_values=True).items()}
        if not form.get("To"):
            return self._answer(400, _error(400, 21604, "A 'To' phone number is required."))
        if not form.get("Body"):
            return self._answer(400, _error(400, 21602, "Message body is required."))
        if not (form.get("From") or form.get("MessagingServiceSid")):
            return self._answer(400, _error(400, 21603, "A 'From' phone number is required."))
        with fake.lock:
            scripted = fake.script.popleft() if fake.script else None
        if scripted is not None and scripted[0] == HOLD:
            time.sleep(scripted[1] or 0)  # takes the message, answers late
            scripted = None
        if scripted is not None:
            status, code = scripted
            if status == 400:
                # Twilio's real message quotes the number: PackCloud must pass on the code only.
                return self._answer(400, _error(400, code or 21211, f"The 'To' number {form['To']} is not valid."))
            if status == 429:
                return self._answer(429, _error(429, code or 20429, "Too Many Requests"))
            return self._answer(status, _error(status, code or 20500, "Internal Server Error"))
        with fake.lock:
            fake.sent.append(Sent(account, user, form))
        message = {
            "sid": new_sid("SM"),
            "account_sid": account,
            "to": form["To"],
            "from": form.get("From"),
            "messaging_service_sid": form.get("MessagingServiceSid"),
            "body": form["Body"],
            "status": "queued" if form.get("From") else "accepted",
            "num_segments": "1",
            "direction": "outbound-api",
            "api_version": "2010-04-01",
            "uri": f"{MESSAGES.format(account)[:-5]}/x.json",
        }
        return self._answer(201, message)


class _Tunnel(BaseHTTPRequestHandler):
    """An HTTPS proxy that tunnels CONNECT for api.twilio.com:443 to the fake, and nothing else."""

    target: tuple[str, int]

    def log_message(self, *args: Any) -> None:
        pass

    def do_CONNECT(self) -> None:
        if self.path != f"{HOST}:443":
            self.send_error(403)
            return
        upstream = socket.create_connection(self.target)
        self.send_response(200, "Connection established")
        self.end_headers()
        sockets = [self.connection, upstream]
        try:
            while True:
                readable, _, _ = select.select(sockets, [], [], 30)
                if not readable:
                    return
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (upstream if sock is self.connection else self.connection).sendall(data)
        finally:
            upstream.close()


def start_fake_twilio(folder: Path) -> tuple[FakeTwilio, list[ThreadingHTTPServer]]:
    ca = trustme.CA()
    bundle = folder / "twilio-ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert(HOST).configure_cert(context)
    api = ThreadingHTTPServer((ADDRESS, 0), type("Handler", (_Handler,), {}))
    api.daemon_threads = True
    api.socket = context.wrap_socket(api.socket, server_side=True)
    proxy = ThreadingHTTPServer((ADDRESS, 0), type("Tunnel", (_Tunnel,), {"target": api.server_address[:2]}))
    proxy.daemon_threads = True
    fake = FakeTwilio(f"http://{ADDRESS}:{proxy.server_address[1]}", bundle)
    api.RequestHandlerClass.fake = fake  # type: ignore[attr-defined]
    for server in (api, proxy):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    return fake, [api, proxy]


def client_env(fake: FakeTwilio) -> dict[str, str]:
    """What a process needs so that its `twilio` client reaches the fake: the proxy and the test CA."""
    return {
        "HTTPS_PROXY": fake.proxy_url,
        "https_proxy": fake.proxy_url,
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        "REQUESTS_CA_BUNDLE": str(fake.ca_bundle),
    }
