"""The unit tier: pure logic, settings from a plain fixture, nothing started.

While a unit test module is imported, and while each unit test is set up, runs and is torn down, starting a
process (Azurite, the local host, Chromium, any command), opening a network connection or importing Playwright
fails the test, even if the code under test caught the error: the tier cannot come to depend on any of them.
Outside those moments (the integration tier in the same session) nothing is changed.
"""

from __future__ import annotations

import importlib.abc
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import pytest

from tests.factories import UNREACHABLE_STORAGE, settings_from, settings_values

# A minimal valid environment, for the tests that load settings from it themselves.
VALID = {
    "PACKCLOUD_REGION": "eu",
    "PACKCLOUD_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true",
    "PACKCLOUD_MASTER_KEY": "k" * 40,
}
NETWORK_FAMILIES = (socket.AF_INET, socket.AF_INET6)
MACHINE_PROBES = {"file", "uname"}
_violations: list[str] = []


class UnitTierViolation(RuntimeError):
    """Something a unit test must never do."""


def _refuse(what: str) -> NoReturn:
    _violations.append(what)
    raise UnitTierViolation(f"a unit test {what}: that belongs in tests/integration/")


class _NoPlaywright(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Any, target: Any = None) -> None:
        if fullname.partition(".")[0] == "playwright":
            _refuse("imported Playwright")


def _refusing_connect(original: Callable[..., Any], name: str) -> Callable[..., Any]:
    def connect(self: socket.socket, address: Any) -> Any:
        if self.family in NETWORK_FAMILIES:
            _refuse(f"opened a network connection to {address!r}")
        return original(self, address)

    connect.__name__ = name
    return connect


def _command(args: Any) -> str:
    first = args if isinstance(args, str | bytes | os.PathLike) else next(iter(args), "")
    return os.path.basename(os.fsdecode(first).split()[0]) if first else ""


@contextmanager
def _nothing_started() -> Iterator[list[str]]:
    """Refuses, and lists, every process, network connection and Playwright import while it is open."""
    real_execute_child = subprocess.Popen._execute_child  # type: ignore[attr-defined]

    def execute_child(self: subprocess.Popen[Any], args: Any, *rest: Any, **kwargs: Any) -> Any:
        # The standard library's `platform` asks `file` and `uname` about the machine (croniter does at import).
        if _command(args) in MACHINE_PROBES:
            return real_execute_child(self, args, *rest, **kwargs)
        _refuse(f"started a process ({_command(args)})")

    def no_process(*_args: Any, **_kwargs: Any) -> NoReturn:
        _refuse("started a process")

    patches: list[tuple[Any, str, Any]] = [
        (subprocess.Popen, "_execute_child", execute_child),  # every subprocess.Popen/run/call goes through it
        (os, "fork", no_process),
        (os, "posix_spawn", no_process),
        (os, "posix_spawnp", no_process),
        (os, "system", no_process),
        (socket.socket, "connect", _refusing_connect(socket.socket.connect, "connect")),
        (socket.socket, "connect_ex", _refusing_connect(socket.socket.connect_ex, "connect_ex")),
    ]
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    finder = _NoPlaywright()
    for owner, name, replacement in patches:
        setattr(owner, name, replacement)
    sys.meta_path.insert(0, finder)
    _violations.clear()
    found: list[str] = []
    try:
        yield found
    finally:
        sys.meta_path.remove(finder)
        for owner, name, original in saved:
            setattr(owner, name, original)
        found.extend(f"a unit test {what}" for what in sorted(set(_violations)))
        _violations.clear()


# These hooks are called for the items and modules under tests/unit/ only (pytest picks a directory's conftest
# hooks by path), so the integration tier of the same session runs unguarded.
@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    with _nothing_started() as found:
        report = yield
    if found:
        report.outcome = "failed"
        report.longrepr = f"{collector.nodeid}: " + "; ".join(found) + ": that belongs in tests/integration/"
    return report


def _guarded_phase() -> Iterator[None]:
    with _nothing_started() as found:
        result = yield
    if found:
        raise UnitTierViolation("; ".join(found) + ": that belongs in tests/integration/")
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    return (yield from _guarded_phase())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    return (yield from _guarded_phase())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    return (yield from _guarded_phase())


@pytest.fixture(autouse=True)
def _process_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """What function_app reads from the environment at import: a deployment whose storage nothing answers.

    Only these: under xdist a worker may run a unit module after integration ones, whose session settings (its
    Azurite, its secrets file) are still in the process's environment."""
    from shared.core.settings import get_settings

    for name in list(os.environ):
        if name.startswith("PACKCLOUD_"):
            monkeypatch.delenv(name)
    for name, value in settings_values(UNREACHABLE_STORAGE).items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def settings():
    return settings_from(settings_values(UNREACHABLE_STORAGE))


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Only the settings in VALID in the environment; the test changes them through the monkeypatch it gets."""
    for name in list(os.environ):
        if name.startswith("PACKCLOUD_"):
            monkeypatch.delenv(name)
    for name, value in VALID.items():
        monkeypatch.setenv(name, value)
    return monkeypatch
