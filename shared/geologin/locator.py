"""Where an IP address is, offline and in process: no lookup ever leaves the function app.

The country comes from `iptocc`, which carries the Regional Internet Registries' delegation data in its
wheel (MIT OR Apache-2.0). Region, city and coordinates come from a MaxMind-format City database when the
customer configures one (its own file, under its own licence): PackCloud ships no GeoLite2-derived data.
Private, reserved and unknown addresses are not an error: they are located nowhere.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import iptocc

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
EARTH_RADIUS_KM = 6371.0088


@dataclass(frozen=True)
class Location:
    country: str | None = None
    region: str | None = None
    city: str | None = None
    latitude: float | None = None
    longitude: float | None = None

    @property
    def coordinates(self) -> tuple[float, float] | None:
        if self.latitude is None or self.longitude is None:
            return None
        return self.latitude, self.longitude

    @property
    def has_coordinates(self) -> bool:
        return self.coordinates is not None

    def public(self) -> dict[str, Any]:
        return asdict(self)


NOWHERE = Location()


def parse_ip(text: str) -> IPAddress:
    """An address as given, IPv4-mapped IPv6 unwrapped; ValueError when it is not one."""
    address = ipaddress.ip_address(text.strip())
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class Locator:
    def __init__(self, city_db: Path | None = None) -> None:
        self._city: Any = None  # a maxminddb.Reader
        if city_db is not None:
            import maxminddb  # only with a City database: its import costs ~40 ms of every cold start otherwise

            # MODE_AUTO memory-maps the file: instances share the page cache, start-up reads nothing.
            self._city = maxminddb.open_database(str(city_db), maxminddb.MODE_AUTO)

    @property
    def has_city_database(self) -> bool:
        return self._city is not None

    def locate(self, address: IPAddress) -> Location:
        if not address.is_global:
            return NOWHERE
        text = str(address)
        country = iptocc.country_code(text)
        if self._city is None:
            return Location(country=country)
        found = self._city.get(text)
        if not isinstance(found, dict):
            return Location(country=country)
        return _from_city_record(found, country)


def _name(entry: object) -> str | None:
    if isinstance(entry, dict):
        names = entry.get("names")
        name = names.get("en") if isinstance(names, dict) else None
        if isinstance(name, str):
            return name
    return None


def _from_city_record(found: dict[str, Any], fallback_country: str | None) -> Location:
    country = found.get("country")
    iso = country.get("iso_code") if isinstance(country, dict) else None
    subdivisions = found.get("subdivisions")
    region = _name(subdivisions[0]) if isinstance(subdivisions, list) and subdivisions else None
    where = found.get("location")
    latitude = where.get("latitude") if isinstance(where, dict) else None
    longitude = where.get("longitude") if isinstance(where, dict) else None
    return Location(
        country=iso if isinstance(iso, str) else fallback_country,
        region=region,
        city=_name(found.get("city")),
        latitude=float(latitude) if isinstance(latitude, int | float) else None,
        longitude=float(longitude) if isinstance(longitude, int | float) else None,
    )


def distance_km(a: Location, b: Location) -> float:
    """Great-circle distance (haversine) between two located points."""
    first, second = a.coordinates, b.coordinates
    if first is None or second is None:
        raise ValueError("both locations need coordinates")
    lat1, lon1, lat2, lon2 = map(math.radians, (*first, *second))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))
