"""One purge run over 100,000 live and 10,000 expired records, against raw batch deletion of the same names.

Targets: at most 0.02 storage requests per expired record, no live record listed by the deletion, and a
run time at most 1.5 x the raw time of batch-deleting the same expired names in the same run. The oldest
remaining record's age costs one name per dataset (`probe_reads`), reported apart.

`python -m bench.purge` runs 20,000 live and 2,000 expired records (the same proportion); `--full` runs the
100,000 and 10,000 of the target. Azurite's deletions slow down with the number of blobs it holds (on a
2-core machine the full run takes over 40 minutes, most of it in the raw baseline), hence the default.
"""

from __future__ import annotations

import json
import secrets
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from azure.storage.blob import BlobServiceClient

from devenv.azurite import start_azurite
from shared.core.clock import ManualClock, tag_time
from shared.core.settings import Settings
from shared.registry.models import Dataset, TenantIn
from shared.services import Services
from shared.storage.blobs import RECORDS, CountingTransport

FULL = (100_000, 10_000)
DEFAULT = (20_000, 2_000)
LOADERS = 16
TENANT, DATASET = "bench", "visits"
DATASET_DOC = {
    "capability": "pixel",
    "purpose": "Benchmark of the retention purge",
    "legal_basis": "consent",
    "retention_days": 14,
    "controller": {"name": "Contoso Ltd", "email": "privacy@contoso.example"},
    "fields": [{"name": "page_url", "type": "url", "personal": False}],
}


def record_names(count: int, captured: datetime) -> list[str]:
    stamp = captured.strftime("%Y%m%dT%H%M%S%fZ")
    return [f"{TENANT}/{DATASET}/{stamp}-{secrets.token_hex(8)}.json" for _ in range(count)]


def load(service: BlobServiceClient, names: list[str], captured: datetime, expires: datetime) -> None:
    container = service.get_container_client(RECORDS)
    tags = {"t": TENANT, "d": DATASET, "cap": tag_time(captured), "exp": tag_time(expires)}
    body = json.dumps({"fields": {"page_url": "https://www.contoso.example/"}}).encode()

    def put(name: str) -> None:
        container.upload_blob(name, body, tags=tags, overwrite=True)

    with ThreadPoolExecutor(LOADERS) as pool:
        list(pool.map(put, names))


def raw_delete(service: BlobServiceClient, names: list[str]) -> float:
    container = service.get_container_client(RECORDS)
    started = time.perf_counter()
    for start in range(0, len(names), 256):
        container.delete_blobs(*names[start : start + 256], raise_on_any_failure=False)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> dict[str, object]:
    live_count, expired_count = FULL if "--full" in (argv if argv is not None else sys.argv[1:]) else DEFAULT
    azurite = start_azurite()
    try:
        now = datetime.now(UTC)
        clock = ManualClock(now)
        settings = Settings(region="eu", storage_connection_string=azurite.connection_string, master_key="b" * 40)
        services = Services.build(settings, clock)
        services.registry.put_tenant(TENANT, TenantIn())
        services.registry.put_dataset(TENANT, DATASET, Dataset.model_validate(DATASET_DOC))
        loader = BlobServiceClient.from_connection_string(azurite.connection_string, transport=CountingTransport())

        started = time.perf_counter()
        live = record_names(live_count, now - timedelta(days=1))
        load(loader, live, now - timedelta(days=1), now + timedelta(days=13))
        expired = record_names(expired_count, now - timedelta(days=15))
        load(loader, expired, now - timedelta(days=15), now - timedelta(days=1))
        loaded_s = time.perf_counter() - started
        print(f"purge: loaded {live_count:,} live and {expired_count:,} expired records in {loaded_s:.0f} s")

        raw_s = raw_delete(loader, expired)
        load(loader, expired, now - timedelta(days=15), now - timedelta(days=1))  # the same names again

        expired_set = set(expired)
        found: list[str] = []
        find = services.storage.find_by_tags

        def recording_find(container: str, where: str, **options):  # type: ignore[no-untyped-def]
            for name in find(container, where, **options):
                found.append(name)
                yield name

        services.storage.find_by_tags = recording_find  # type: ignore[method-assign]
        services.storage.container(RECORDS)  # containers exist; not part of the run
        before = services.storage.transport.sent
        report = services.purger(budget_s=float("inf")).run()  # compared with raw time, not a deadline
        requests = services.storage.transport.sent - before

        deleted = report.counts(TENANT, DATASET).deleted_expired
        live_listed = sum(1 for name in found if name.startswith(f"{TENANT}/") and name not in expired_set)
        remaining = sum(1 for _ in loader.get_container_client(RECORDS).list_blobs(name_starts_with=f"{TENANT}/"))
        assert deleted == expired_count and remaining == live_count, (deleted, remaining)
        result = {
            "requests_per_expired": round(requests / expired_count, 4),
            "live_listed": live_listed,
            "probe_reads": len(report.datasets),
            "time_ratio": round(report.duration_s / raw_s, 3),
            "purge_s": round(report.duration_s, 2),
            "raw_delete_s": round(raw_s, 2),
            "live": live_count,
            "expired": expired_count,
        }
    finally:
        azurite.stop()
    from bench.common import write_results

    write_results("purge", result)
    print(
        f"purge: {requests} storage requests for {expired_count:,} expired records = {result['requests_per_expired']} "
        f"per record (target <= 0.02); live records listed by the deletion: {live_listed} (target 0); "
        f"{report.duration_s:.2f} s vs {raw_s:.2f} s raw batch delete -> ratio {result['time_ratio']} "
        f"(target <= 1.5); {len(report.datasets)} name read(s) for the oldest-record probe"
    )
    return result


if __name__ == "__main__":
    main()
