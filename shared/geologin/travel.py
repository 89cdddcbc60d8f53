"""Impossible travel: could the same person have got from the last sign-in's place to this one in time?"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict

from shared.geologin.locator import Location, distance_km

# Two sign-ins a few seconds apart are not infinitely fast: clocks of two devices are not that exact.
MIN_ELAPSED = timedelta(minutes=1)
# Places closer than this are within the accuracy of a City database: never an alert.
MIN_DISTANCE_KM = 100.0


@dataclass(frozen=True)
class Sighting:
    at: datetime
    location: Location


@dataclass(frozen=True)
class TravelRule:
    max_speed_kmh: float = 900.0
    country_window: timedelta = timedelta(hours=2)


class TravelAlert(BaseModel):
    model_config = ConfigDict(frozen=True)

    type: str = "impossible_travel"
    from_country: str | None
    to_country: str | None
    speed_kmh: float | None
    distance_km: float | None
    minutes_between: float


def impossible_travel(previous: Sighting, current: Sighting, rule: TravelRule) -> TravelAlert | None:
    """An alert when the speed between the two places exceeds the rule, or, where coordinates are unknown,
    when the country changed within the rule's window; else None."""
    elapsed = abs(current.at - previous.at)
    minutes = round(elapsed.total_seconds() / 60, 1)
    before, now = previous.location, current.location
    if before.has_coordinates and now.has_coordinates:
        distance = distance_km(before, now)
        if distance < MIN_DISTANCE_KM:
            return None
        speed = distance / (max(elapsed, MIN_ELAPSED).total_seconds() / 3600)
        if speed <= rule.max_speed_kmh:
            return None
        return TravelAlert(
            from_country=before.country,
            to_country=now.country,
            speed_kmh=round(speed),
            distance_km=round(distance),
            minutes_between=minutes,
        )
    changed = before.country is not None and now.country is not None and before.country != now.country
    if changed and elapsed < rule.country_window:
        return TravelAlert(
            from_country=before.country,
            to_country=now.country,
            speed_kmh=None,
            distance_km=None,
            minutes_between=minutes,
        )
    return None
