"""Captures per instance-second at HTTP concurrency 1, 4, 8, 16 and 32: the curve the Bicep's per-instance
concurrency is chosen from (infra/README.md, "Per-instance concurrency").

One host process stands for one instance with one Python worker: the local host, which runs sync functions in a
thread pool of PYTHON_THREADPOOL_THREAD_COUNT threads as the Azure Python worker does, started anew for each level
with as many threads as the level (the Bicep sets both from one number). At each level as many clients as the level
send pixel hits, then form posts, each waiting for its answer before the next, to one Azurite. For each level and
kind the run reports captures per second of the instance, the host process's CPU milliseconds per capture (from
/proc/<pid>/stat, all its threads) and the p50 and p99 latency.

Two curves, each against its own concurrency 1:
- `levels`, the instance as deployed: the host alone on one core (a Flex Consumption instance of 2,048 MB has one;
  the clients, Azurite and the relay get the others), and storage as far away as Blob Storage in the region is:
  Azurite behind a relay that answers each request STORAGE_RTT_MS later (bench/latency_proxy.py;
  BENCH_STORAGE_RTT_MS sets it). The targets are checked on this curve.
- `loopback`: everything sharing the machine's cores and Azurite answering on loopback in about a millisecond, as
  earlier runs measured; shown for comparison. Here a capture's CPU is a third to a half of its wall time, so no
  concurrency can give more than 2 to 3 times the captures of concurrency 1.

The knee is the lowest level that reaches 90% of the best captures per instance-second: more concurrency there buys
latency, not throughput. The targets are checked at the level the Bicep holds: >= 8 x the captures per
instance-second of concurrency 1, with a p99 no more than 2 x concurrency 1's. What carries over to Azure whatever
the storage latency is the host's CPU milliseconds per capture (bench/cost.py projects an instance from it): at
concurrency L, one core serves L requests at once without queueing while L x CPU <= the wall time of one.

On the instance curve the relay also times Azurite itself per storage request (`storage_ms`: from the request's first
bytes forwarded to its answer's first byte, without the relay's hold) and counts the requests per capture. Azurite is
one single-threaded process on a core shared with the clients and the relay, so its answers slow down with
concurrency, which Blob Storage, scaled out and not on the instance's core, would not do. `host_side_speedup` is
derived from that, not measured: the captures/s the level would give if storage's own time stayed at concurrency 1's
(`host_side`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx

from bench.common import BROWSER_UA, Load, Stack, local_stack, run_concurrently, write_results
from bench.latency_proxy import Relay, delayed_relay
from bench.lean_http import Connection, request_bytes
from devenv.azurite import ROOT, connection_string, free_port
from devenv.demo import demo_dataset, demo_form_dataset
from devenv.local_host import start_local_host, stop_local_host

LEVELS = (1, 4, 8, 16, 32)
KINDS = ("pixel", "form")
REQUESTS_AT_ONE = 400  # per kind at concurrency 1; higher levels send at least 25 per client
ROUNDS = 2  # the better round of each level counts: the machine is shared
KNEE_SHARE = 0.9
TARGET_SPEEDUP = 8.0
TARGET_P99_RATIO = 2.0
ORIGIN = "https://www.contoso.example"
PAGE = ORIGIN + "/pricing"
SUBMISSION = {"email": "jane.roe@example.com", "name": "Jane Roe", "topic": "support", "rating": 9, "consent": "yes"}
BICEP = ROOT / "infra" / "modules" / "function-app.bicep"
# A Put Blob of a small record to Blob Storage in the instance's region, answered over the network. An assumption,
# not a measurement (none is possible from here): see infra/README.md, "Per-instance concurrency".
STORAGE_RTT_MS = float(os.environ.get("BENCH_STORAGE_RTT_MS", "10"))
HOST_CPUS = {0}  # one core: what a Flex Consumption instance of 2,048 MB has
SATURATED = 0.9  # the share of their cores' time at which the load side, not the host, sets the pace

Point = dict[str, Any]  # one level's figures for one kind


def bicep_concurrency() -> int:
    """The per-instance HTTP concurrency the Bicep deploys (the default of its parameter)."""
    found = re.search(r"param perInstanceConcurrency int = (\d+)", BICEP.read_text())
    if found is None:
        raise RuntimeError(f"no perInstanceConcurrency parameter in {BICEP.relative_to(ROOT)}")
    return int(found.group(1))


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process, all its threads (fields 14 and 15 of /proc/<pid>/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()  # the command name may hold spaces; fields after it are fixed
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pin(pid: int, cpus: set[int]) -> None:
    """Every thread of a process onto `cpus` (threads it starts later inherit it from theirs)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(int(task.name), cpus)


