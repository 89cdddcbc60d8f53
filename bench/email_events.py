"""PowerEmail delivery events: a signed 1,000-event SendGrid batch verified and stored through the local host, against
raw SDK uploads of the same records (bytes and tags), 1,000 at a time with the same 16 writers, in the same run.

Each stored event is two writes: its deduplication marker (created only if absent), then its record. A second
baseline uploads those pairs raw: its ratio shows what PackCloud's own code costs apart from the second write. The
verification cost per event is measured in process: the `sendgrid` library's ECDSA check of the whole batch
(one signature per batch) and the checks around it, divided by the events.

Target: batch rate >= 0.6 x the raw upload rate of the same records.
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from azure.storage.blob import BlobServiceClient

from bench.common import in_process_services, local_stack, write_results
from devenv.sendgrid_events import WebhookKey, batch, sendgrid_event
from shared.core.clock import SystemClock
from shared.emailevents.intake import WRITERS
from shared.emailevents.webhook import VerificationKeys, signed_request, verify
from shared.storage.blobs import CountingTransport
from shared.storage.tenant_credentials import TenantRef

EVENTS = 1000
ROUNDS = 3
VERIFY_ROUNDS = 200
DATASET = {
    "capability": "emailevent",
    "purpose": "Follow the delivery of e-mails sent from Dynamics 365",
    "legal_basis": "legitimate_interest",
    "retention_days": 7,
    "controller": {"name": "Contoso Ltd", "email": "privacy@contoso.example"},
    "subject_field": "email",
    "fields": [
        {"name": name, "type": kind}
        for name, kind in (
            ("event", "string"),
            ("email", "email"),
            ("occurred_at", "datetime"),
            ("activity_id", "string"),
            ("reason", "string"),
            ("url", "url"),
            ("ip", "ip"),
            ("user_agent", "string"),
        )
    ],
}


def one_batch() -> list[dict]:
    return [sendgrid_event(n, kind="click" if n % 4 == 0 else "delivered") for n in range(EVENTS)]


def record_bytes(event: dict) -> bytes:
    """A record as the capture store writes it for this event."""
    record = {
        "id": "20261127T100000000000Z-0123456789abcdef",
        "tenant": "bench",
        "dataset": "mail",
        "captured_at": "2026-11-27T10:00:00Z",
        "expires_at": "2026-12-04T10:00:00Z",
        "fields": {
            "event": event["event"],
            "email": event["email"],
            "occurred_at": datetime.fromtimestamp(event["timestamp"], UTC).isoformat().replace("+00:00", "Z"),
            "activity_id": event["activity_id"],
            "ip": "203.0.113.0",
            "user_agent": event["useragent"],
            **({"url": "https://www.contoso.example/offer"} if "url" in event else {}),
        },
        "dropped_fields": 5,
        "meta": {},
        "tenant_generation": "0" * 32,
        "dataset_generation": "0" * 32,
        "declaration_revision": 1,
    }
    return json.dumps(record).encode()


def raw_batch_seconds(connection_string: str, events: list[dict], with_marker: bool) -> float:
    """The same records uploaded by the raw SDK, WRITERS at a time; `with_marker` adds each event's marker first."""
    service = BlobServiceClient.from_connection_string(connection_string, transport=CountingTransport())
    container = service.get_container_client("raw-" + uuid.uuid4().hex[:8])
    container.create_container()
    tags = {"t": "bench", "d": "mail", "cap": "20261127T100000Z", "exp": "20261204T100000Z", "sub": "0" * 40}
    bodies = [record_bytes(event) for event in events]
    marker = json.dumps({"record": "20261127T100000000000Z-0123456789abcdef", "at": "2026-11-27T10:00:00+00:00"})

    def upload(body: bytes) -> None:
        if with_marker:
            container.upload_blob(f"sgev/{uuid.uuid4().hex}.json", marker, tags=tags, overwrite=False)
        container.upload_blob(f"raw/{uuid.uuid4().hex}.json", body, tags=tags, overwrite=False)

    with ThreadPoolExecutor(WRITERS) as pool:
        started = time.perf_counter()
        list(pool.map(upload, bodies))
        return time.perf_counter() - started


