"""The host's CPU per form post: what bench/concurrency.py's one-core bound for forms is made of.

In bench/concurrency.py's instance model (the host alone on one core, with PYTHON_THREADPOOL_THREAD_COUNT at the
level; Azurite behind a relay answering STORAGE_RTT_MS later; the clients on the other cores), the demo form dataset
(the rate limiter on, at a rate the run never reaches, so its work is counted), clients posting concurrency.py's
SUBMISSION as JSON at concurrency 1 and the Bicep's level. The figure is the host process's CPU milliseconds per
post (/proc/<pid>/stat, every thread), steady on a shared machine where wall rates are not; the best of ROUNDS.

`--against DIR`: the same measurement, interleaved round by round, of another checkout of PackCloud (the code
before a change), each host on its own port, the same Azurite and dataset. `--profile FILE`: a sampling profile of
the host (py-spy, on-CPU samples of every thread) over one more load at the Bicep's level, as raw collapsed stacks.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from bench.common import local_stack, write_results
from bench.concurrency import HOST_CPUS, ORIGIN, STORAGE_RTT_MS, bicep_concurrency, form_worker, measure, pin
from bench.latency_proxy import delayed_relay
from devenv.azurite import ROOT, connection_string, free_port, wait_for_port
from devenv.demo import demo_form_dataset
from devenv.local_host import stop_local_host

ROUNDS = 3
RATE_PER_MINUTE = "100000"  # the most the settings allow: the limiter works on every post but never refuses one


def start_host(root: Path, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "devhost", "--root", str(root), "--port", str(port)],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, 60, process)
    return process


def profile(pid: int, api: str, level: int, output: Path) -> None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    sampler = subprocess.Popen(
        [spy, "record", "--pid", str(pid), "--format", "raw", "--rate", "250", "--output", str(output)],
        stdout=subprocess.DEVNULL,
    )
    try:
        for _ in range(4):
            measure(pid, form_worker(api), level)
    finally:
        sampler.send_signal(2)  # SIGINT: py-spy writes its file and ends
        sampler.wait(timeout=60)


def level_figures(roots: dict[str, Path], env: dict[str, str], load_pids: tuple[int, ...]) -> dict[str, Any]:
    """Each checkout's round of least CPU at one level, the hosts measured alternately; with every round's
    captures/s, and the CPU the load side (the clients, Azurite, the relay) spent per post, which says whether it
    limited the rate (the rates vary with whatever else shares its core; the host's CPU per post does not)."""
    level = int(env["PYTHON_THREADPOOL_THREAD_COUNT"])
    ports = {name: free_port() for name in roots}
    hosts = {name: start_host(root, ports[name], env) for name, root in roots.items()}
    try:
        for host in hosts.values():
            pin(host.pid, HOST_CPUS)
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in roots}
        for _ in range(ROUNDS):
            for name in roots:
                worker = form_worker(f"http://127.0.0.1:{ports[name]}/api")
                runs[name].append(measure(hosts[name].pid, worker, level, load_pids))
    finally:
        for host in hosts.values():
            stop_local_host(host)
    best: dict[str, Any] = {
        name: {
            **min(points, key=lambda point: point["cpu_ms_per_capture"]),
            "rounds_captures_per_s": [point["captures_per_s"] for point in points],
            "rounds_cpu_ms_per_capture": [point["cpu_ms_per_capture"] for point in points],
        }
        for name, points in runs.items()
    }
    shown = "; ".join(
        f"{name}: {point['cpu_ms_per_capture']:.3f} CPU ms a post (rounds {point['rounds_cpu_ms_per_capture']}), "
        f"load side {point['load_cpu_ms_per_capture']:.2f} ms, captures/s by round {point['rounds_captures_per_s']}"
        for name, point in best.items()
    )
    print(f"concurrency {level}: {shown}", flush=True)
    return best


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.form_cpu", description=__doc__)
    parser.add_argument("--against", type=Path, help="another checkout, measured interleaved with this one")
    parser.add_argument("--profile", type=Path, help="write a py-spy profile (raw collapsed stacks) of this host")
    args = parser.parse_args(argv)
    chosen = bicep_concurrency()
    roots = {"this": ROOT, **({"against": args.against.resolve()} if args.against else {})}
    cpus = os.sched_getaffinity(0)
    others = cpus - HOST_CPUS
    if not HOST_CPUS.issubset(cpus) or not others:
        raise SystemExit("bench.form_cpu needs at least two cores: one for the host, one for everything else")
    result: dict[str, Any] = {"storage_rtt_ms": STORAGE_RTT_MS}
    with local_stack({"PACKCLOUD_FORM_RATE_PER_MINUTE": RATE_PER_MINUTE}) as stack:
        with httpx.Client(base_url=stack.api, headers={"x-functions-key": stack.function_key}, timeout=30) as manage:
            manage.put("/manage/tenants/bench", json={}).raise_for_status()
            manage.put("/manage/tenants/bench/datasets/contact", json=demo_form_dataset(ORIGIN)).raise_for_status()
        pin(stack.azurite.process.pid, others)
        os.sched_setaffinity(0, others)
        try:
            with delayed_relay(stack.azurite.port, STORAGE_RTT_MS, others) as relay:
                env = {**stack.env, "PACKCLOUD_STORAGE_CONNECTION_STRING": connection_string(relay.port)}
                for level in sorted({1, chosen}):
                    threads = {**env, "PYTHON_THREADPOOL_THREAD_COUNT": str(level)}
                    result[str(level)] = level_figures(
                        roots, threads, load_pids=(os.getpid(), stack.azurite.process.pid, relay.pid)
                    )
                    if args.profile and level == chosen:
                        port = free_port()
                        host = start_host(ROOT, port, env | {"PYTHON_THREADPOOL_THREAD_COUNT": str(level)})
                        try:
                            pin(host.pid, HOST_CPUS)
                            profile(host.pid, f"http://127.0.0.1:{port}/api", level, args.profile)
                        finally:
                            stop_local_host(host)
        finally:
            os.sched_setaffinity(0, cpus)
    result["load_average"] = list(os.getloadavg())
    write_results("form_cpu", result)
    return result


if __name__ == "__main__":
    main()
