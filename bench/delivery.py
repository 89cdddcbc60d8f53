"""The delivery into Dynamics 365: records from Azurite into the fake Dataverse (tests/integration/fake_dataverse.py),
over HTTPS with azure-identity's tokens, exactly as the timer does it.

1. Throughput: the deliverer takes N records from Azurite (list, read, upsert in $batch requests of 1,000, write
   the receipts, delete) against a raw baseline that sends the very same $batch bodies to the same fake, with the
   same concurrency (the fake advises 4) and token, and nothing else. Target: ratio >= 0.7. The fake answers each
   operation after a service time, `op_ms`: 20 ms, an assumption (what a real organisation takes per upsert depends
   on its plug-ins and auditing; its service protection limits allow 1,200 s of execution time per user per
   5 minutes and web server, an average of 4 requests at work). The ratio can only reach 1 where the organisation,
   not storage, is the slower side; the run also reports it with no service time at all (`ratio_no_service_time`),
   where reading and deleting each record in Azurite is the whole cost compared.
2. Dataverse requests per delivered record with full batches. Target: <= 0.01.
3. Capture-to-deleted time at a steady rate: records captured at 50 a second for 180 s (`--full`: 600 s) while the
   deliverer runs every 60 s, as its timer does by default, and each record's time from capture to deletion.
   Target: p99 <= 2 x the interval. A record waits at most the settling time (15 s), then for the next run, then
   for its batch.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import write_results
from devenv.azurite import start_azurite
from shared.core.ids import record_id_time
from shared.core.settings import Settings
from shared.dataverse.odata import Upsert, build_batch
from shared.dataverse.targets import TargetIn
from shared.registry.delivery_mapping import row_values
from shared.registry.models import Dataset, TenantIn
from shared.services import Services
from shared.storage.blobs import RECORDS
from tests.factories import CLIENT_SECRET, LEAD_COLUMNS, LEADS, PIXEL_DELIVERED, RECORD_KEY, target_body
from tests.integration.fake_dataverse import Column, FakeDataverse, FakeEntra, fakes

RECORDS_N = int(os.environ.get("BENCH_DELIVERY_RECORDS", "8000"))
OP_SECONDS = 0.020
DOP_HINT = 4
LOADERS = 16
TENANT, DATASET = "bench", "visits"
SETTLE_WAIT_S = 16


def services_for(connection_string: str, org: FakeDataverse, entra: FakeEntra, secrets: Path) -> Services:
    settings = Settings(
        region="eu",
        storage_connection_string=connection_string,
        master_key="b" * 40,
        dynamics_host_patterns=(org.host,),
        entra_authority=entra.url,
        local_secrets_path=secrets,
    )
    return Services.build(settings)


def connect(services: Services, org: FakeDataverse, entra: FakeEntra, tenant: str) -> None:
    entra_tenant, client = str(uuid.uuid4()), str(uuid.uuid4())
    entra.register(entra_tenant, client, secret=CLIENT_SECRET)
    org.users.add(client)
    created, _ = services.registry.put_tenant(tenant, TenantIn())
    services.registry.put_dataset(tenant, DATASET, Dataset.model_validate(PIXEL_DELIVERED))
    services.delivery_targets.put(created, TargetIn.model_validate(target_body(org.url, entra_tenant, client)))


def capture(services: Services, tenant: str, count: int) -> list[str]:
    target = services.capture.resolve(tenant, DATASET, "pixel")

    def one(n: int) -> str:
        values = {"page_url": f"https://www.contoso.example/p/{n}", "visitor": f"visitor-{n:06d}"}
        return services.capture.capture(target, values).record.id

    with ThreadPoolExecutor(LOADERS) as pool:
        return list(pool.map(one, range(count)))


def raw_rate(services: Services, org: FakeDataverse, tenant: str, ids: list[str], batch: int) -> float:
    """The same $batch bodies, sent with the same concurrency, session and token: Dataverse's share alone."""
    records = [services.storage.read_json(RECORDS, f"{tenant}/{DATASET}/{i}.json")[0] for i in ids]
    mapping = Dataset.model_validate(PIXEL_DELIVERED).delivery
    bodies = [
        build_batch(
            org.url,
            LEADS,
            RECORD_KEY,
            [Upsert(str(r["id"]), row_values(mapping, r)) for r in records[start : start + batch]],
            isolated=False,
        )
        for start in range(0, len(records), batch)
    ]
    target = next(t for t in services.delivery_targets.all() if t.tenant == tenant)
    client = services.deliverer.client(target)

    def send(body: tuple[dict[str, str], bytes]) -> None:
        answer = client.batch(body[0], body[1], batch)
        assert answer.status == 200, answer.status

    client.batch(*bodies[0], batch)  # the token, once, outside the timing (the deliverer has it cached too)
    started = time.perf_counter()
    with ThreadPoolExecutor(DOP_HINT) as pool:
        list(pool.map(send, bodies))
    return len(records) / (time.perf_counter() - started)


