"""The capacity and cost model (docs/capacity.md): dollars per million operations and the requests/s ceiling of one
region, from measured figures and a dated list of prices.

Inputs, each measured in this run or read from this run's results:
- storage requests per operation, by the kind the price list bills (write, read, list, tag query, delete, batch,
  other), counted by the SDK transport (`CountingTransport.kinds`) while the real services do the operation in
  process against Azurite;
- bytes and index tags per stored record, read back from storage;
- CPU and wall milliseconds per request: for pixel hits and form posts from bench/concurrency.py (through the
  host), for the others measured here in process;
- the Bicep's maximumInstanceCount, perInstanceConcurrency and instanceMemoryMB.

Compute follows how Flex Consumption bills on demand: the instance's memory for the time it is executing, however
many requests run on it at once. One request then costs memory x max(wall / concurrency, CPU / cores): at the
chosen concurrency the instance is busy for a fraction of each request's wall time, unless the CPU is the limit.
Timer work (purge, delivery) has the instance to itself for its whole wall time. Capacity is billed for the days a
record is kept: at worst its retention (RETENTION_DAYS), though delivery usually deletes it within minutes.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.common import RESULTS, write_results
from devenv.azurite import ROOT, start_azurite
from devenv.demo import demo_dataset, demo_form_dataset, demo_signins_dataset
from shared.autonumber.sequences import SequenceDefinition
from shared.core.clock import ManualClock
from shared.core.settings import Settings
from shared.geologin.signins import SignInRequest
from shared.lifecycle.generations import Generations
from shared.pixel.hits import Hit, record_hit
from shared.registry.models import Dataset, TenantIn
from shared.services import Services
from shared.storage.blobs import RECORDS
from shared.webform.intake import FormPost

BICEP = ROOT / "infra" / "modules" / "function-app.bicep"
DOC = ROOT / "docs" / "capacity.md"
MEASURED_OPS = 100
TIMER_RECORDS = 500
RETENTION_DAYS = 30  # the most a dataset may keep a record: the worst case of the capacity term
DELIVERY_PAGE = 500
ORIGIN = "https://www.contoso.example"
PAGE = ORIGIN + "/pricing"
BROWSER_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Safari/537.36"
SUBMISSION = {"email": "jane.roe@example.com", "name": "Jane Roe", "topic": "support", "rating": 9, "consent": "yes"}
KINDS = ("write", "read", "list", "tag_query", "delete", "batch", "other")
OPERATIONS = ("pixel", "form", "sign-in", "auto-number", "purge", "delivery")


@dataclass(frozen=True)
class Prices:
    """US dollars, pay-as-you-go; per request unless named otherwise."""

    looked_up: str
    gb_second: float
    execution: float
    write: float
    read: float
    list: float
    other: float
    delete: float
    capacity_gb_month: float
    index_tag_month: float

    def request(self, kind: str) -> float:
        # Find Blobs by Tags is billed as a list; a batch request as "other" (its deletions are free).
        billed_as = {"tag_query": "list", "batch": "other"}.get(kind, kind)
        price: float = getattr(self, billed_as)
        return price


# Sources, looked up on PRICES.looked_up (docs/capacity.md cites them in full; check the live pages before planning):
# - Flex Consumption on demand, East US: $0.000026 per GB-s and $0.40 per million executions (free grants not
#   counted), as quoted by modal.com/blog/azure-function-pricing-guide (2025-05-22) from the Azure Functions pricing
#   page;
# - Blob Storage hot tier, per 10,000: write $0.055, read $0.0044, list and create container $0.055, other $0.0044;
#   capacity $0.0208 per GB-month (first 50 TB): the price table of Microsoft Learn's "Estimate the cost of using Azure
#   Blob Storage" (ms.date 2024-07-26), which Microsoft calls sample prices; Delete Blob is free and Find Blobs by
#   Tags is a list operation ("Map each REST operation to a price", ms.date 2025-05-14);
# - blob index tags: $0.03 per 10,000 tags per month, not found in the stored pages searched: an unverified figure.
PRICES = Prices(
    looked_up="2026-11-27",
    gb_second=0.000026,
    execution=0.40 / 1_000_000,
    write=0.055 / 10_000,
    read=0.0044 / 10_000,
    list=0.055 / 10_000,
    other=0.0044 / 10_000,
    delete=0.0,
    capacity_gb_month=0.0208,
    index_tag_month=0.03 / 10_000,
)


@dataclass(frozen=True)
class Deployment:
    max_instances: int
    concurrency: int
    memory_gb: float
    cores: float = 1.0  # an assumption: Flex Consumption does not publish vCPUs per memory size


@dataclass(frozen=True)
class Operation:
    name: str
    requests: dict[str, float]  # storage requests per operation, by kind
    record_bytes: float  # bytes kept per operation (records and personal state it adds)
    tags: float  # index tags kept per operation
    executions: float  # function executions per operation
    wall_ms: float  # one request alone, or a timer's time per record
    cpu_ms: float
    http: bool = True


@dataclass(frozen=True)
class Cost:
    compute: float
    storage_ops: float
    capacity: float

    @property
    def total(self) -> float:
        return self.compute + self.storage_ops + self.capacity

    @property
    def dominant(self) -> str:
        terms = {"compute": self.compute, "storage operations": self.storage_ops, "capacity": self.capacity}
        return max(terms, key=lambda name: terms[name])


def instance_seconds(op: Operation, deployment: Deployment) -> float:
    """Billed instance time per operation: its share of an instance running `concurrency` requests at once."""
    if not op.http:
        return op.wall_ms / 1000
    return max(op.wall_ms / deployment.concurrency, op.cpu_ms / deployment.cores) / 1000


def cost_per_million(op: Operation, prices: Prices, deployment: Deployment) -> Cost:
    million = 1_000_000
    compute = (
        deployment.memory_gb * instance_seconds(op, deployment) * prices.gb_second + op.executions * prices.execution
    )
    storage_ops = sum(count * prices.request(kind) for kind, count in op.requests.items())
    months = RETENTION_DAYS / 30
    capacity = (op.record_bytes / 1e9 * prices.capacity_gb_month + op.tags * prices.index_tag_month) * months
    return Cost(compute * million, storage_ops * million, capacity * million)


def ceiling_per_s(op: Operation, deployment: Deployment) -> float | None:
    """Requests/s one region takes before requests queue: every instance at its concurrency, or at its cores."""
    if not op.http:
        return None
    return deployment.max_instances / instance_seconds(op, deployment)


def bicep_deployment() -> Deployment:
    text = BICEP.read_text()

    def default(name: str) -> int:
        found = re.search(rf"param {name} int = (\d+)", text)
        if found is None:
            raise RuntimeError(f"no {name} parameter with a default in {BICEP.relative_to(ROOT)}")
        return int(found.group(1))

    return Deployment(
        default("maximumInstanceCount"), default("perInstanceConcurrency"), default("instanceMemoryMB") / 1024
    )


def render(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| operation | compute $/M | storage operations $/M | capacity $/M | total $/M | dominant | region ceiling |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ceiling = f"{row['ceiling_per_s']:,.0f} requests/s" if row["ceiling_per_s"] is not None else "timer (n/a)"
        lines.append(
            f"| {row['name']} | {row['compute']:.2f} | {row['storage_ops']:.2f} | {row['capacity']:.2f} | "
            f"{row['total']:.2f} | {row['dominant']} | {ceiling} |"
        )
    return "\n".join(lines)


def model(operations: list[Operation], prices: Prices, deployment: Deployment) -> list[dict[str, Any]]:
    rows = []
    for op in operations:
        cost = cost_per_million(op, prices, deployment)
        ceiling = ceiling_per_s(op, deployment)
        rows.append(
            {
                "name": op.name,
                "compute": round(cost.compute, 4),
                "storage_ops": round(cost.storage_ops, 4),
                "capacity": round(cost.capacity, 4),
                "total": round(cost.total, 4),
                "dominant": cost.dominant,
                "ceiling_per_s": round(ceiling) if ceiling is not None else None,
            }
        )
    return rows


def render_inputs(inputs: dict[str, dict[str, Any]]) -> str:
    """The measured inputs of each operation, as docs/capacity.md shows them."""
    lines = [
        "| operation | storage requests by kind | bytes kept | index tags | executions | wall ms | CPU ms | from |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, op in inputs.items():
        requests = ", ".join(f"{kind} {count:g}" for kind, count in op["requests"].items()) or "none"
        lines.append(
            f"| {name} | {requests} | {op['record_bytes']:.0f} | {op['tags']:g} | {op['executions']:g} | "
            f"{op['wall_ms']:.2f} | {op['cpu_ms']:.2f} | {op['source']} |"
        )
    return "\n".join(lines)


def update_doc(result: dict[str, Any]) -> None:
    """docs/capacity.md's generated tables: the inputs, the model at the Bicep's settings and at concurrency 1."""
    text = DOC.read_text()
    blocks = {
        "inputs": render_inputs(result["inputs"]),
        "model": render(result["rows"]),
        "model-at-1": render(result["rows_at_concurrency_1"]),
    }
    for name, block in blocks.items():
        start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
        before, rest = text.split(start, 1)
        _, after = rest.split(end, 1)
        text = f"{before}{start}\n{block}\n{end}{after}"
    DOC.write_text(text)


# ---------------------------------------------------------------- measuring the inputs


class Meter:
    """Storage requests by kind, wall and CPU time of what runs inside it, per operation."""

    def __init__(self, services: Services, count: int) -> None:
        self.services, self.count = services, count

    def __enter__(self) -> Meter:
        self.kinds = dict(self.services.storage.transport.kinds)
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *_: object) -> None:
        self.wall_ms = (time.perf_counter() - self.wall) * 1000 / self.count
        self.cpu_ms = (time.process_time() - self.cpu) * 1000 / self.count
        after = self.services.storage.transport.kinds
        self.requests = {
            k: (after[k] - self.kinds.get(k, 0)) / self.count for k in KINDS if after[k] != self.kinds.get(k, 0)
        }


def stored(services: Services, prefix: str) -> tuple[float, float]:
    """Mean bytes and index tags of the records under a prefix."""
    blobs = list(services.storage.container(RECORDS).list_blobs(name_starts_with=prefix, include=["tags"]))
    return sum(b.size for b in blobs) / len(blobs), sum(len(b.tags or {}) for b in blobs) / len(blobs)


def measure(connection_string: str) -> dict[str, Operation]:
    clock = ManualClock(datetime.now(UTC))
    settings = Settings(
        region="eu", storage_connection_string=connection_string, master_key="c" * 40, form_rate_per_minute=0
    )
    services = Services.build(settings, clock)
    tenant = "cost"
    services.registry.put_tenant(tenant, TenantIn())
    for dataset, doc in (
        ("pricing", demo_dataset(ORIGIN)),
        ("contact", demo_form_dataset(ORIGIN)),
        ("signins", demo_signins_dataset()),
    ):
        services.registry.put_dataset(tenant, dataset, Dataset.model_validate(doc))
    ops: dict[str, Operation] = {}

    headers = {"user-agent": BROWSER_UA, "referer": ORIGIN + "/", "x-forwarded-for": "203.0.113.9"}
    hits = [
        Hit(tenant, "pricing", {"page_url": PAGE, "visitor": uuid.uuid4().hex}, headers, 0) for _ in range(MEASURED_OPS)
    ]
    record_hit(services.capture, settings, hits[0])  # warm the registry cache, as a running instance has
    with Meter(services, MEASURED_OPS - 1) as meter:
        for hit in hits[1:]:
            record_hit(services.capture, settings, hit)
    ops["pixel"] = Operation(
        "pixel", meter.requests, *stored(services, f"{tenant}/pricing/"), 1, meter.wall_ms, meter.cpu_ms
    )

    body = json.dumps(SUBMISSION).encode()
    form_headers = {"origin": ORIGIN, "content-type": "application/json", "x-forwarded-for": "203.0.113.9"}
    services.forms.submit(FormPost(tenant, "contact", body, form_headers))
    with Meter(services, MEASURED_OPS) as meter:
        for _ in range(MEASURED_OPS):
            services.forms.submit(FormPost(tenant, "contact", body, form_headers))
    ops["form"] = Operation(
        "form", meter.requests, *stored(services, f"{tenant}/contact/"), 1, meter.wall_ms, meter.cpu_ms
    )

    geo = services.geologins
    target = services.capture.resolve(tenant, "signins", "geologin")
    users = [str(uuid.uuid4()) for _ in range(20)]
    for user in users:  # a tenant's users sign in again and again: this instance has seen each once
        geo.sign_in(target, SignInRequest(user_id=user, ip="193.0.6.139"), None)
    with Meter(services, MEASURED_OPS) as meter:
        for n in range(MEASURED_OPS):
            geo.sign_in(target, SignInRequest(user_id=users[n % len(users)], ip="8.8.8.8"), None)
    size, tags = stored(services, f"{tenant}/signins/")
    ops["sign-in"] = Operation("sign-in", meter.requests, size, tags, 1, meter.wall_ms, meter.cpu_ms)

    services.sequences.put(tenant, "orders", SequenceDefinition.model_validate({"format": "B-{SEQNUM:8}"}))
    services.sequences.next(tenant, "orders", 1, None)
    with Meter(services, MEASURED_OPS) as meter:
        for _ in range(MEASURED_OPS):
            services.sequences.next(tenant, "orders", 1, None)
    ops["auto-number"] = Operation("auto-number", meter.requests, 0, 0, 1, meter.wall_ms, meter.cpu_ms)

    ops["delivery"] = measure_delivery(services, clock, tenant)
    ops["purge"] = measure_purge(services, clock, tenant)
    return ops


def measure_delivery(services: Services, clock: ManualClock, tenant: str) -> Operation:
    """The CRM side pulls /sync pages and acknowledges them: per record delivered and deleted."""
    target = services.capture.resolve(tenant, "contact", "webform")
    for _ in range(TIMER_RECORDS):
        services.capture.capture(target, {"email": "jane.roe@example.com", "consent": "yes"})
    clock.advance(timedelta(hours=1))  # older than the settling time /sync waits for
    delivered = 0
    pages = 0
    with Meter(services, TIMER_RECORDS) as meter:
        cursor = None
        while True:
            tenant_doc = services.registry.get_tenant(tenant, fresh=True)
            dataset_doc = services.registry.get_dataset(tenant, "contact", fresh=True)
            assert tenant_doc is not None and dataset_doc is not None
            page = services.delivery.page(
                tenant, "contact", cursor, DELIVERY_PAGE, Generations(services.registry, tenant_doc, [dataset_doc])
            )
            pages += 1
            if page.records:
                services.delivery.acknowledge(tenant, "contact", [str(r["id"]) for r in page.records])
                pages += 1
                delivered += len(page.records)
            cursor = page.next_cursor
            if not page.more:
                break
    assert delivered >= TIMER_RECORDS, delivered
    return Operation("delivery", meter.requests, 0, 0, pages / TIMER_RECORDS, meter.wall_ms, meter.cpu_ms, http=False)


def measure_purge(services: Services, clock: ManualClock, tenant: str) -> Operation:
    """One purge run over records that expired: per record deleted."""
    target = services.capture.resolve(tenant, "pricing", "pixel")
    for _ in range(TIMER_RECORDS):
        services.capture.capture(target, {"page_url": PAGE})
    clock.advance(timedelta(days=RETENTION_DAYS + 1))
    purger = services.purger()
    with Meter(services, TIMER_RECORDS) as meter:
        report = purger.run()
    assert report.deleted >= TIMER_RECORDS, report.deleted
    return Operation("purge", meter.requests, 0, 0, 1 / TIMER_RECORDS, meter.wall_ms, meter.cpu_ms, http=False)


def from_concurrency_bench(ops: dict[str, Operation], deployment: Deployment) -> dict[str, str]:
    """Pixel and form CPU and wall times through the host, from bench/concurrency.py's results where present."""
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    levels = results.get("concurrency", {}).get("levels", {})
    sources = {}
    for name, kind in (("pixel", "pixel"), ("form", "form")):
        curve = levels.get(kind, {})
        alone, chosen = curve.get("1"), curve.get(str(deployment.concurrency))
        if alone is None or chosen is None:
            sources[name] = "in process (run bench.concurrency for figures through the host)"
            continue
        ops[name] = Operation(
            name,
            ops[name].requests,
            ops[name].record_bytes,
            ops[name].tags,
            1,
            alone["wall_ms"],
            chosen["cpu_ms_per_capture"],
        )
        sources[name] = "bench/concurrency.py: wall at concurrency 1, CPU at the Bicep's level"
    return sources


def main() -> dict[str, Any]:
    deployment = bicep_deployment()
    azurite = start_azurite()
    try:
        ops = measure(azurite.connection_string)
    finally:
        azurite.stop()
    sources = from_concurrency_bench(ops, deployment)
    operations = [ops[name] for name in OPERATIONS]
    rows = model(operations, PRICES, deployment)
    # The same model at Flex Consumption's default for Python, one request per instance: what the choice changed.
    at_one = model(operations, PRICES, replace(deployment, concurrency=1))
    result = {
        "deployment": asdict(deployment),
        "prices": asdict(PRICES),
        "retention_days": RETENTION_DAYS,
        "inputs": {op.name: {**asdict(op), "source": sources.get(op.name, "in process")} for op in operations},
        "rows": rows,
        "rows_at_concurrency_1": at_one,
    }
    write_results("cost", result)
    update_doc(result)
    print(render(rows))
    return result


if __name__ == "__main__":
    main()
