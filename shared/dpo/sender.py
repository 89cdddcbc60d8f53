"""One signed POST of an event to a checked address, in the style of Stripe's webhooks.

`X-PackCloud-Timestamp` is the Unix time of the attempt; `X-PackCloud-Signature` is the hex HMAC-SHA256, keyed with
the webhook's secret (as UTF-8), of `timestamp + "." + body`. The receiver recomputes it over the raw body and
refuses old timestamps (docs/dpo-notifications.md).

The connection goes to the address shared/dpo/guard.py checked, never to a new lookup of the name, while TLS (SNI
and certificate verification) and the Host header use the URL's host name. Redirects are never followed: any
answer but a 2xx is a failed attempt. urllib3 directly, because requests resolves the name itself.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass

import urllib3
from requests.utils import DEFAULT_CA_BUNDLE_PATH
from urllib3.exceptions import HTTPError

from shared.dpo.guard import Endpoint

CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 10.0
ANSWER_READ_MAX = 4096  # what is read of an answer: only its status counts
USER_AGENT = "PackCloud-DPO-Webhook/1"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def default_ca_bundle() -> str:
    """The CA bundle requests would use (REQUESTS_CA_BUNDLE, else certifi's): one trust store for every client."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or str(DEFAULT_CA_BUNDLE_PATH)


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    status: int | None = None  # the receiver's HTTP status, when it answered
    error: str | None = None  # a code: http_<status>, tls, connect, timeout

    def public(self) -> dict[str, object]:
        return {"delivered": self.delivered, "status": self.status, "error": self.error}


def post_event(
    endpoint: Endpoint,
    body: bytes,
    headers: dict[str, str],
    secret: str,
    timestamp: int,
    *,
    ca_bundle: str | None = None,
) -> Outcome:
    host = endpoint.host_name
    default_port = endpoint.url.port is None
    pool = urllib3.HTTPSConnectionPool(
        endpoint.address,
        endpoint.port,
        timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT_S, read=READ_TIMEOUT_S),
        retries=False,
        cert_reqs="CERT_REQUIRED",
        ca_certs=ca_bundle or default_ca_bundle(),
        assert_hostname=host,
        server_hostname=host,
    )
    path = endpoint.url.rest or "/"
    if path.startswith("?"):
        path = "/" + path
    sent = {
        **headers,
        "Host": endpoint.url.host if default_port else f"{endpoint.url.host}:{endpoint.port}",
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-PackCloud-Timestamp": str(timestamp),
        "X-PackCloud-Signature": signature(secret, timestamp, body),
    }
    try:
        response = pool.urlopen(
            "POST", path, body=body, headers=sent, redirect=False, retries=False, preload_content=False
        )
        try:
            response.read(ANSWER_READ_MAX)
        finally:
            response.release_conn()
    except urllib3.exceptions.SSLError:
        return Outcome(False, error="tls")
    except (urllib3.exceptions.ConnectTimeoutError, urllib3.exceptions.ReadTimeoutError):
        return Outcome(False, error="timeout")
    except (HTTPError, OSError):
        return Outcome(False, error="connect")
    finally:
        pool.close()
    if 200 <= response.status < 300:
        return Outcome(True, response.status)
    return Outcome(False, response.status, f"http_{response.status}")
