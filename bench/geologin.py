"""Geo-login: country lookups per second in process, and sign-ins per second through the local host against raw
SDK uploads of the same record bytes.

A sign-in is more than one upload: it reads the user's last sign-in (from this instance's cache once the user
has been seen), writes the new last sign-in conditionally, then writes the record. The workload is what a
deployment sees: a tenant's users signing in again and again (a pool of users, each seen once in a warm-up).
The result reports the storage requests per sign-in apart, counted in process on the same workload.

Targets: >= 100,000 country lookups/s; sign-in rate >= 0.5 x raw upload rate. A second baseline uploads the
record and a last-sign-in blob per operation, the two writes a sign-in of a known user makes: its ratio shows
what PackCloud's own code costs, apart from the second write.
"""

from __future__ import annotations

import json
import random
import time
import uuid

import httpx

from bench.common import (
    in_process_services,
    local_stack,
    raw_upload_rate,
    run_concurrently,
    upload_record,
    write_results,
)
from devenv.demo import demo_signins_dataset
from shared.geologin.locator import Locator, parse_ip
from shared.geologin.signins import SignInRequest

CLIENTS = 16
PER_CLIENT = 120
ROUNDS = 3
USERS = 400
LOOKUPS = 200_000
# Public addresses of several registries' blocks: the lookups walk different parts of the table.
ADDRESSES = ["193.0.6.139", "8.8.8.8", "1.0.16.1", "200.160.2.3", "129.240.2.3", "2001:67c:2e8::1", "139.130.4.5"]
USER_AGENT = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0"


def lookups_per_second() -> tuple[float, float]:
    """Through the Locator (parse, the public-address check, the lookup) and the bare iptocc call."""
    import iptocc

    locator = Locator()
    rates = []
    for call, args in ((lambda a: locator.locate(parse_ip(a)), ADDRESSES), (iptocc.country_code, ADDRESSES)):
        started = time.perf_counter()
        for i in range(LOOKUPS):
            call(args[i % len(args)])
        rates.append(LOOKUPS / (time.perf_counter() - started))
    return rates[0], rates[1]


def sample_record_bytes() -> bytes:
    record = {
        "id": "20261123T100000000000Z-0123456789abcdef",
        "tenant": "bench",
        "dataset": "signins",
        "captured_at": "2026-11-23T10:00:00Z",
        "expires_at": "2026-12-23T10:00:00Z",
        "fields": {
            "user_id": str(uuid.uuid4()),
            "signed_in_at": "2026-11-23T10:00:00Z",
            "country": "NL",
            "ip": "193.0.6.0",
        },
        "dropped_fields": 0,
        "meta": {},
    }
    return json.dumps(record).encode()


def raw_uploads(connection_string: str, with_state: bool = False) -> float:
    """Raw uploads of the record; `with_state` adds the upload of a last-sign-in blob, as a sign-in writes."""
    tags = {"t": "bench", "d": "signins", "cap": "20261123T100000Z", "exp": "20261223T100000Z", "sub": "0" * 40}
    record = upload_record(sample_record_bytes(), tags)
    state = json.dumps({"at": "2026-11-23T10:00:00+00:00", "country": "NL", "latitude": None, "longitude": None})

    def upload(container) -> None:
        record(container)
        if with_state:
            container.upload_blob(f"last/{random.randrange(USERS)}.json", state, tags=tags, overwrite=True)

    return raw_upload_rate(connection_string, upload, CLIENTS, PER_CLIENT)


def sign_ins(api: str, tenant: str, key: str, users: list[str]):
    def worker():
        client = httpx.Client(base_url=api, headers={"authorization": f"Bearer {key}"}, timeout=30)
        rng = random.Random()

        def sign_in():
            body = {"user_id": rng.choice(users), "ip": rng.choice(ADDRESSES[:4]), "user_agent": USER_AGENT}
            answer = client.post(f"/geologin/{tenant}/signins", json=body)
            if answer.status_code != 201:
                raise RuntimeError(f"geologin answered {answer.status_code}")

        return sign_in

    return run_concurrently(worker, CLIENTS, PER_CLIENT)


