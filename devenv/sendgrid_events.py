"""What SendGrid's signed Event Webhook sends, made locally for tests, benchmarks and the demo: a P-256 key pair
(the public half base64 DER, as SendGrid's mail settings show it), the signature headers over timestamp + body,
and event batches as SendGrid posts them."""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"


@dataclass(frozen=True)
class WebhookKey:
    private: ec.EllipticCurvePrivateKey

    @classmethod
    def generate(cls) -> WebhookKey:
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @property
    def public_base64(self) -> str:
        der = self.private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(der).decode()

    def headers(self, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        """The two headers SendGrid sends: ECDSA-SHA256 over the timestamp followed by the body, base64 DER."""
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        signature = self.private.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {SIGNATURE: base64.b64encode(signature).decode(), TIMESTAMP: stamp, "content-type": "application/json"}


def sendgrid_event(n: int, kind: str = "delivered", **changes: Any) -> dict[str, Any]:
    """One event as SendGrid posts it, with the keys it adds that no dataset declares."""
    event: dict[str, Any] = {
        "email": f"person{n}@example.com",
        "timestamp": int(time.time()) - 30,
        "smtp-id": f"<{uuid.uuid4().hex}@example.com>",
        "event": kind,
        "category": ["newsletter"],
        "sg_event_id": f"ev-{uuid.uuid4().hex}",
        "sg_message_id": f"{uuid.uuid4().hex}.filter0001",
        "activity_id": str(uuid.uuid4()),
        "ip": "203.0.113.77",
        "useragent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
        "tls": 1,
    }
    if kind == "click":
        event["url"] = "https://www.contoso.example/offer?email=person@example.com"
    if kind in ("bounce", "dropped", "deferred"):
        event["reason"] = "550 5.1.1 mailbox unavailable"
    event.update(changes)
    return event


def batch(events: list[dict[str, Any]]) -> bytes:
    return json.dumps(events).encode()