def client_worker(api: str, request: Callable[[], bytes], expected: int) -> Callable[[], Callable[[], None]]:
    """Each client thread its own kept-alive connection, sending what `request` makes (bench/lean_http.py: the
    clients share a core with storage, and every CPU millisecond they spend is storage's); an answer other than
    `expected` ends the run."""
    path = urlsplit(api).path

    def worker() -> Callable[[], None]:
        connection = Connection(api.removesuffix(path))

        def call() -> None:
            status = connection.exchange(request())
            if status != expected:
                raise RuntimeError(f"{path} answered {status}")

        return call

    return worker


def browser_headers(api: str, **more: str) -> dict[str, str]:
    return {"host": urlsplit(api).netloc, "user-agent": BROWSER_UA, "accept": "*/*", **more}


def pixel_worker(api: str) -> Callable[[], Callable[[], None]]:
    # One visitor per request: every hit is a new capture, as a page view of a new visitor is. All but the visitor
    # id is encoded once.
    target = urlsplit(api).path + "/px/bench/pricing?" + urlencode({"page_url": PAGE, "visitor": "\0"})
    prefix, suffix = request_bytes("GET", target, browser_headers(api, referer=ORIGIN + "/")).split(b"%00", 1)
    return client_worker(api, lambda: prefix + uuid.uuid4().hex.encode() + suffix, 200)


def form_worker(api: str) -> Callable[[], Callable[[], None]]:
    # The same submission each time, each a new capture (no Idempotency-Key): encoded once.
    headers = browser_headers(api, origin=ORIGIN, **{"content-type": "application/json"})
    encoded = request_bytes(
        "POST", urlsplit(api).path + "/forms/bench/contact", headers, json.dumps(SUBMISSION).encode()
    )
    return client_worker(api, lambda: encoded, 201)


def core_times(cpus: set[int]) -> tuple[int, int]:
    """Busy and total clock ticks of `cpus` since boot, every process's (/proc/stat: user nice system idle iowait
    irq softirq steal; guest time is already in user)."""
    busy = total = 0
    for line in Path("/proc/stat").read_text().splitlines():
        name, *ticks = line.split()
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
            values = [int(tick) for tick in ticks[:8]]
            busy += sum(values) - values[3] - values[4]
            total += sum(values)
    return busy, total


