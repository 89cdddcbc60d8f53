"""Cold start: a fresh process imports `function_app` and answers its first pixel hit, against a fresh process
importing the very third-party modules that this left loaded (its dependencies alone), in the same run.

Each side runs in new interpreters, alternately, ROUNDS times; the medians are compared. The first request
goes through the registered pixel function to the stack's Azurite (settings, services, the registry read,
the record written), as the first request to a new Azure Functions instance does. The app runs from a copy
packed as `make deploy` packs it, with its modules' bytecode (infra/bytecode.py). The CPU time of each
side's import is reported too (`cpu_import_ratio`, without the first request): on a machine shared with
other work it moves less than the wall clock does.
`models_built_by_first_request` names the registry models built on first use (shared/registry/models.py,
ON_FIRST_USE, and the registration's region in shared/registry/store.py) that the first pixel hit built nonetheless:
none, or the import's saving has moved onto the request.

Target: ratio (import + first request) / dependencies' import <= 1.2.

The app imports with the garbage collector off and freezes what it made (shared/core/startup.py), which also
speeds up the third-party imports within it. `ratio_collector_off_on_both_sides` gives the collector's saving to
the other side too (the dependencies imported with the collector off): what PackCloud's own code costs, reported
beside the ratio, not part of it.

Then the first request alone again, ROUNDS times, with the app's storage behind the latency relay (storage
STORAGE_RTT_MS away, as in concurrency.py's instance model; `first_request_far_s`): what the round trips the first
request waits for cost where storage is not on loopback. It is reported, not part of the ratio.

`python -m bench.cold_start --modules [DIR]` prints where the import of function_app (of the checkout in DIR,
this one by default) spends its time, by module: the self time of each (`python -X importtime`, the least of
MODULE_RUNS runs), the app's own modules marked.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from bench.common import BROWSER_UA, local_stack, write_results
from bench.latency_proxy import delayed_relay
from devenv.azurite import ROOT, connection_string
from devenv.demo import demo_dataset

ROUNDS = 7
MODULE_RUNS, TOP_MODULES = 7, 15
# Parts of the import timed on their own, within import_s: making the bot matcher (from the data `make bot-pattern`
# writes from the crawler-user-agents list: shared/capture/bot_pattern.py), and phonenumbers.
IMPORT_SHARES = ("bot_matcher_import_s", "phonenumbers_import_s")
ORIGIN = "https://www.contoso.example"
# The first request again with storage this far away (bench/latency_proxy.py, as concurrency.py's instance model):
# on loopback a storage round trip is about a millisecond, so how many the first request waits for does not show.
STORAGE_RTT_MS = float(os.environ.get("BENCH_STORAGE_RTT_MS", "10"))

# Runs in a new interpreter: import the app, answer one pixel hit, then list the third-party modules loaded.
APP = """
import json, sys, sysconfig, time
origin, user_agent = sys.argv[1:3]
started, cpu_started = time.perf_counter(), time.process_time()
import shared.capture.bot_pattern  # the bot matcher, made at import
matcher = time.perf_counter()
import phonenumbers  # libphonenumber's metadata index, for phone fields
phones = time.perf_counter()
import function_app
imported, cpu_imported = time.perf_counter(), time.process_time()
import asyncio
import azure.functions as func
loop = asyncio.new_event_loop()  # the worker's, running before any request (the pixel is an async function)
function = next(f for f in function_app.app.get_functions() if f.get_function_name() == "pixel")
request = func.HttpRequest(
    "GET", "http://localhost/api/px/cold/visits", params={"visitor": "v1", "page_url": origin + "/"},
    headers={"user-agent": user_agent, "referer": origin + "/"}, route_params={"tenant": "cold", "dataset": "visits"},
    body=b"",
)
status = loop.run_until_complete(function.get_user_function()(request)).status_code
answered = time.perf_counter()
from shared.registry import models, store  # which of the models built on first use the first request built
first_use = [name for name in ("Dataset", "TenantIn", "KeyRotation") if getattr(models, name).__pydantic_complete__]
first_use += ["_Registered"] if store._Registered.__pydantic_complete__ else []
loop.run_until_complete(loop.shutdown_asyncgens())
loop.close()
site = sysconfig.get_paths()["purelib"]
third_party = [name for name, module in list(sys.modules.items())
               if (getattr(module, "__file__", None) or "").startswith(site)]
