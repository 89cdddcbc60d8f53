"""The local host over real HTTP, with a sample function app of its own (how it reads routes and schedules is
in tests/unit/test_devhost.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from devenv.azurite import free_port, wait_for_port
from tests.factories import DEVHOST_SAMPLE_APP as SAMPLE

KEY, MASTER = "sample-function-key", "sample-master-key"


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Iterator[tuple[str, Path, subprocess.Popen]]:
    folder = tmp_path_factory.mktemp("devhost")
    port = free_port()
    env = {
        **os.environ,
        "DEVHOST_FUNCTION_KEY": KEY,
        "DEVHOST_MASTER_KEY": MASTER,
        "SAMPLE_TIMER_FILE": str(folder / "ticks"),
        "SAMPLE_SETTING_FILE": str(folder / "setting"),
        "SAMPLE_SCHEDULE": "0 0 0 1 1 *",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "devhost", "--root", str(SAMPLE), "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    wait_for_port(port, 60, process)
    yield f"http://127.0.0.1:{port}", folder, process
    process.terminate()
    process.wait(timeout=15)


def test_routes_params_query_body_and_headers_round_trip(sample):
    base, _, _ = sample
    answer = httpx.post(f"{base}/api/echo/anna/42/extra?x=1&x=2&y=", content=b"hello", headers={"x-custom": "c"})
    assert answer.status_code == 200 and answer.headers["x-seen"] == "1"
    body = answer.json()
    assert body["route"] == {"name": "anna", "n": "42", "rest": "extra"}
    assert body["params"] == {"x": "1", "y": ""}
    assert body["body"] == "hello" and body["custom"] == "c" and body["method"] == "POST"
    assert body["url"].endswith("/api/echo/anna/42/extra?x=1&x=2&y=")
    assert body["forwarded"] == "127.0.0.1"
    optional = httpx.get(f"{base}/api/echo/anna/7", headers={"x-forwarded-for": "203.0.113.9"}).json()
    assert optional["route"] == {"name": "anna", "n": "7"}
    assert optional["forwarded"] == "203.0.113.9, 127.0.0.1"


def test_constraint_literal_precedence_404_and_405(sample):
    base, _, _ = sample
    assert httpx.get(f"{base}/api/echo/anna/notanumber").status_code == 404
    assert httpx.get(f"{base}/api/items/special").text == "literal"
    assert httpx.get(f"{base}/api/items/other").text == "param:other"
    missing = httpx.get(f"{base}/api/nothing/here")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    wrong = httpx.delete(f"{base}/api/items/special")
    assert wrong.status_code == 405 and wrong.json()["error"] == "method_not_allowed"
    assert wrong.headers["allow"] == "GET"


def test_auth_levels(sample):
    base, _, _ = sample
    assert httpx.get(f"{base}/api/secret").status_code == 401
    assert httpx.get(f"{base}/api/secret").json()["error"] == "unauthorized"
    assert httpx.get(f"{base}/api/secret", headers={"x-functions-key": "nope"}).status_code == 401
    assert httpx.get(f"{base}/api/secret", headers={"x-functions-key": KEY}).text == "function level"
    assert httpx.get(f"{base}/api/secret", params={"code": KEY}).status_code == 200
    assert httpx.get(f"{base}/api/secret", headers={"x-functions-key": MASTER}).status_code == 200
    assert httpx.get(f"{base}/api/admin-only", headers={"x-functions-key": KEY}).status_code == 401
    assert httpx.get(f"{base}/api/admin-only", headers={"x-functions-key": MASTER}).text == "admin level"


def test_a_failing_function_is_a_json_500_and_async_functions_work(sample):
    base, _, _ = sample
    answer = httpx.get(f"{base}/api/boom")
    assert answer.status_code == 500 and answer.json() == {"error": "internal", "detail": "the function failed"}
    assert httpx.get(f"{base}/api/async").text == "async ok"
    # On the server's event loop, as the Python worker runs async functions, not in the sync functions' pool.
    assert httpx.get(f"{base}/api/async-thread").text == "MainThread"


def test_sync_functions_run_concurrently(sample):
    base, _, _ = sample

    def call(_: int) -> httpx.Response:
        return httpx.get(f"{base}/api/together", params={"group": "sixteen", "n": 16}, timeout=90)

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(call, range(16)))
    # Each call answers 200 only once all 16 were in progress at one same moment (503 after 60 s otherwise).
    assert [answer.status_code for answer in answers] == [200] * 16
    assert len({answer.json()["thread"] for answer in answers}) == 16


def test_timers_run_on_schedule_and_from_a_setting(sample):
    _, folder, _ = sample
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(_lines(folder / "ticks")) < 2:
        time.sleep(0.2)
    assert len(_lines(folder / "ticks")) >= 2
    assert _lines(folder / "setting") == ["ran"]  # run_on_startup; its %SETTING% schedule is next January


def test_admin_api_runs_a_timer_now(sample):
    base, folder, _ = sample
    assert httpx.post(f"{base}/admin/functions/from_setting?wait=true").status_code == 401
    answer = httpx.post(f"{base}/admin/functions/from_setting?wait=true", headers={"x-functions-key": MASTER})
    assert answer.status_code == 200
    assert _lines(folder / "setting") == ["ran", "ran"]
    assert httpx.post(f"{base}/admin/functions/nope", headers={"x-functions-key": MASTER}).status_code == 404


def test_no_access_log_reveals_paths_or_queries(sample):
    base, _, process = sample
    httpx.get(f"{base}/api/items/jane.doe-private?email=jane@example.com")
    process.terminate()
    output = process.communicate(timeout=15)[0].decode()
    assert "devhost: serving" in output
    assert "jane" not in output


def test_refuses_to_start_without_keys():
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEVHOST_")}
    result = subprocess.run(
        [sys.executable, "-m", "devhost", "--root", str(SAMPLE), "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "DEVHOST_FUNCTION_KEY" in result.stderr


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_the_thread_pool_has_python_threadpool_thread_count_threads(tmp_path):
    """As the Azure Python worker: PYTHON_THREADPOOL_THREAD_COUNT sync functions run at once, the next one waits."""
    port = free_port()
    env = {
        **os.environ,
        "DEVHOST_FUNCTION_KEY": KEY,
        "DEVHOST_MASTER_KEY": MASTER,
        "PYTHON_THREADPOOL_THREAD_COUNT": "3",
    }
    env.update({"SAMPLE_TIMER_FILE": str(tmp_path / "t"), "SAMPLE_SETTING_FILE": str(tmp_path / "s")})
    env["SAMPLE_SCHEDULE"] = "0 0 0 1 1 *"
    command = [sys.executable, "-m", "devhost", "--root", str(SAMPLE), "--port", str(port)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, 60, process)
        base = f"http://127.0.0.1:{port}/api/together"

        def call(group: str, n: int, timeout: int) -> int:
            return httpx.get(base, params={"group": group, "n": n, "timeout": timeout}, timeout=90).status_code

        with ThreadPoolExecutor(4) as pool:
            three = list(pool.map(lambda _: call("three", 3, 60), range(3)))
            # A fourth call cannot join the three running ones while they wait for it: the pool has no thread left.
            four = list(pool.map(lambda _: call("four", 4, 3), range(4)))
        assert three == [200, 200, 200]
        assert four == [503, 503, 503, 503]
    finally:
        process.terminate()
        process.wait(timeout=15)

    wrong = subprocess.run(
        command, env={**env, "PYTHON_THREADPOOL_THREAD_COUNT": "64"}, capture_output=True, text=True, timeout=60
    )
    assert (
        wrong.returncode != 0 and "PYTHON_THREADPOOL_THREAD_COUNT must be a whole number from 1 to 32" in wrong.stderr
    )