def measure(
    pid: int,
    make_worker: Callable[[], Callable[[], None]],
    level: int,
    load_parts: Mapping[str, int] | None = None,
    load_cpus: set[int] | None = None,
    host_cpus: set[int] | None = None,
    relay: Relay | None = None,
) -> Point:
    """One level's figures. `load_parts` names the processes that generate the load and answer for storage (this
    one's client threads, Azurite, the relay): their CPU per capture, each and in all, tells whether they, not the
    host, were the limit. `load_cpus` are the cores they run on: how busy those were, by any process (the machine
    may be shared), says whether they were saturated; `host_cpus`, the host's alone, how busy its core was (on a
    shared machine, by others too: then the host did not have its core to itself). With `relay`, the storage requests
    per capture and upstream's own answer times, as the relay timed them."""
    parts = dict(load_parts or {})
    per_client = max(25, REQUESTS_AT_ONE // level)
    run_concurrently(make_worker, level, 5)  # warm-up: connections, imports, the registry cache
    cores_before, host_cores_before = core_times(load_cpus or set()), core_times(host_cpus or set())
    before, parts_before = cpu_seconds(pid), {name: cpu_seconds(other) for name, other in parts.items()}
    if relay is not None:
        relay.take_storage_times()  # the warm-up's: from here on, the measured load's
    load: Load = run_concurrently(make_worker, level, per_client)
    cpu = cpu_seconds(pid) - before
    by_part = {name: (cpu_seconds(other) - parts_before[name]) * 1000 / load.count for name, other in parts.items()}
    cores_after, host_cores_after = core_times(load_cpus or set()), core_times(host_cpus or set())
    point: Point = {
        "captures_per_s": round(load.rate, 1),
        "cpu_ms_per_capture": round(cpu * 1000 / load.count, 3),
        "load_cpu_ms_per_capture": round(sum(by_part.values()), 3),
        "load_cpu_ms_by_part": {name: round(value, 3) for name, value in by_part.items()},
        "wall_ms": round(sum(load.latencies_ms) / load.count, 2),
        "p50_ms": round(load.percentile(0.5), 2),
        "p99_ms": round(load.percentile(0.99), 2),
        "requests": load.count,
    }
    if load_cpus:
        busy, total = (after - earlier for after, earlier in zip(cores_after, cores_before, strict=True))
        point["load_cores_busy"] = round(busy / total, 3) if total else 0.0
    if host_cpus:
        busy, total = (after - earlier for after, earlier in zip(host_cores_after, host_cores_before, strict=True))
        point["host_cores_busy"] = round(busy / total, 3) if total else 0.0
    if relay is not None:
        taken = relay.take_storage_times()
        storage = Load(taken.requests, load.seconds, [seconds * 1000 for seconds in taken.seconds])
        mean = sum(storage.latencies_ms) / len(storage.latencies_ms) if storage.latencies_ms else float("nan")
        point["storage_ms"] = {
            "p50": round(storage.percentile(0.5), 3),
            "p99": round(storage.percentile(0.99), 3),
            "mean": round(mean, 3),
        }
        point["storage_requests_per_capture"] = round(taken.requests / load.count, 3)
    return point


def host_side(curve: dict[int, Point], level: int) -> tuple[float, float]:
    """Derived, not measured: `level`'s mean capture wall time (ms) with the growth of storage's own answer time over
    concurrency 1's taken out (mean wall - (mean storage ms at `level` - at 1) x storage requests per capture), and
    the speedup over concurrency 1's captures/s that `level` clients would give at that wall time (level / wall).
    It models storage that does not queue: what the level would give if only the host, not Azurite, slowed down."""
    one, point = curve[1], curve[level]
    growth = point["storage_ms"]["mean"] - one["storage_ms"]["mean"]
    wall = point["wall_ms"] - growth * point["storage_requests_per_capture"]
    return wall, level * 1000 / wall / one["captures_per_s"]


def knee(curve: dict[int, Point]) -> int:
    best = max(point["captures_per_s"] for point in curve.values())
    return min(level for level, point in curve.items() if point["captures_per_s"] >= KNEE_SHARE * best)


def summarise(
    levels: dict[str, dict[int, Point]], chosen: int, load_cores: int, host_shares_them: bool, host_cores: int = 0
) -> dict[str, Any]:
    """The ratios the targets are about, at the Bicep's level, for the worse of the two kinds; and what limited
    them: `core_bound_speedup`, the most one core could give over concurrency 1 (its captures/s at the CPU cost
    per capture, against concurrency 1's); `load_limited`, whether the cores of the load generator and storage
    were at least 90% busy (by any process: then the curve shows them, not the instance), with
    `load_cores_busy` that share and `load_cores_busy_own` the part of it this benchmark's processes account for
    (the rest is other work on a shared machine); and `load_cpu_ms_by_part`, where the load side's CPU went. With
    `host_cores` (the instance model), `host_cores_busy` and `host_cores_busy_own` say the same of the host's core:
    if others kept it busy, the host did not have it to itself and the rates understate the instance. Where the
    relay timed storage: `storage_mean_ms` (upstream's own answer time, mean, at 1 and at the Bicep's level),
    `storage_adjusted_wall_ms` and `host_side_speedup` (derived: `host_side`, at the Bicep's level and by level)."""
    speedups = {kind: curve[chosen]["captures_per_s"] / curve[1]["captures_per_s"] for kind, curve in levels.items()}
    p99_ratios = {kind: curve[chosen]["p99_ms"] / curve[1]["p99_ms"] for kind, curve in levels.items()}
    bound = {
        kind: 1000 / curve[chosen]["cpu_ms_per_capture"] / curve[1]["captures_per_s"] for kind, curve in levels.items()
    }

    def own_share(point: Point) -> float:
        per_capture = point["load_cpu_ms_per_capture"] + (point["cpu_ms_per_capture"] if host_shares_them else 0)
        return float(per_capture * point["captures_per_s"] / 1000 / load_cores)

    return {
        "bicep_concurrency": chosen,
        "knee": {kind: knee(curve) for kind, curve in levels.items()},
        "speedup": {kind: round(value, 2) for kind, value in speedups.items()},
        "p99_ratio": {kind: round(value, 2) for kind, value in p99_ratios.items()},
        "min_speedup": round(min(speedups.values()), 2),
        "max_p99_ratio": round(max(p99_ratios.values()), 2),
        "core_bound_speedup": {kind: round(value, 2) for kind, value in bound.items()},
        "load_limited": {kind: curve[chosen]["load_cores_busy"] >= SATURATED for kind, curve in levels.items()},
        "load_cores_busy": {kind: curve[chosen]["load_cores_busy"] for kind, curve in levels.items()},
        "load_cores_busy_own": {kind: round(own_share(curve[chosen]), 3) for kind, curve in levels.items()},
        "load_cpu_ms_by_part": {kind: curve[chosen]["load_cpu_ms_by_part"] for kind, curve in levels.items()},
        **(
            {
                "host_cores_busy": {kind: curve[chosen]["host_cores_busy"] for kind, curve in levels.items()},
                "host_cores_busy_own": {
                    kind: round(
                        curve[chosen]["cpu_ms_per_capture"] * curve[chosen]["captures_per_s"] / 1000 / host_cores, 3
                    )
                    for kind, curve in levels.items()
                },
            }
            if host_cores
            else {}
        ),
        **(
            {
                "storage_mean_ms": {
                    kind: {"1": curve[1]["storage_ms"]["mean"], str(chosen): curve[chosen]["storage_ms"]["mean"]}
                    for kind, curve in levels.items()
                },
                "storage_requests_per_capture": {
                    kind: curve[chosen]["storage_requests_per_capture"] for kind, curve in levels.items()
                },
                "storage_adjusted_wall_ms": {
                    kind: round(host_side(curve, chosen)[0], 2) for kind, curve in levels.items()
                },
                "host_side_speedup": {kind: round(host_side(curve, chosen)[1], 2) for kind, curve in levels.items()},
                "host_side_speedup_by_level": {
                    kind: {level: round(host_side(curve, level)[1], 2) for level in curve}
                    for kind, curve in levels.items()
                },
            }
            if all("storage_ms" in point for curve in levels.values() for point in curve.values())
            else {}
        ),
    }


def curve(
    stack: Stack,
    storage_port: int,
    host_cpus: set[int] | None,
    load_parts: Mapping[str, int],
    load_cpus: set[int],
    relay: Relay | None = None,
) -> dict[str, dict[int, Point]]:
    """Each kind's points at every level, the host reaching storage on `storage_port` (on `host_cpus`, if given;
    `relay`, if storage is behind it, times storage's answers)."""
    levels: dict[str, dict[int, Point]] = {kind: {} for kind in KINDS}
    env = {**stack.env, "PACKCLOUD_STORAGE_CONNECTION_STRING": connection_string(storage_port)}
    for level in LEVELS:
        port = free_port()
        host = start_local_host(port, {**env, "PYTHON_THREADPOOL_THREAD_COUNT": str(level)})
        if host_cpus:
            pin(host.pid, host_cpus)
        api = f"http://127.0.0.1:{port}/api"
        try:
            for kind, worker in (("pixel", pixel_worker(api)), ("form", form_worker(api))):
                rounds = [
                    measure(host.pid, worker, level, load_parts, load_cpus, host_cpus, relay) for _ in range(ROUNDS)
                ]
                levels[kind][level] = max(rounds, key=lambda point: point["captures_per_s"])
                point = levels[kind][level]
                split = ", ".join(f"{name} {ms:.2f}" for name, ms in point["load_cpu_ms_by_part"].items())
                print(
                    f"concurrency {level:2d} {kind:5s}: {point['captures_per_s']:6.1f} captures/s, "
                    f"{point['cpu_ms_per_capture']:.2f} CPU ms each (load side {point['load_cpu_ms_per_capture']:.2f}: "
                    f"{split}; its cores {point['load_cores_busy']:.0%} busy"
                    + (f"; the host's {point['host_cores_busy']:.0%}" if host_cpus else "")
                    + f"), p50 {point['p50_ms']:.1f} ms, "
                    f"p99 {point['p99_ms']:.1f} ms"
                    + (
                        f"; storage's own ms p50 {point['storage_ms']['p50']:.1f} p99 {point['storage_ms']['p99']:.1f} "
                        f"mean {point['storage_ms']['mean']:.1f}, {point['storage_requests_per_capture']:.2f} a capture"
                        if "storage_ms" in point
                        else ""
                    ),
                    flush=True,
                )
        finally:
            stop_local_host(host)
    return levels


def as_json(levels: dict[str, dict[int, Point]]) -> dict[str, dict[str, Point]]:
    return {kind: {str(level): point for level, point in points.items()} for kind, points in levels.items()}


def main() -> dict[str, Any]:
    chosen = bicep_concurrency()
    cpus = os.sched_getaffinity(0)
    others = cpus - HOST_CPUS
    if not HOST_CPUS.issubset(cpus) or not others:
        raise SystemExit("bench.concurrency needs at least two cores: one for the host, one for everything else")
    with local_stack({"PACKCLOUD_FORM_RATE_PER_MINUTE": "0"}) as stack:
        with httpx.Client(base_url=stack.api, headers={"x-functions-key": stack.function_key}, timeout=30) as manage:
            manage.put("/manage/tenants/bench", json={}).raise_for_status()
            manage.put("/manage/tenants/bench/datasets/pricing", json=demo_dataset(ORIGIN)).raise_for_status()
            manage.put("/manage/tenants/bench/datasets/contact", json=demo_form_dataset(ORIGIN)).raise_for_status()
        parts = {"load_generator": os.getpid(), "azurite": stack.azurite.process.pid}
        print("loopback: every process on every core, Azurite answering at once", flush=True)
        loopback = curve(stack, stack.azurite.port, None, parts, cpus)
        print(f"instance: the host on core {sorted(HOST_CPUS)}, storage {STORAGE_RTT_MS:g} ms away", flush=True)
        pin(stack.azurite.process.pid, others)
        os.sched_setaffinity(0, others)  # this process's client threads, started from here on
        try:
            with delayed_relay(stack.azurite.port, STORAGE_RTT_MS, others) as relay:
                instance = curve(stack, relay.port, HOST_CPUS, {**parts, "relay": relay.pid}, others, relay)
        finally:
            os.sched_setaffinity(0, cpus)
    result: dict[str, Any] = {
        "storage_rtt_ms": STORAGE_RTT_MS,
        "host_cores": len(HOST_CPUS),
        "levels": as_json(instance),
        **summarise(instance, chosen, len(others), host_shares_them=False, host_cores=len(HOST_CPUS)),
        "loopback": {"levels": as_json(loopback), **summarise(loopback, chosen, len(cpus), host_shares_them=True)},
    }
    write_results("concurrency", result)
    for name, figures in (("loopback", result["loopback"]), (f"instance, storage {STORAGE_RTT_MS:g} ms", result)):
        print(
            f"concurrency ({name}): knee {figures['knee']}; at the Bicep's {chosen}: {figures['speedup']} x "
            f"concurrency 1 (target >= {TARGET_SPEEDUP:g}), p99 {figures['p99_ratio']} x (target <= "
            f"{TARGET_P99_RATIO:g}); one core's bound {figures['core_bound_speedup']} x; load side CPU ms per "
            f"capture by part {figures['load_cpu_ms_by_part']}; its cores busy {figures['load_cores_busy']} "
            f"(this benchmark's processes {figures['load_cores_busy_own']}), saturated: {figures['load_limited']}"
            + (
                f"; the host's core busy {figures['host_cores_busy']} (the host {figures['host_cores_busy_own']})"
                if "host_cores_busy" in figures
                else ""
            )
            + (
                f"; storage's own mean ms (Azurite, without the relay's hold) {figures['storage_mean_ms']}, "
                f"{figures['storage_requests_per_capture']} a capture; DERIVED, not measured (storage that does not "
                f"queue): wall ms with storage's growth over concurrency 1 removed "
                f"{figures['storage_adjusted_wall_ms']}, host-side speedup {figures['host_side_speedup']} x "
                f"(by level {figures['host_side_speedup_by_level']})"
                if "host_side_speedup" in figures
                else ""
            )
        )
    return result


if __name__ == "__main__":
    main()