def verification_cost_us(key: WebhookKey, body: bytes) -> float:
    """Microseconds per event of verifying a 1,000-event batch: headers, timestamp, the library's ECDSA check."""

    class Keys:
        def get(self, tenant: TenantRef) -> str:
            return key.public_base64

    @dataclass(frozen=True)
    class Tenant:
        id: str = "bench"
        generation: str = "0" * 32

    keys, clock, tenant = VerificationKeys(Keys()), SystemClock(), Tenant()
    headers = {k.lower(): v for k, v in key.headers(body).items()}
    verify(signed_request(headers.get, body), tenant, keys, clock)  # the key parsed and cached, as in a host
    started = time.perf_counter()
    for _ in range(VERIFY_ROUNDS):
        verify(signed_request(headers.get, body), tenant, keys, clock)
    return (time.perf_counter() - started) / VERIFY_ROUNDS / EVENTS * 1e6


def requests_per_event(env: dict[str, str], key: WebhookKey) -> float:
    services = in_process_services(env, local_secrets_path=env["PACKCLOUD_LOCAL_SECRETS_PATH"])
    body = batch(one_batch())
    headers = {k.lower(): v for k, v in key.headers(body).items()}
    services.email_events.receive("bench", "mail", headers.get, body)  # registry and key read once
    body = batch(one_batch())
    headers = {k.lower(): v for k, v in key.headers(body).items()}
    before = services.storage.transport.sent
    services.email_events.receive("bench", "mail", headers.get, body)
    return (services.storage.transport.sent - before) / EVENTS


def main() -> dict[str, float]:
    key = WebhookKey.generate()
    with tempfile.TemporaryDirectory() as folder:
        secrets = str(Path(folder) / "secrets.json")
        with local_stack({"PACKCLOUD_LOCAL_SECRETS_PATH": secrets}) as stack:
            with httpx.Client(base_url=stack.api, headers={"x-functions-key": stack.function_key}, timeout=60) as m:
                m.put("/manage/tenants/bench", json={}).raise_for_status()
                m.put("/manage/tenants/bench/datasets/mail", json=DATASET).raise_for_status()
                m.put("/manage/tenants/bench/email-events/key", json={"verification_key": key.public_base64})
            raw, pairs, batches = [], [], []
            with httpx.Client(base_url=stack.api, timeout=120) as sendgrid:

                def post(events: list[dict]) -> float:
                    body = batch(events)
                    started = time.perf_counter()
                    answer = sendgrid.post("/email/events/bench/mail", content=body, headers=key.headers(body))
                    elapsed = time.perf_counter() - started
                    if answer.status_code != 200 or answer.json()["stored"] != EVENTS:
                        raise RuntimeError(f"email events answered {answer.status_code}")
                    return elapsed

                post(one_batch())  # warm-up: registry, key, connections
                for _ in range(ROUNDS):  # interleaved, so all see the same machine load
                    events = one_batch()
                    raw.append(raw_batch_seconds(stack.azurite.connection_string, events, with_marker=False))
                    pairs.append(raw_batch_seconds(stack.azurite.connection_string, events, with_marker=True))
                    batches.append(post(events))
            per_event_requests = requests_per_event(stack.env, key)
    body = batch(one_batch())
    verify_us = verification_cost_us(key, body)
    best_raw, best_pairs, best = min(raw), min(pairs), min(batches)
    result = {
        "batch_s": round(best, 3),
        "raw_s": round(best_raw, 3),
        "raw_pairs_s": round(best_pairs, 3),
        "rate": round(EVENTS / best, 1),
        "raw_rate": round(EVENTS / best_raw, 1),
        "ratio": round(best_raw / best, 3),
        "pair_ratio": round(best_pairs / best, 3),
        "verify_us_per_event": round(verify_us, 2),
        "batch_bytes": len(body),
        "requests_per_event": per_event_requests,
        "events": EVENTS,
        "writers": WRITERS,
    }
    write_results("email_events", result)
    print(
        f"email_events: a signed {EVENTS}-event batch verified and stored in {best:.2f} s ({result['rate']:.0f} "
        f"events/s) vs {best_raw:.2f} s raw uploads of the same records ({result['raw_rate']:.0f}/s) -> ratio "
        f"{result['ratio']} (target >= 0.6); {result['pair_ratio']} of raw marker+record pairs ({best_pairs:.2f} s); "
        f"verification {verify_us:.2f} us per event (one ECDSA check per {len(body):,}-byte batch); "
        f"{per_event_requests} storage requests per event"
    )
    return result


if __name__ == "__main__":
    main()
