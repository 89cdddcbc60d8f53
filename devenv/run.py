"""`make run`: Azurite, the local host on 127.0.0.1:7071, a demo tenant and dataset, and the demo page.

Ctrl-C stops everything it started. Local secrets (function keys, the master key, the demo tenant's keys)
are generated on first run into files the repository ignores, readable only by their owner.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import sys
import time
from pathlib import Path

from devenv.azurite import ROOT, start_azurite
from devenv.demo import (
    DEMO_DATASET,
    DEMO_ELSEWHERE,
    DEMO_FORM,
    DEMO_SIGNINS,
    DEMO_TENANT,
    DEMO_USER,
    create_demo,
    create_demo_elsewhere,
    serve_demo_page,
)
from devenv.local_host import start_local_host, stop_local_host

HOST_PORT = 7071
AZURITE_PORT = 10000
PAGE_PORT = 8080
LOCAL_SETTINGS = ROOT / "local.settings.json"
STATE = ROOT / ".state"
DEMO_KEYS = STATE / "demo-tenant.json"


def write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)


def local_settings() -> dict[str, str]:
    """local.settings.json, created from the sample with fresh random keys the first time."""
    if not LOCAL_SETTINGS.exists():
        sample = json.loads((ROOT / "local.settings.sample.json").read_text(encoding="utf-8"))
        values = sample["Values"]
        values["PACKCLOUD_MASTER_KEY"] = secrets.token_urlsafe(48)
        values["DEVHOST_FUNCTION_KEY"] = secrets.token_urlsafe(24)
        values["DEVHOST_MASTER_KEY"] = secrets.token_urlsafe(24)
        write_private(LOCAL_SETTINGS, json.dumps(sample, indent=2) + "\n")
        print(f"created {LOCAL_SETTINGS.name} with fresh local keys")
    return dict(json.loads(LOCAL_SETTINGS.read_text(encoding="utf-8"))["Values"])


def demo_keys(api_base: str, function_key: str, page_origin: str) -> dict[str, str]:
    tenant = create_demo(api_base, function_key, page_origin)
    elsewhere = create_demo_elsewhere(api_base, function_key)
    known = dict(json.loads(DEMO_KEYS.read_text(encoding="utf-8"))) if DEMO_KEYS.exists() else {}
    keys = {
        "api_key": tenant.get("api_key") or known.get("api_key"),
        "signing_key": tenant.get("signing_key") or known.get("signing_key"),
        "elsewhere_api_key": elsewhere.get("api_key") or known.get("elsewhere_api_key"),
    }
    if "api_key" in tenant or "api_key" in elsewhere:
        write_private(DEMO_KEYS, json.dumps(keys, indent=2) + "\n")
    lost = "(shown once when the tenant was created; delete .azurite/ to start afresh)"
    return {name: value or lost for name, value in keys.items()}


def _interrupt(*_: object) -> None:
    # SIGTERM (from a process manager) stops the stack exactly as Ctrl-C does.
    raise KeyboardInterrupt


def main() -> int:
    values = local_settings()
    env = {**os.environ, **values}
    azurite = start_azurite(port=AZURITE_PORT, location=ROOT / ".azurite")
    page = None
    host = None
    try:
        host = start_local_host(HOST_PORT, env, quiet=False)
        api_base = f"http://127.0.0.1:{HOST_PORT}/api"
        page_origin = f"http://127.0.0.1:{PAGE_PORT}"
        keys = demo_keys(api_base, values["DEVHOST_FUNCTION_KEY"], page_origin)
        page = serve_demo_page(PAGE_PORT, api_base)
        print(
            "\nPackCloud is running (Ctrl-C stops it)\n"
            f"  demo page        {page_origin}/   (open it in a browser: one page view is recorded)\n"
            f"  demo SPA         {page_origin}/app   (a single-page app: page views, custom events)\n"
            f"  demo form        {page_origin}/contact   (with and without JavaScript)\n"
            f"  privacy notice   {api_base}/notice/{DEMO_TENANT}/{DEMO_FORM}   (each dataset has one)\n"
            f"  API              {api_base}   (routes: see README.md and openapi.yaml)\n"
            f"  Azurite (blob)   http://127.0.0.1:{AZURITE_PORT}/devstoreaccount1   data in .azurite/\n"
            f"  manage key       x-functions-key: {values['DEVHOST_FUNCTION_KEY']}\n"
            f"  demo tenant      {DEMO_TENANT}, datasets {DEMO_DATASET}, {DEMO_FORM} and {DEMO_SIGNINS}\n"
            f"  demo tenant key  Authorization: Bearer {keys['api_key']}\n"
            f"  recorded hits    make show   (a headless browser counts as a bot; `make run DEBUG=1` logs why)\n"
            f"  a sign-in        curl -H 'Authorization: Bearer {keys['api_key']}' -H 'content-type: "
            f'application/json\' -d \'{{"user_id": "{DEMO_USER}", "ip": "193.0.6.139"}}\' '
            f"{api_base}/geologin/{DEMO_TENANT}/{DEMO_SIGNINS}\n"
            f"  a 421            curl -H 'Authorization: Bearer {keys['elsewhere_api_key']}' "
            f"{api_base}/sync/{DEMO_ELSEWHERE}/{DEMO_DATASET}   ({DEMO_ELSEWHERE} is homed in us)\n",
            flush=True,
        )
        signal.signal(signal.SIGTERM, _interrupt)
        while host.poll() is None:
            time.sleep(0.5)
        print(f"the local host stopped with exit code {host.returncode}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        # A second Ctrl-C (or the SIGTERM a terminal sends the whole group) must not cut the cleanup short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if page is not None:
            page.shutdown()
        if host is not None and host.poll() is None:
            stop_local_host(host)
        azurite.stop()
        print("stopped Azurite, the local host and the demo page")


if __name__ == "__main__":
    raise SystemExit(main())
