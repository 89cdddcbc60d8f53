"""`make load`: a mixed workload against the local host for a set time and concurrency, then a reconciliation.

The mix is 70% pixel hits, 20% web-form submissions, 5% auto-numbers and 5% geo-login sign-ins, spread over
several tenants with one dataset per capability, plus a share of pixel hits and forms addressed to a tenant
that does not exist. Every request carries a value of its own (the pixel's visitor, the form's e-mail, the
sign-in's user), so afterwards each answer can be looked up in storage:

- every 2xx answer is in storage exactly once (a record with that value, and the id the answer gave);
- no auto-number value was handed out twice within a sequence;
- nothing of the unknown tenant is stored.

It prints throughput, p50/p99 per endpoint, errors by status and the reconciliation, and writes them to
`bench/results.json` (key `load`). The load comes from one asyncio client (httpx), so the form rate limit
of the host, which counts per client address, is off.

    python -m bench.load [--seconds 30] [--concurrency 32] [--tenants 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx
from azure.storage.blob import BlobServiceClient

from bench.common import BROWSER_UA, local_stack, write_results
from devenv.demo import demo_dataset, demo_form_dataset, demo_signins_dataset

MIX = {"pixel": 70, "form": 20, "autonumber": 5, "geologin": 5}
ORIGIN = "https://www.contoso.example"
UNKNOWN_TENANT = "nobody-here"
UNKNOWN_SHARE = 0.02  # of pixel hits and forms, sent to a tenant that does not exist
DATASET = {"pixel": "visits", "form": "contact", "geologin": "signins"}
SUBJECT_FIELD = {"pixel": "visitor", "form": "email", "geologin": "user_id"}


@dataclass
class Sent:
    """One request: what it was, how it was answered, and what a 2xx said it stored."""

    kind: str
    tenant: str
    status: int  # 0: no answer (connection error)
    latency_ms: float
    subject: str = ""
    record_id: str = ""
    numbers: tuple[int, ...] = ()


@dataclass
class Reconciliation:
    answered: int = 0  # 2xx answers that stored something
    missing: int = 0  # answered 2xx, not in storage
    duplicated: int = 0  # answered 2xx, in storage more than once
    wrong_id: int = 0  # in storage under another id than the answer gave
    numbers_twice: int = 0  # auto-number values handed out more than once
    unknown_tenant_blobs: int = 0  # anything stored for the tenant that does not exist
    stored_unanswered: int = 0  # stored, though not answered 2xx (a lost answer: allowed, reported)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.duplicated or self.wrong_id or self.numbers_twice or self.unknown_tenant_blobs)


@dataclass
class LoadReport:
    seconds: float
    concurrency: int
    tenants: int
    sent: list[Sent] = field(default_factory=list)
    reconciliation: Reconciliation = field(default_factory=Reconciliation)

    @property
    def throughput(self) -> float:
        return sum(1 for s in self.sent if s.status) / self.seconds

    def statuses(self) -> dict[str, dict[str, int]]:
        by_kind: dict[str, Counter[str]] = defaultdict(Counter)
        for s in self.sent:
            by_kind[s.kind][str(s.status or "no answer")] += 1
        return {kind: dict(sorted(counts.items())) for kind, counts in sorted(by_kind.items())}

    def latencies(self) -> dict[str, dict[str, float]]:
        by_kind: dict[str, list[float]] = defaultdict(list)
        for s in self.sent:
            if s.status:
                by_kind[s.kind].append(s.latency_ms)
        return {
            kind: {"count": len(values), "p50_ms": percentile(values, 0.5), "p99_ms": percentile(values, 0.99)}
            for kind, values in sorted(by_kind.items())
        }

    def as_result(self) -> dict[str, object]:
        return {
            "seconds": self.seconds,
            "concurrency": self.concurrency,
            "tenants": self.tenants,
            "requests": len(self.sent),
            "throughput_per_s": round(self.throughput, 1),
            "endpoints": self.latencies(),
            "statuses": self.statuses(),
            "reconciliation": {**vars(self.reconciliation), "ok": self.reconciliation.ok},
        }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1) if ordered else 0.0


def tenant_ids(count: int) -> list[str]:
    return [f"load-{index}" for index in range(1, count + 1)]


def prepare(api: str, function_key: str, tenants: Iterable[str]) -> dict[str, str]:
    """Each tenant with one dataset per capability and a sequence; answers each tenant's API key."""
    keys = {}
    with httpx.Client(base_url=api, headers={"x-functions-key": function_key}, timeout=60) as manage:
        for tenant in tenants:
            created = manage.put(f"/manage/tenants/{tenant}", json={})
            created.raise_for_status()
            keys[tenant] = created.json()["api_key"]
            for declaration in (demo_dataset(ORIGIN), demo_form_dataset(ORIGIN), demo_signins_dataset()):
                name = DATASET["form" if declaration["capability"] == "webform" else declaration["capability"]]
                manage.put(f"/manage/tenants/{tenant}/datasets/{name}", json=declaration).raise_for_status()
            manage.put(f"/manage/tenants/{tenant}/sequences/invoice", json={"format": "{SEQNUM:8}"}).raise_for_status()
    return keys


