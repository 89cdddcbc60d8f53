"""python -m devhost [--app function_app:app] [--host 127.0.0.1] [--port 7071] [--root DIR]"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
from pathlib import Path

import uvicorn

from devhost.routes import http_routes, timer_functions
from devhost.server import FunctionHost, worker_threads


def load_local_settings(root: Path) -> None:
    """As Core Tools does: the Values of local.settings.json, without overriding the environment."""
    path = root / "local.settings.json"
    if path.exists():
        for name, value in json.loads(path.read_text(encoding="utf-8")).get("Values", {}).items():
            os.environ.setdefault(name, str(value))


def route_prefix(root: Path) -> str:
    path = root / "host.json"
    if not path.exists():
        return "api"
    return str(
        json.loads(path.read_text(encoding="utf-8")).get("extensions", {}).get("http", {}).get("routePrefix", "api")
    )


def required(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise SystemExit(f"devhost: set {name} (the key the local host checks; Azure checks its own)")
    return value


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m devhost", description=__doc__)
    parser.add_argument("--app", default="function_app:app", help="module:attribute of the func.FunctionApp")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7071)
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="folder with host.json and the app")
    parser.add_argument(
        "--log-level",
        default=os.environ.get("DEVHOST_LOG_LEVEL", "warning"),
        choices=["debug", "info", "warning", "error"],
        help="of the host and of the app's loggers (default: DEVHOST_LOG_LEVEL, else warning)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    root = args.root.resolve()
    load_local_settings(root)
    function_key, master_key = required("DEVHOST_FUNCTION_KEY"), required("DEVHOST_MASTER_KEY")
    sys.path.insert(0, str(root))
    module_name, _, attribute = args.app.partition(":")
    app = getattr(importlib.import_module(module_name), attribute or "app")
    try:
        threads = worker_threads(os.environ)
    except ValueError as error:
        raise SystemExit(f"devhost: {error}") from None
    host = FunctionHost(
        http_routes(app), timer_functions(app), route_prefix(root), function_key, master_key, threads=threads
    )
    print(
        f"devhost: serving {len(host.routes)} HTTP function(s) on http://{args.host}:{args.port}/{route_prefix(root)}",
        flush=True,
    )
    # No access log: URLs and client addresses can carry personal data. No proxy headers: the client address
    # must be the TCP peer, or a caller could choose the address its data is recorded under.
    uvicorn.run(
        host,
        host=args.host,
        port=args.port,
        access_log=False,
        proxy_headers=False,
        log_level=args.log_level,
        lifespan="on",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
