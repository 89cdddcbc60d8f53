"""Members pushed per second through PackCloud against raw PUTs of the same bodies to the same fake Mailchimp.

Both sides use Mailchimp's cap of 10 simultaneous connections per API key: PackCloud by its own pool
(shared/mailchimp/client.py), the baseline by 10 threads with one httpx client. The fake answers each request
after 20 ms, standing for the network and Mailchimp's own work (an assumption; the run also gives the ratio with
none). Rounds alternate, so both see the same machine.

Target: PackCloud's members/s >= 0.8 x the raw PUTs' members/s.
"""

from __future__ import annotations

import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from bench.common import local_stack, write_results
from shared.mailchimp.client import subscriber_hash
from tests.integration.fake_mailchimp import start_mailchimp

API_KEY = "0123456789abcdef0123456789abcdef-us21"
LIST = "a1b2c3d4e5"
MEMBERS = 500
ROUNDS = 3
LATENCY_S = 0.02
DATASET: dict[str, Any] = {
    "capability": "mailchimp",
    "purpose": "Newsletter audience from the marketing list",
    "legal_basis": "consent",
    "retention_days": 1,
    "controller": {"name": "Contoso Ltd", "email": "privacy@contoso.example"},
    "fields": [{"name": "fname", "type": "string"}, {"name": "company", "type": "string"}],
    "mailchimp_audiences": [LIST],
}


def members(round_no: int) -> list[dict[str, Any]]:
    return [
        {"email": f"m{round_no}-{i}@example.com", "merge_fields": {"FNAME": f"M{i}", "COMPANY": "Contoso"}}
        for i in range(MEMBERS)
    ]


def member_path(email: str) -> str:
    return f"/lists/{LIST}/members/{subscriber_hash(email)}"


def raw_round(base_url: str, batch: list[dict[str, Any]]) -> float:
    """The same PUT bodies, straight to the fake, 10 at a time."""
    bodies = [
        {
            "email_address": m["email"],
            "status_if_new": "subscribed",
            "status": "subscribed",
            "merge_fields": m["merge_fields"],
        }
        for m in batch
    ]
    limits = httpx.Limits(max_connections=10, max_keepalive_connections=10)
    with httpx.Client(base_url=base_url, auth=("bench", API_KEY), limits=limits, timeout=30) as client:
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=10) as pool:
            answers = list(
                pool.map(
                    lambda b: client.put(f"/lists/{LIST}/members/{subscriber_hash(b['email_address'])}", json=b), bodies
                )
            )
        elapsed = time.perf_counter() - started
    assert all(a.status_code == 200 for a in answers)
    return elapsed


def packcloud_round(client: httpx.Client, tenant: str, batch: list[dict[str, Any]]) -> float:
    started = time.perf_counter()
    answer = client.post(f"/mailchimp/{tenant}/news/members", json={"list_id": LIST, "members": batch})
    elapsed = time.perf_counter() - started
    assert answer.status_code == 200, answer.text
    assert sum(answer.json()["counts"].values()) == len(batch)
    return elapsed


def measure(latency_s: float) -> dict[str, float]:
    fake = start_mailchimp("us21", API_KEY, latency_s=latency_s)
    fake.audience(LIST, "FNAME", "COMPANY")
    secrets_file = Path(tempfile.mkdtemp(prefix="bench-mailchimp-")) / "secrets.json"
    settings = {"PACKCLOUD_MAILCHIMP_API_BASE": fake.base_url, "PACKCLOUD_LOCAL_SECRETS_PATH": str(secrets_file)}
    try:
        with local_stack(settings) as stack:
            with httpx.Client(
                base_url=stack.api, headers={"x-functions-key": stack.function_key}, timeout=60
            ) as manage:
                tenant = manage.put("/manage/tenants/bench", json={}).json()
                assert manage.put("/manage/tenants/bench/datasets/news", json=DATASET).status_code == 201
                assert manage.put("/manage/tenants/bench/mailchimp", json={"api_key": API_KEY}).status_code == 201
            headers = {"authorization": f"Bearer {tenant['api_key']}"}
            raw_s, ours_s = 0.0, 0.0
            with httpx.Client(base_url=stack.api, headers=headers, timeout=120) as client:
                packcloud_round(client, "bench", members(-1))  # warm: the connection pool, the registry cache
                for round_no in range(ROUNDS):
                    raw_s += raw_round(fake.base_url.format(dc="us21"), members(2 * round_no))
                    ours_s += packcloud_round(client, "bench", members(2 * round_no + 1))
            assert fake.max_in_flight <= 10
    finally:
        assert fake.server is not None
        fake.server.shutdown()
    total = MEMBERS * ROUNDS
    return {
        "rate": total / ours_s,
        "raw_rate": total / raw_s,
        "ratio": raw_s / ours_s,
        "max_in_flight": fake.max_in_flight,
    }


def main() -> None:
    network = measure(LATENCY_S)
    bare = measure(0.0)
    result = {
        "members": MEMBERS * ROUNDS,
        "latency_ms": LATENCY_S * 1000,
        "rate": round(network["rate"], 1),
        "raw_rate": round(network["raw_rate"], 1),
        "ratio": round(network["ratio"], 3),
        "ratio_without_latency": round(bare["ratio"], 3),
        "max_in_flight": network["max_in_flight"],
    }
    write_results("mailchimp", result)
    print(f"mailchimp: {result}")


if __name__ == "__main__":
    main()