async def one_request(client: httpx.AsyncClient, kind: str, tenant: str, key: str) -> Sent:
    subject = ""
    started = time.perf_counter()
    try:
        if kind == "pixel":
            subject = uuid.uuid4().hex
            answer = await client.get(
                f"/px/{tenant}/visits",
                params={"page_url": ORIGIN + "/pricing", "visitor": subject},
                headers={"referer": ORIGIN + "/pricing"},
            )
        elif kind == "form":
            subject = f"{uuid.uuid4().hex[:16]}@example.com"
            body = {"email": subject, "topic": "sales", "consent": "on"}
            answer = await client.post(f"/forms/{tenant}/contact", json=body, headers={"origin": ORIGIN})
        elif kind == "geologin":
            subject = str(uuid.uuid4())
            answer = await client.post(
                f"/geologin/{tenant}/signins",
                json={"user_id": subject, "ip": "81.2.69.160"},
                headers={"authorization": f"Bearer {key}"},
            )
        else:
            answer = await client.post(
                f"/autonumber/{tenant}/invoice/next", json={"count": 2}, headers={"authorization": f"Bearer {key}"}
            )
    except httpx.TransportError:
        return Sent(kind, tenant, 0, (time.perf_counter() - started) * 1000, subject)
    latency = (time.perf_counter() - started) * 1000
    sent = Sent(kind, tenant, answer.status_code, latency, subject)
    if answer.is_success and kind in ("form", "geologin"):
        sent.record_id = answer.json()["id"]
    elif answer.is_success and kind == "autonumber":
        sent.numbers = tuple(answer.json()["seq"])
    return sent


async def generate(api: str, keys: dict[str, str], seconds: float, concurrency: int, seed: int) -> list[Sent]:
    kinds, weights = list(MIX), list(MIX.values())
    tenants = list(keys)
    sent: list[Sent] = []
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def worker(number: int) -> None:
        chooser = random.Random(seed * 1000 + number)
        while time.monotonic() < deadline:
            kind = chooser.choices(kinds, weights)[0]
            tenant = chooser.choice(tenants)
            if kind in ("pixel", "form") and chooser.random() < UNKNOWN_SHARE:
                tenant = UNKNOWN_TENANT
            sent.append(await one_request(client, kind, tenant, keys.get(tenant, "")))

    headers = {"user-agent": BROWSER_UA}
    async with httpx.AsyncClient(base_url=api, headers=headers, timeout=60, limits=limits) as client:
        await asyncio.gather(*(worker(number) for number in range(concurrency)))
    return sent


