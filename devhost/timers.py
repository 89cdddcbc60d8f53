"""Timer functions on their NCRONTAB schedules, in background threads."""

from __future__ import annotations

import os
import re
import sys
import threading
import traceback
from datetime import UTC, datetime

from azure.functions.timer import TimerRequest
from croniter import croniter

from devhost.routes import TimerFunction

_SETTING = re.compile(r"^%([A-Za-z0-9_]+)%$")


def resolve_schedule(schedule: str) -> str:
    """`%NAME%` is an app setting, as in Azure; NCRONTAB puts seconds first, croniter wants them last."""
    found = _SETTING.match(schedule.strip())
    if found:
        value = os.environ.get(found[1])
        if not value:
            raise RuntimeError(f"timer schedule setting {found[1]} is not set")
        schedule = value
    fields = schedule.split()
    if len(fields) != 6:
        raise RuntimeError("a timer schedule needs six NCRONTAB fields: second minute hour day month day-of-week")
    expression = " ".join(fields[1:] + fields[:1])
    if not croniter.is_valid(expression, second_at_beginning=False):
        raise RuntimeError("the timer schedule is not a valid NCRONTAB expression")
    return expression


class TimerRunner:
    def __init__(self, timers: list[TimerFunction]) -> None:
        self._timers = {timer.function_name: timer for timer in timers}
        self._schedules = {timer.function_name: resolve_schedule(timer.schedule) for timer in timers}
        self._running: dict[str, threading.Lock] = {name: threading.Lock() for name in self._timers}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def knows(self, name: str) -> bool:
        return name in self._timers

    def start(self) -> None:
        for name, timer in self._timers.items():
            thread = threading.Thread(target=self._loop, args=(name, timer.run_on_startup), daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def run_now(self, name: str, past_due: bool = False) -> BaseException | None:
        """Run once unless a run is going on (a timer never overlaps itself); the error, if it raised."""
        lock = self._running[name]
        if not lock.acquire(blocking=False):
            return None
        timer = self._timers[name]
        try:
            timer.handler(**{timer.binding_name: TimerRequest(past_due=past_due)})
            return None
        except Exception as error:
            print(f"timer {name} failed:", file=sys.stderr)
            traceback.print_exc()
            return error
        finally:
            lock.release()

    def _loop(self, name: str, run_on_startup: bool) -> None:
        if run_on_startup:
            self.run_now(name)
        schedule = croniter(self._schedules[name], datetime.now(UTC))
        while not self._stop.is_set():
            due = schedule.get_next(datetime)
            wait = (due - datetime.now(UTC)).total_seconds()
            if wait > 0 and self._stop.wait(wait):
                return
            late = (datetime.now(UTC) - due).total_seconds() > 60
            self.run_now(name, past_due=late)