print(json.dumps({"import_s": imported - started, "first_request_s": answered - imported, "status": status,
                  "cpu_import_s": cpu_imported - cpu_started,
                  "bot_matcher_import_s": matcher - started,
                  "phonenumbers_import_s": phones - matcher,
                  "models_built_by_first_request": first_use,
                  "modules": third_party}))
"""

# Runs in a new interpreter: import the same third-party modules, in the order the app loaded them.
DEPENDENCIES = """
import importlib, json, sys, time
names = json.loads(sys.stdin.read())
started, cpu_started = time.perf_counter(), time.process_time()
for name in names:
    try:
        importlib.import_module(name)
    except Exception:
        pass  # a module that only imports as part of its package's own import order
print(json.dumps({"deps_s": time.perf_counter() - started, "cpu_s": time.process_time() - cpu_started}))
"""
# The same, with the garbage collector off as the app's own import has it (shared/core/startup.py): what the
# app's own code costs once the collector's saving is counted on both sides. Reported, not part of the ratio.
DEPENDENCIES_COLLECTOR_OFF = "import gc\ngc.disable()\n" + DEPENDENCIES


def deployed_copy(into: Path) -> Path:
    """The app as `make deploy` packs it: PackCloud's modules with their bytecode compiled by infra/bytecode.py
    (the package runs read-only in Azure, so it carries its own); the dependencies are the environment's."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("shared", "functions"):
        shutil.copytree(ROOT / package, into / package, ignore=ignore)
    for name in ("function_app.py", "host.json"):
        shutil.copy2(ROOT / name, into / name)
    subprocess.run(
        [sys.executable, str(ROOT / "infra" / "bytecode.py"), "--dir", str(into)], check=True, capture_output=True
    )
    return into