def reconcile(connection_string: str, sent: list[Sent], tenants: Iterable[str]) -> Reconciliation:
    """Compare every answer with what storage holds (read straight from the account, not through PackCloud)."""
    service = BlobServiceClient.from_connection_string(connection_string)
    records = service.get_container_client("records")
    names = [blob.name for blob in records.list_blobs()]
    with ThreadPoolExecutor(16) as pool:
        bodies = list(pool.map(lambda name: json.loads(records.download_blob(name).readall()), names))
    stored: dict[tuple[str, str, str], list[str]] = defaultdict(list)  # (tenant, dataset, subject) -> ids
    for body in bodies:
        for kind, dataset in DATASET.items():
            if body["dataset"] == dataset:
                stored[(body["tenant"], dataset, str(body["fields"].get(SUBJECT_FIELD[kind], "")))].append(body["id"])

    result = Reconciliation()
    answered_keys = set()
    for s in sent:
        if not (200 <= s.status < 300) or s.kind == "autonumber" or s.tenant == UNKNOWN_TENANT:
            continue
        result.answered += 1
        key = (s.tenant, DATASET[s.kind], s.subject)
        answered_keys.add(key)
        ids = stored.get(key, [])
        if not ids:
            result.missing += 1
        elif len(ids) > 1:
            result.duplicated += 1
        elif s.record_id and ids != [s.record_id]:
            result.wrong_id += 1
    result.stored_unanswered = sum(len(ids) for key, ids in stored.items() if key not in answered_keys)

    for tenant in tenants:
        numbers = [n for s in sent if s.kind == "autonumber" and s.tenant == tenant for n in s.numbers]
        result.numbers_twice += len(numbers) - len(set(numbers))
    for container in ("registry", "records", "state", "audit"):
        client = service.get_container_client(container)
        result.unknown_tenant_blobs += sum(1 for blob in client.list_blobs() if UNKNOWN_TENANT in blob.name)
    return result


def run_load(
    api: str, function_key: str, connection_string: str, seconds: float, concurrency: int, tenants: int, seed: int = 1
) -> LoadReport:
    keys = prepare(api, function_key, tenant_ids(tenants))
    started = time.monotonic()
    # In a thread of its own: the caller's thread may already run an event loop (Playwright's, in the tests).
    with ThreadPoolExecutor(1) as runner:
        sent = runner.submit(asyncio.run, generate(api, keys, seconds, concurrency, seed)).result()
    report = LoadReport(round(time.monotonic() - started, 2), concurrency, tenants, sent)
    report.reconciliation = reconcile(connection_string, sent, keys)
    return report


def print_report(report: LoadReport) -> None:
    result = report.as_result()
    print(
        f"load: {result['requests']} requests in {report.seconds} s with {report.concurrency} clients over "
        f"{report.tenants} tenants: {result['throughput_per_s']} answers/s"
    )
    for kind, numbers in report.latencies().items():
        print(f"  {kind:<10} {numbers['count']:>7} answered  p50 {numbers['p50_ms']} ms  p99 {numbers['p99_ms']} ms")
    print(f"  statuses: {json.dumps(report.statuses())}")
    r = report.reconciliation
    print(
        f"  reconciliation ({'OK' if r.ok else 'FAILED'}): {r.answered} stored answers; missing {r.missing}, "
        f"duplicated {r.duplicated}, wrong id {r.wrong_id}; auto-numbers twice {r.numbers_twice}; "
        f"unknown tenant's blobs {r.unknown_tenant_blobs}; stored without a 2xx {r.stored_unanswered}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--tenants", type=int, default=4)
    args = parser.parse_args(argv)
    with local_stack({"PACKCLOUD_FORM_RATE_PER_MINUTE": "0"}) as stack:
        report = run_load(
            stack.api, stack.function_key, stack.azurite.connection_string, args.seconds, args.concurrency, args.tenants
        )
    print_report(report)
    write_results("load", report.as_result())
    return 0 if report.reconciliation.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
