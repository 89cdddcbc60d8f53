"""Tracked-link redirects per second through the local host against raw SDK uploads of the same record, same Azurite.

Each redirect reads the link (one blob) and stores the visit (one record); the raw baseline uploads the same
record bytes with the same blob index tags: the Put Blob request the capture store sends, without PackCloud
(nor the link's read) around it.

Target: redirect rate >= 0.6 x raw rate; storage requests per followed link reported (the read and the write).
"""

from __future__ import annotations

import json

import httpx

from bench.common import (
    BROWSER_UA,
    Tenant,
    against_raw,
    in_process_services,
    raw_upload_rate,
    run_concurrently,
    stack_with_dataset,
    upload_record,
    write_results,
)
from shared.links.tracked import Visit
from tests.factories import ASSETS_ORIGIN, CONTACT, LINKS

CLIENTS = 16
PER_CLIENT = 150
ROUNDS = 3
TARGET = f"{ASSETS_ORIGIN}/brochure.pdf"


def sample_record_bytes(link: str) -> bytes:
    record = {
        "id": "20261123T100000000000Z-0123456789abcdef",
        "tenant": "bench",
        "dataset": "assets",
        "captured_at": "2026-11-23T10:00:00Z",
        "expires_at": "2026-12-03T10:00:00Z",
        "fields": {
            "link_id": link,
            "contact_id": CONTACT,
            "visited_at": "2026-11-23T10:00:00Z",
            "target_url": TARGET,
            "ip": "127.0.0.0",
            "user_agent": BROWSER_UA,
        },
        "dropped_fields": 0,
        "meta": {},
    }
    return json.dumps(record).encode()


def sample_tags() -> dict[str, str]:
    # The same index tags the capture store writes for a visit: the raw baseline is the very same Put Blob request.
    return {"t": "bench", "d": "assets", "cap": "20261123T100000Z", "exp": "20261203T100000Z", "sub": "0" * 40}


def raw_uploads(connection_string: str, link: str) -> float:
    upload = upload_record(sample_record_bytes(link), sample_tags())
    return raw_upload_rate(connection_string, upload, CLIENTS, PER_CLIENT)


def redirects(api: str, tenant: str, links: list[str]):
    chosen = iter(links * CLIENTS)

    def worker():
        client = httpx.Client(base_url=api, headers={"user-agent": BROWSER_UA}, follow_redirects=False)
        path = f"/go/{tenant}/{next(chosen)}"  # one contact's link per client

        def follow():
            answer = client.get(path)
            if answer.status_code != 302 or answer.headers.get("location") != TARGET:
                raise RuntimeError(f"link answered {answer.status_code}")

        return follow

    return run_concurrently(worker, CLIENTS, PER_CLIENT)


def requests_per_redirect(env: dict[str, str], tenant: str, link: str) -> float:
    """The same code in process, counting the HTTP requests the SDK sends for one followed link."""
    services = in_process_services(env)
    services.registry.get_dataset(tenant, "assets")  # warm the cache, as a running instance has
    services.registry.get_tenant(tenant)
    services.links.open(tenant, link)  # and the link's, as an instance that served it recently has
    follows = 100
    before = services.storage.transport.sent
    for _ in range(follows):
        opened = services.links.open(tenant, link)
        assert opened is not None and services.links.record_visit(opened, Visit({"user-agent": BROWSER_UA}))
    return (services.storage.transport.sent - before) / follows


def tracked_links(api: str, tenant: Tenant) -> list[str]:
    """One link per client, each to the same target for another contact."""
    with httpx.Client(base_url=api, headers={"authorization": f"Bearer {tenant.api_key}"}, timeout=30) as client:
        return [
            client.post(f"/links/{tenant.id}/assets", json={"target_url": TARGET, "contact_id": f"{CONTACT}-{n}"})
            .raise_for_status()
            .json()["link"]
            for n in range(CLIENTS)
        ]


def main() -> dict[str, float]:
    with stack_with_dataset("assets", LINKS) as tenant:
        stack = tenant.stack
        links = tracked_links(stack.api, tenant)
        rates = against_raw(
            lambda: redirects(stack.api, tenant.id, links),
            lambda: raw_uploads(stack.azurite.connection_string, links[0]),
            ROUNDS,
        )
        requests = requests_per_redirect(stack.env, tenant.id, links[0])
    rate, raw_rate = rates["rate"], rates["raw_rate"]
    result = {**rates, "requests_per_redirect": requests, "clients": CLIENTS}
    write_results("links", result)
    print(
        f"links: {rate:.0f} redirects/s through the local host vs {raw_rate:.0f} raw SDK uploads/s "
        f"-> ratio {result['ratio']} (target >= 0.6); p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms; "
        f"{requests} storage requests per followed link"
    )
    return result


if __name__ == "__main__":
    main()
