"""Pixel hits per second through the local host against raw SDK uploads of the same bytes, same Azurite.

The raw baseline uploads the same record bytes with the same blob index tags: the same Put Blob request
the capture store sends, without PackCloud around it.

Target: pixel rate >= 0.6 x raw rate, and exactly one storage request per recorded hit.
"""

from __future__ import annotations

import json
import uuid

import httpx

from bench.common import (
    BROWSER_UA,
    against_raw,
    in_process_services,
    raw_upload_rate,
    run_concurrently,
    stack_with_dataset,
    upload_record,
    write_results,
)
from devenv.demo import demo_dataset
from shared.pixel.hits import Hit, record_hit

CLIENTS = 16
PER_CLIENT = 150
ROUNDS = 3
PAGE_ORIGIN = "https://www.contoso.example"
PAGE = PAGE_ORIGIN + "/pricing"


def sample_record_bytes() -> bytes:
    record = {
        "id": "20261123T100000000000Z-0123456789abcdef",
        "tenant": "bench",
        "dataset": "pricing",
        "captured_at": "2026-11-23T10:00:00Z",
        "expires_at": "2026-12-07T10:00:00Z",
        "fields": {"page_url": PAGE, "visitor": "0123456789abcdef0123456789abcdef", "ip": "127.0.0.0"},
        "dropped_fields": 0,
        "meta": {},
    }
    return json.dumps(record).encode()


def sample_tags() -> dict[str, str]:
    # The same index tags the capture store writes: the raw baseline is the very same Put Blob request.
    return {"t": "bench", "d": "pricing", "cap": "20261123T100000Z", "exp": "20261207T100000Z", "sub": "0" * 40}


def raw_uploads(connection_string: str) -> float:
    return raw_upload_rate(connection_string, upload_record(sample_record_bytes(), sample_tags()), CLIENTS, PER_CLIENT)


def pixel_hits(api: str, tenant: str):
    def worker():
        client = httpx.Client(base_url=api, headers={"user-agent": BROWSER_UA, "referer": PAGE_ORIGIN + "/"})
        params = {"page_url": PAGE, "visitor": uuid.uuid4().hex}

        def hit():
            answer = client.get(f"/px/{tenant}/pricing", params=params)
            if answer.status_code != 200:
                raise RuntimeError(f"pixel answered {answer.status_code}")

        return hit

    return run_concurrently(worker, CLIENTS, PER_CLIENT)


def writes_per_hit(env: dict[str, str], tenant: str) -> float:
    """The same recording code in process, counting the HTTP requests the SDK sends."""
    services = in_process_services(env)
    settings = services.settings
    services.registry.get_dataset(tenant, "pricing")  # warm the cache, as a running instance has
    services.registry.get_tenant(tenant)
    hits = 200
    before = services.storage.transport.sent
    headers = {"user-agent": BROWSER_UA, "referer": PAGE_ORIGIN + "/", "x-forwarded-for": "203.0.113.9"}
    recorded = sum(
        record_hit(services.capture, settings, Hit(tenant, "pricing", {"page_url": PAGE}, headers, 0))
        for _ in range(hits)
    )
    assert recorded == hits
    return (services.storage.transport.sent - before) / hits


def main() -> dict[str, float]:
    with stack_with_dataset("pricing", demo_dataset(PAGE_ORIGIN)) as tenant:
        stack = tenant.stack
        rates = against_raw(
            lambda: pixel_hits(stack.api, tenant.id), lambda: raw_uploads(stack.azurite.connection_string), ROUNDS
        )
        writes = writes_per_hit(stack.env, tenant.id)
    rate, raw_rate = rates["rate"], rates["raw_rate"]
    result = {**rates, "writes_per_hit": writes, "clients": CLIENTS}
    write_results("pixel", result)
    print(
        f"pixel: {rate:.0f} hits/s through the local host vs {raw_rate:.0f} raw SDK uploads/s "
        f"-> ratio {result['ratio']} (target >= 0.6); p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms; "
        f"{writes} storage requests per hit (target 1)"
    )
    return result


if __name__ == "__main__":
    main()