def throughput(connection_string: str, org: FakeDataverse, entra: FakeEntra, folder: Path, op_s: float) -> dict:
    services = services_for(connection_string, org, entra, folder / "secrets.json")
    tenant = f"{TENANT}-{uuid.uuid4().hex[:6]}"
    connect(services, org, entra, tenant)
    org.op_seconds, org.dop_hint = op_s, DOP_HINT
    deliverer = services.push_deliverer(session=services.dataverse_session, budget_s=3600)
    # A timer's earlier runs: the token is cached, and the organisation's dop hint known.
    capture(services, tenant, 1)
    time.sleep(SETTLE_WAIT_S)
    assert deliverer.run().delivered == 1
    loaded = time.perf_counter()
    ids = capture(services, tenant, RECORDS_N)
    print(f"delivery: captured {RECORDS_N:,} records in {time.perf_counter() - loaded:.0f} s", file=sys.stderr)
    time.sleep(SETTLE_WAIT_S)
    org.op_seconds, org.dop_hint = op_s, DOP_HINT
    raw = raw_rate(services, org, tenant, ids, services.settings.delivery_batch_size)
    org.reset()
    org.op_seconds, org.dop_hint = op_s, DOP_HINT
    started = time.perf_counter()
    report = deliverer.run()
    seconds = time.perf_counter() - started
    held = sum(1 for _ in services.storage.container(RECORDS).list_blobs(name_starts_with=f"{tenant}/"))
    assert report.delivered == report.deleted == RECORDS_N and held == 0, (report.delivered, report.deleted, held)
    assert len(org.rows[LEADS]) == RECORDS_N  # the baseline's rows were cleared: these are the deliverer's
    rate = RECORDS_N / seconds
    return {"rate": rate, "raw_rate": raw, "ratio": rate / raw, "requests": report.requests}


def latency(connection_string: str, org: FakeDataverse, entra: FakeEntra, folder: Path, full: bool) -> dict:
    rate, seconds, interval = (50, 600, 60) if full else (50, 180, 60)
    services = services_for(connection_string, org, entra, folder / "secrets.json")
    tenant = f"{TENANT}-{uuid.uuid4().hex[:6]}"
    connect(services, org, entra, tenant)
    org.reset()
    org.op_seconds, org.dop_hint = OP_SECONDS, DOP_HINT
    target = services.capture.resolve(tenant, DATASET, "pixel")
    captured: list[str] = []
    deleted: dict[str, datetime] = {}
    stop = threading.Event()

    def produce() -> None:
        started = time.monotonic()
        for n in range(rate * seconds):
            delay = started + n / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            values = {"page_url": f"https://www.contoso.example/l/{n}", "visitor": f"v-{n}"}
            captured.append(services.capture.capture(target, values).record.id)

    def timer() -> None:
        # As the Functions host does: one run at each tick, never two at once.
        deliverer = services.push_deliverer(session=services.dataverse_session)
        next_tick = time.monotonic()
        while not stop.is_set():
            next_tick += interval
            report = deliverer.run()
            deleted.update(report.deleted_at)
            stop.wait(max(0.0, next_tick - time.monotonic()))

    with ThreadPoolExecutor(4) as pool:
        producers = [pool.submit(produce)]
        ticking = pool.submit(timer)
        for producer in producers:
            producer.result()
        deadline = time.monotonic() + 3 * interval
        while len(deleted) < len(captured) and time.monotonic() < deadline:
            time.sleep(1)
        stop.set()
        ticking.result()
    waits = sorted((deleted[i] - record_id_time(i)).total_seconds() for i in captured if i in deleted)
    p99 = waits[min(len(waits) - 1, int(0.99 * len(waits)))]
    return {
        "steady_rate": rate,
        "steady_seconds": seconds,
        "interval_s": interval,
        "records_steady": len(captured),
        "not_deleted": len(captured) - len(waits),
        "p50_s": round(waits[len(waits) // 2], 1),
        "p99_s": round(p99, 1),
        "p99_over_interval": round(p99 / interval, 3),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    full = "--full" in (argv if argv is not None else sys.argv[1:])
    folder = Path(tempfile.mkdtemp(prefix="bench-delivery-"))
    azurite = start_azurite()
    try:
        with fakes(folder) as (ca, entra, (org,)):
            os.environ["REQUESTS_CA_BUNDLE"] = str(ca.bundle)  # the test CA, for this process's HTTPS clients
            org.table(LEADS, "lead", RECORD_KEY, **{n: Column(k, s) for n, (k, s) in LEAD_COLUMNS.items()})
            measured = throughput(azurite.connection_string, org, entra, folder, OP_SECONDS)
            bare = throughput(azurite.connection_string, org, entra, folder, 0.0)
            steady = latency(azurite.connection_string, org, entra, folder, full)
    finally:
        azurite.stop()
    result = {
        "records": RECORDS_N,
        "op_ms": OP_SECONDS * 1000,
        "rate": round(measured["rate"], 1),
        "raw_rate": round(measured["raw_rate"], 1),
        "ratio": round(measured["ratio"], 3),
        "requests_per_record": round(measured["requests"] / RECORDS_N, 5),
        "ratio_no_service_time": round(bare["ratio"], 3),
        "rate_no_service_time": round(bare["rate"], 1),
        "raw_rate_no_service_time": round(bare["raw_rate"], 1),
        **steady,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_results("delivery", result)
    print(result)
    return result


if __name__ == "__main__":
    main()
