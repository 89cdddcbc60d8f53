"""The README's set-up from a newcomer's side, in a fresh clone: `make run` comes up, the demo page stores one
page view from a normal browser and none from a headless one (which `make run DEBUG=1` explains), `make show`
and `make purge` work as written (they read the local.settings.json that `make run` wrote), the demo site has
no console error, and the demo's other-region tenant gets a 421 that names a URL."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.factories import BROWSER_UA, ROOT

pytestmark = pytest.mark.browser

# The installs are linked from this checkout, and current: `-o` keeps make from redoing them (`npm ci` through the link
# would empty the shared install).
INSTALLED = ["-o", ".venv/.installed", "-o", "node_modules/.installed"]
# The fixed ports `make run` uses (devenv/run.py): the README prints them.
PORTS = {"host": 7071, "azurite": 10000, "page": 8080}


def port_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture(scope="module")
def running(tmp_path_factory) -> Iterator[tuple[Path, str]]:
    """`make run DEBUG=1` in a fresh clone of this checkout; the installs are the checkout's own (linked, with
    their stamps touched so that make finds them current), as a second `make run` on one machine would."""
    busy = [name for name, port in PORTS.items() if not port_free(port)]
    assert not busy, f"make run needs ports {PORTS}; in use: {busy} (stop a running `make run` first)"
    clone = tmp_path_factory.mktemp("newcomer") / "packcloud"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
    for name in (".venv", "node_modules"):
        (clone / name).symlink_to(ROOT / name)
    for stamp in (".venv/.installed", "node_modules/.installed"):
        (clone / stamp).touch()
    env = {name: value for name, value in os.environ.items() if not name.startswith(("PACKCLOUD_", "DEVHOST_"))}
    log_path = clone / "make-run.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["make", *INSTALLED, "run", "DEBUG=1"],
            cwd=clone,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 180
            while "PackCloud is running" not in log_path.read_text(errors="replace"):
                assert process.poll() is None, log_path.read_text(errors="replace")[-3000:]
                assert time.monotonic() < deadline, "make run did not come up in 180 s"
                time.sleep(0.5)
            yield clone, log_path
        finally:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def make(clone: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith(("PACKCLOUD_", "DEVHOST_"))}
    return subprocess.run(
        ["make", "-s", *INSTALLED, *args], cwd=clone, env=env, capture_output=True, text=True, timeout=300
    )


def shown_records(clone: Path) -> int:
    result = make(clone, "show")
    assert result.returncode == 0, result.stderr
    return int(re.search(r"(\d+) record\(s\)", result.stderr).group(1))


def pixel_answer(page, url: str) -> None:
    with page.expect_response(lambda response: "/api/px/" in response.url and "snippet" not in response.url):
        page.goto(url)


def test_the_demo_page_stores_one_view_from_a_browser_and_none_from_a_headless_one(browser, running):
    clone, log_path = running
    page_url = f"http://127.0.0.1:{PORTS['page']}/"
    before = shown_records(clone)

    headless = browser.new_context().new_page()  # HeadlessChrome: a bot
    pixel_answer(headless, page_url)
    assert shown_records(clone) == before
    assert "pixel hit not recorded: bot" in log_path.read_text(errors="replace")

    errors: list[str] = []
    normal = browser.new_context(user_agent=BROWSER_UA).new_page()
    normal.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    pixel_answer(normal, page_url)
    normal.wait_for_timeout(500)  # the favicon request comes after the page's load
    assert shown_records(clone) == before + 1
    assert "pixel hit: recorded" in log_path.read_text(errors="replace")
    assert errors == []  # no 404 for favicon.ico, nor anything else


def test_purge_and_audit_verify_run_as_written(running):
    clone, _ = running
    purged = make(clone, "purge", "DRY_RUN=1")
    assert purged.returncode == 0, purged.stderr
    assert "would delete 0 record(s)" in purged.stderr
    verified = make(clone, "audit-verify", "TENANT=demo")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.startswith("demo: ")


def test_the_demo_421_names_the_other_regions_url(running):
    clone, log_path = running
    printed = log_path.read_text(errors="replace")
    key, url = re.search(r"a 421\s+curl -H 'Authorization: Bearer ([^']+)' (\S+)", printed).groups()
    answer = httpx.get(url, headers={"authorization": f"Bearer {key}"}, timeout=30)
    assert answer.status_code == 421
    body = answer.json()
    assert body["region"] == "us"
    sample = json.loads((clone / "local.settings.sample.json").read_text())["Values"]
    assert body["base_url"] == json.loads(sample["PACKCLOUD_REGION_URLS"])["us"]
