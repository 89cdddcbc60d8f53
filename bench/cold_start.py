"""Cold start: a fresh process imports `function_app` and answers its first pixel hit, against a fresh process
importing the very third-party modules that this left loaded (its dependencies alone), in the same run.

Each side runs in new interpreters, alternately, ROUNDS times; the medians are compared. The first request
goes through the registered pixel function to the stack's Azurite (settings, services, the registry read,
the record written), as the first request to a new Azure Functions instance does.

Target: ratio (import + first request) / dependencies' import <= 1.5.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys

import httpx

from bench.common import BROWSER_UA, local_stack, write_results
from devenv.azurite import ROOT
from devenv.demo import demo_dataset

ROUNDS = 7
# Parts of the import timed on their own, within import_s: the crawler-user-agents package (its JSON), the bot
# matcher PackCloud builds from it (shared/capture/bot_list.py), and phonenumbers.
IMPORT_SHARES = ("bot_list_import_s", "bot_matcher_import_s", "phonenumbers_import_s")
ORIGIN = "https://www.contoso.example"

# Runs in a new interpreter: import the app, answer one pixel hit, then list the third-party modules loaded.
APP = """
import json, sys, sysconfig, time
origin, user_agent = sys.argv[1:3]
started = time.perf_counter()
import crawleruseragents  # the bot list's JSON, loaded at import
listed = time.perf_counter()
import shared.capture.bot_list  # PackCloud's one matcher built from it, at import
matcher = time.perf_counter()
import phonenumbers  # libphonenumber's metadata index, for phone fields
phones = time.perf_counter()
import function_app
imported = time.perf_counter()
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
loop.run_until_complete(loop.shutdown_asyncgens())
loop.close()
site = sysconfig.get_paths()["purelib"]
third_party = [name for name, module in list(sys.modules.items())
               if (getattr(module, "__file__", None) or "").startswith(site)]
print(json.dumps({"import_s": imported - started, "first_request_s": answered - imported, "status": status,
                  "bot_list_import_s": listed - started, "bot_matcher_import_s": matcher - listed,
                  "phonenumbers_import_s": phones - matcher,
                  "modules": third_party}))
"""

# Runs in a new interpreter: import the same third-party modules, in the order the app loaded them.
DEPENDENCIES = """
import importlib, json, sys, time
names = json.loads(sys.stdin.read())
started = time.perf_counter()
for name in names:
    try:
        importlib.import_module(name)
    except Exception:
        pass  # a module that only imports as part of its package's own import order
print(json.dumps({"deps_s": time.perf_counter() - started}))
"""


def run(code: str, env: dict[str, str], stdin: str = "") -> dict:
    done = subprocess.run(
        [sys.executable, "-c", code, ORIGIN, BROWSER_UA],
        cwd=ROOT,
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
    with local_stack() as stack:
        with httpx.Client(base_url=stack.api, headers={"x-functions-key": stack.function_key}, timeout=30) as manage:
            manage.put("/manage/tenants/cold", json={}).raise_for_status()
            manage.put("/manage/tenants/cold/datasets/visits", json=demo_dataset(ORIGIN)).raise_for_status()
        env = {key: value for key, value in stack.env.items() if not key.startswith("DEVHOST_")}
        first = run(APP, env)  # warm the file cache, and learn the modules
        if first["status"] != 200:
            raise RuntimeError(f"the first pixel hit answered {first['status']}")
        modules = json.dumps(first["modules"])
        apps, deps = [], []
        for _ in range(ROUNDS):
            apps.append(run(APP, env))
            deps.append(run(DEPENDENCIES, env, modules)["deps_s"])
    import_s = statistics.median(a["import_s"] for a in apps)
    first_request_s = statistics.median(a["first_request_s"] for a in apps)
    deps_s = statistics.median(deps)
    share = {key: round(statistics.median(a[key] for a in apps), 3) for key in IMPORT_SHARES}
    result = {
        "ratio": round((import_s + first_request_s) / deps_s, 3),
        "import_s": round(import_s, 3),
        "first_request_s": round(first_request_s, 3),
        "dependencies_import_s": round(deps_s, 3),
        "third_party_modules": len(first["modules"]),
        "rounds": ROUNDS,
        **share,
    }
    write_results("cold_start", result)
    print(
        f"cold start: import function_app {result['import_s']} s + first pixel hit {result['first_request_s']} s vs "
        f"importing its {result['third_party_modules']} third-party modules alone {result['dependencies_import_s']} s "
        f"-> ratio {result['ratio']} (target <= 1.5); within the import: the bot list {share['bot_list_import_s']} s, "
        f"building its matcher {share['bot_matcher_import_s']} s, phonenumbers {share['phonenumbers_import_s']} s"
    )
    return result


if __name__ == "__main__":
    main()