def run(code: str, env: dict[str, str], stdin: str = "", cwd: Path = ROOT) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", code, ORIGIN, BROWSER_UA],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"cold-start probe failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> dict[str, object]:
    with local_stack() as stack, tempfile.TemporaryDirectory() as package:
        app = deployed_copy(Path(package))
        with httpx.Client(base_url=stack.api, headers={"x-functions-key": stack.function_key}, timeout=30) as manage:
            manage.put("/manage/tenants/cold", json={}).raise_for_status()
            manage.put("/manage/tenants/cold/datasets/visits", json=demo_dataset(ORIGIN)).raise_for_status()
        env = {key: value for key, value in stack.env.items() if not key.startswith("DEVHOST_")}
        first = run(APP, env, cwd=app)  # warm the file cache, and learn the modules
        if first["status"] != 200:
            raise RuntimeError(f"the first pixel hit answered {first['status']}")
        modules = json.dumps(first["modules"])
        apps, deps, deps_collector_off = [], [], []
        for _ in range(ROUNDS):
            apps.append(run(APP, env, cwd=app))
            deps.append(run(DEPENDENCIES, env, modules))
            deps_collector_off.append(run(DEPENDENCIES_COLLECTOR_OFF, env, modules))
        with delayed_relay(stack.azurite.port, STORAGE_RTT_MS) as relay:
            far = {**env, "PACKCLOUD_STORAGE_CONNECTION_STRING": connection_string(relay.port)}
            remote = [run(APP, far, cwd=app) for _ in range(ROUNDS)]
    import_s = statistics.median(a["import_s"] for a in apps)
    first_request_s = statistics.median(a["first_request_s"] for a in apps)
    deps_s = statistics.median(d["deps_s"] for d in deps)
    deps_collector_off_s = statistics.median(d["deps_s"] for d in deps_collector_off)
    cpu_ratio = statistics.median(a["cpu_import_s"] for a in apps) / statistics.median(d["cpu_s"] for d in deps)
    result = {
        "ratio": round((import_s + first_request_s) / deps_s, 3),
        "cpu_import_ratio": round(cpu_ratio, 3),
        "import_s": round(import_s, 3),
        "first_request_s": round(first_request_s, 3),
        "dependencies_import_s": round(deps_s, 3),
        "dependencies_import_collector_off_s": round(deps_collector_off_s, 3),
        "ratio_collector_off_on_both_sides": round((import_s + first_request_s) / deps_collector_off_s, 3),
        "third_party_modules": len(first["modules"]),
        "rounds": ROUNDS,
        **{key: round(statistics.median(a[key] for a in apps), 3) for key in IMPORT_SHARES},
        "models_built_by_first_request": first["models_built_by_first_request"],
        "storage_rtt_ms": STORAGE_RTT_MS,
        "first_request_far_s": round(statistics.median(a["first_request_s"] for a in remote), 3),
    }
    write_results("cold_start", result)
    print(
        f"cold start: import function_app {result['import_s']} s + first pixel hit {result['first_request_s']} s vs "
        f"importing its {result['third_party_modules']} third-party modules alone {result['dependencies_import_s']} s "
        f"-> ratio {result['ratio']} (target <= 1.2); CPU time of the imports alone: ratio {result['cpu_import_ratio']}"
        f"; against the modules imported with the collector off too, as the app's import has it "
        f"({result['dependencies_import_collector_off_s']} s): ratio {result['ratio_collector_off_on_both_sides']}"
        f"; within the import: making the bot matcher "
        f"{result['bot_matcher_import_s']} s, phonenumbers {result['phonenumbers_import_s']} s; the first pixel hit "
        f"with storage {STORAGE_RTT_MS:g} ms away {result['first_request_far_s']} s"
    )
    return result


def module_breakdown(root: Path = ROOT) -> list[tuple[str, float, bool]]:
    """(module, self milliseconds, one of the app's own) of importing function_app in `root`, largest first."""
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith("PACKCLOUD_")},
        "PACKCLOUD_REGION": "eu",
        "PACKCLOUD_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true",
        "PACKCLOUD_MASTER_KEY": secrets.token_urlsafe(48),
    }
    least: dict[str, int] = {}
    for _ in range(MODULE_RUNS):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "import function_app"],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        for line in done.stderr.splitlines():
            fields = line.removeprefix("import time:").split("|")
            if len(fields) == 3 and fields[0].strip().isdigit():
                name = fields[2].strip()
                least[name] = min(int(fields[0]), least.get(name, sys.maxsize))
    own = ("shared", "functions", "function_app")
    ordered = sorted(least.items(), key=lambda item: -item[1])
    return [(name, us / 1000, name.split(".")[0] in own) for name, us in ordered]


def print_breakdown(root: Path) -> None:
    modules = module_breakdown(root)
    own_ms = sum(ms for _, ms, own in modules if own)
    total_ms = sum(ms for _, ms, _ in modules)
    print(
        f"import function_app in {root}: {total_ms:.0f} ms in {len(modules)} modules (self times, least of "
        f"{MODULE_RUNS} runs), of which the app's own {own_ms:.0f} ms in {sum(own for *_, own in modules)} modules"
    )
    for name, ms, own in modules[:TOP_MODULES]:
        print(f"  {ms:6.1f} ms  {name}{'  (own)' if own else ''}")


if __name__ == "__main__":
    if "--modules" in sys.argv:
        arguments = sys.argv[sys.argv.index("--modules") + 1 :]
        print_breakdown(Path(arguments[0]) if arguments else ROOT)
    else:
        main()
