"""What happened to a tenant's datasets over the last 30 days, counted from its audit trail alone.

The DPO report (lifecycle/report.py) reads the trail once (one request per day) and derives every count from
it: captures from the hourly `captures` entries (capture/counts.py), deliveries and refusals from `delivery`,
expiry and retention deletions from the tenant's `purge` entries, erasures from `erasure` (per dataset), and
the data-subject requests from `export` and `erasure`. Pure functions over entries, so no storage is read here.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

WINDOW_DAYS = 30
# What each dataset's chart and summary count per day, in their order.
SERIES = ("captured", "delivered", "purged", "erased", "refused")
REQUEST_COUNTS = ("exports", "exported_records", "exported_state", "erasures", "erased_records", "erased_state")


def window_days(now: datetime) -> list[date]:
    """The last WINDOW_DAYS UTC days, today included, oldest first."""
    today = now.astimezone(UTC).date()
    return [today - timedelta(days=back) for back in range(WINDOW_DAYS - 1, -1, -1)]


def window_start(now: datetime) -> datetime:
    return datetime.combine(window_days(now)[0], time(0), tzinfo=UTC)


def _count(value: object) -> int:
    # The trail is ours, but a report must not fail on an entry it does not understand (an altered one shows
    # as a broken chain instead).
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _day(text: object) -> date | None:
    try:
        return date.fromisoformat(str(text)[:10])
    except ValueError:
        return None


def dataset_activity(entries: list[dict[str, Any]], now: datetime) -> dict[str, list[dict[str, Any]]]:
    """Per dataset id, one row per day of the window: {"date", "captured", "delivered", "purged", "erased",
    "refused"}. Datasets without any entry get no key (the caller fills zeros)."""
    days = set(window_days(now))
    counts: dict[str, dict[date, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))

    def add(dataset: object, day: date | None, series: str, value: object) -> None:
        if isinstance(dataset, str) and day in days and (n := _count(value)):
            counts[dataset][day][series] += n

    for entry in entries:
        kind, day = entry.get("kind"), _day(entry.get("at"))
        if kind == "captures":  # counted per capture hour, written once the hour is over
            add(entry.get("dataset"), _day(entry.get("hour")), "captured", entry.get("count"))
        elif kind == "delivery":  # an acknowledgement, or a run of the delivery into Dataverse
            add(entry.get("dataset"), day, "delivered", entry.get("deleted"))
            add(entry.get("dataset"), day, "refused", entry.get("refused"))
        elif kind == "purge":
            for item in entry.get("datasets") or []:
                if isinstance(item, dict):
                    expired = _count(item.get("deleted_expired")) + _count(item.get("deleted_over_retention"))
                    add(item.get("dataset"), day, "purged", expired)
        elif kind == "erasure" and isinstance(entry.get("datasets"), dict):
            for dataset, erased in entry["datasets"].items():
                add(dataset, day, "erased", erased)
    return {
        dataset: [{"date": d.isoformat(), **{s: by_day[d][s] for s in SERIES}} for d in sorted(days)]
        for dataset, by_day in counts.items()
    }


def empty_activity(now: datetime) -> list[dict[str, Any]]:
    return [{"date": d.isoformat(), **dict.fromkeys(SERIES, 0)} for d in window_days(now)]


def totals(activity: list[dict[str, Any]]) -> dict[str, int]:
    return {series: sum(int(day[series]) for day in activity) for series in SERIES}


def subject_requests(entries: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """Exports and erasures per week (weeks begin on Monday; the first is cut at the window's start): how many
    calls and how many records and state items they handed out or deleted. Never a subject: the entries hold none.
    """
    days = window_days(now)
    weeks = sorted({d - timedelta(days=d.weekday()) for d in days})
    counts: dict[date, Counter[str]] = {week: Counter() for week in weeks}
    for entry in entries:
        day = _day(entry.get("at"))
        if day is None or day < days[0] or day > days[-1]:
            continue
        week = counts[day - timedelta(days=day.weekday())]
        if entry.get("kind") == "export":
            week["exports"] += 1
            week["exported_records"] += _count(entry.get("records"))
            week["exported_state"] += _count(entry.get("state"))
        elif entry.get("kind") == "erasure":
            week["erasures"] += 1
            week["erased_records"] += _count(entry.get("records"))
            week["erased_state"] += _count(entry.get("state"))
    return [
        {"week_of": max(week, days[0]).isoformat(), **{name: counts[week][name] for name in REQUEST_COUNTS}}
        for week in weeks
    ]


def last_purge(runs: list[dict[str, Any]], tenant: str) -> tuple[dict[str, Any] | None, dict[str, int]]:
    """The deployment's last purge run (`_system` entries), and what it deleted per dataset of this tenant (a
    dataset it did not reach is absent)."""
    if not runs:
        return None, {}
    run = runs[-1]
    deleted = {
        str(item.get("dataset")): _count(item.get("deleted_expired")) + _count(item.get("deleted_over_retention"))
        for item in run.get("datasets") or []
        if isinstance(item, dict) and item.get("tenant") == tenant
    }
    return {"at": run.get("at"), "complete": bool(run.get("complete")), "duration_s": run.get("duration_s")}, deleted
