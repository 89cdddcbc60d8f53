"""A small MaxMind-format City database, written by the tests (mmdb-writer): a few university networks.

The networks and coordinates are public facts (who holds the block, where the city is); the file is built
at test time and never shipped.
"""

from __future__ import annotations

from pathlib import Path

from mmdb_writer import MMDBWriter
from netaddr import IPSet

CITIES = {
    "oslo": ("129.240.0.0/16", "NO", "Oslo", "Oslo", 59.9139, 10.7522),
    "stockholm": ("130.237.0.0/16", "SE", "Stockholm County", "Stockholm", 59.3293, 18.0686),
    "sydney": ("139.130.0.0/16", "AU", "New South Wales", "Sydney", -33.8688, 151.2093),
    "oslo-v6": ("2001:700::/32", "NO", "Oslo", "Oslo", 59.9139, 10.7522),
}
# One address in each network above.
ADDRESSES = {
    "oslo": "129.240.2.3",
    "stockholm": "130.237.72.201",
    "sydney": "139.130.4.5",
    "oslo-v6": "2001:700:100::1",
}


def write_city_db(path: Path) -> Path:
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoIP2-City", languages=["en"])
    for network, country, region, city, latitude, longitude in CITIES.values():
        writer.insert_network(
            IPSet([network]),
            {
                "country": {"iso_code": country, "names": {"en": country}},
                "subdivisions": [{"names": {"en": region}}],
                "city": {"names": {"en": city}},
                "location": {"latitude": latitude, "longitude": longitude},
            },
        )
    writer.to_db_file(str(path))
    return path
