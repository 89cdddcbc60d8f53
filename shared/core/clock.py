"""UTC time, behind a clock that tests can set."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta
from typing import Annotated, Protocol

from pydantic import AwareDatetime, BeforeValidator


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that only moves when told to; retention tests travel in time with it."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs an aware UTC datetime")
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, when: datetime) -> None:
        with self._lock:
            self._now = when.astimezone(UTC)

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._now += delta


def tag_time(when: datetime) -> str:
    """Fixed-width UTC timestamp that sorts as text, as blob index tag range queries compare text."""
    return when.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


_ISO_DATE_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ]")


def _iso_text_only(value: object) -> object:
    """pydantic reads a number (or a string of digits) as Unix seconds; the API documents ISO 8601 text only."""
    if value is not None and not (isinstance(value, str) and _ISO_DATE_TIME.match(value)):
        raise ValueError("must be an ISO 8601 date and time with a time zone, such as 2026-12-01T00:00:00Z")
    return value


# A date and time from a request body: ISO 8601 text with a zone, never a number.
IsoDatetime = Annotated[AwareDatetime, BeforeValidator(_iso_text_only)]