def requests_per_sign_in(env: dict[str, str], tenant: str, users: list[str]) -> tuple[float, float]:
    """The same service in process: storage requests for a user seen before, and for one never seen."""
    services = in_process_services(env)
    geo = services.geologins
    target = services.capture.resolve(tenant, "signins", "geologin")
    for user in users:  # this instance has seen each user once, as a running instance has
        geo.sign_in(target, SignInRequest(user_id=user, ip=ADDRESSES[0]), None)
    counts = []
    for pool in (users, [str(uuid.uuid4()) for _ in range(100)]):
        before = services.storage.transport.sent
        for n in range(100):
            geo.sign_in(target, SignInRequest(user_id=pool[n % len(pool)], ip=ADDRESSES[n % 4]), None)
        counts.append((services.storage.transport.sent - before) / 100)
    return counts[0], counts[1]


def main() -> dict[str, float]:
    located, bare = lookups_per_second()
    users = [str(uuid.uuid4()) for _ in range(USERS)]
    with local_stack() as stack:
        tenant = "bench"
        with httpx.Client(base_url=stack.api, headers={"x-functions-key": stack.function_key}, timeout=30) as manage:
            key = manage.put(f"/manage/tenants/{tenant}", json={}).raise_for_status().json()["api_key"]
            manage.put(f"/manage/tenants/{tenant}/datasets/signins", json=demo_signins_dataset()).raise_for_status()
        with httpx.Client(base_url=stack.api, headers={"authorization": f"Bearer {key}"}, timeout=30) as client:
            for user in users:  # warm-up: every user seen once, connections and caches warm
                client.post(f"/geologin/{tenant}/signins", json={"user_id": user, "ip": ADDRESSES[0]})
        raw_rates, pair_rates, rates, latencies = [], [], [], []
        for _ in range(ROUNDS):  # interleaved, so all see the same machine load
            raw_rates.append(raw_uploads(stack.azurite.connection_string))
            pair_rates.append(raw_uploads(stack.azurite.connection_string, with_state=True))
            load = sign_ins(stack.api, tenant, key, users)
            rates.append(load.rate)
            latencies.extend(load.latencies_ms)
        seen, unseen = requests_per_sign_in(stack.env, tenant, users)
    raw_rate, pair_rate, rate = max(raw_rates), max(pair_rates), max(rates)
    ordered = sorted(latencies)
    result = {
        "lookups_per_s": round(located),
        "bare_lookups_per_s": round(bare),
        "rate": round(rate, 1),
        "raw_rate": round(raw_rate, 1),
        "ratio": round(rate / raw_rate, 3),
        "raw_pair_rate": round(pair_rate, 1),
        "pair_ratio": round(rate / pair_rate, 3),
        "p50_ms": round(ordered[len(ordered) // 2], 2),
        "p99_ms": round(ordered[int(len(ordered) * 0.99)], 2),
        "requests_per_sign_in": seen,
        "requests_per_first_sign_in": unseen,
        "clients": CLIENTS,
        "users": USERS,
    }
    write_results("geologin", result)
    print(
        f"geologin: {located:,.0f} country lookups/s through the locator ({bare:,.0f} bare; target >= 100,000); "
        f"{rate:.0f} sign-ins/s through the local host vs {raw_rate:.0f} raw SDK uploads/s -> ratio "
        f"{result['ratio']} (target >= 0.5), {result['pair_ratio']} of raw record+state upload pairs "
        f"({pair_rate:.0f}/s); p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms; storage "
        f"requests per sign-in {seen} (a user seen before), {unseen} (a user's first)"
    )
    return result


if __name__ == "__main__":
    main()
