"""Geo-login rules: offline location, the impossible-travel rule and the dataset's field rules. The sign-in
service on a real Azurite is in tests/integration/test_geo_rules.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from shared.geologin.locator import NOWHERE, Location, Locator, distance_km, parse_ip
from shared.geologin.travel import Sighting, TravelRule, impossible_travel
from tests.city_db import ADDRESSES
from tests.factories import OSLO, SIGNINS, STOCKHOLM, SYDNEY

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
RULE = TravelRule()


# --- where an address is ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "country"),
    [
        ("8.8.8.8", "US"),  # the examples of iptocc's own documentation
        ("1.0.16.1", "JP"),
        ("193.0.6.139", "NL"),
        ("200.160.2.3", "BR"),
        ("129.240.2.3", "NO"),
        ("2001:4860:4860::8888", "US"),
        ("2001:67c:2e8::1", "NL"),
        ("::ffff:193.0.6.139", "NL"),  # IPv4-mapped IPv6 is the IPv4 address
    ],
)
def test_public_addresses_resolve_to_their_country(address, country):
    assert Locator().locate(parse_ip(address)) == Location(country=country)


@pytest.mark.parametrize(
    "address",
    ["10.1.2.3", "192.168.0.1", "172.16.5.4", "127.0.0.1", "::1", "fe80::1", "fd00::1", "100.64.0.1", "0.0.0.0",  # noqa: S104
     "169.254.1.1", "192.0.2.10", "2001:db8::1", "240.0.0.1"],
)  # fmt: skip
def test_private_and_reserved_addresses_are_nowhere(address):
    assert Locator().locate(parse_ip(address)) is NOWHERE


@pytest.mark.parametrize("text", ["", "999.1.1.1", "1.2.3", "2001:::1", "example.com", "1.2.3.4/24"])
def test_malformed_addresses_are_refused(text):
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 address"):
        parse_ip(text)


def test_city_database_gives_region_city_and_coordinates(city_db):
    locator = Locator(city_db)
    assert locator.locate(parse_ip(ADDRESSES["oslo"])) == OSLO
    assert locator.locate(parse_ip(ADDRESSES["oslo-v6"])) == OSLO
    assert locator.locate(parse_ip(ADDRESSES["sydney"])) == SYDNEY
    # Not in the customer's database: the country still comes from the built-in data.
    assert locator.locate(parse_ip("8.8.8.8")) == Location(country="US")
    assert locator.locate(parse_ip("10.0.0.1")) is NOWHERE


def test_great_circle_distances():
    assert 15_900 < distance_km(OSLO, SYDNEY) < 16_000
    assert 410 < distance_km(OSLO, STOCKHOLM) < 420
    assert distance_km(OSLO, OSLO) == 0
    with pytest.raises(ValueError, match="coordinates"):
        distance_km(OSLO, Location(country="SE"))


# --- impossible travel ---------------------------------------------------------------------------------


def test_oslo_then_sydney_half_an_hour_later_is_impossible():
    alert = impossible_travel(Sighting(T0, OSLO), Sighting(T0 + timedelta(minutes=30), SYDNEY), RULE)
    assert alert is not None
    assert (alert.from_country, alert.to_country) == ("NO", "AU")
    assert 31_000 < alert.speed_kmh < 32_500 and alert.minutes_between == 30


def test_oslo_then_stockholm_eight_hours_later_is_not():
    assert impossible_travel(Sighting(T0, OSLO), Sighting(T0 + timedelta(hours=8), STOCKHOLM), RULE) is None


def test_speed_uses_the_setting_and_the_order_of_reports_does_not_matter():
    earlier, later = Sighting(T0, OSLO), Sighting(T0 + timedelta(minutes=20), STOCKHOLM)  # ~1250 km/h
    assert impossible_travel(earlier, later, RULE) is not None
    assert impossible_travel(later, earlier, RULE) is not None
    assert impossible_travel(earlier, later, TravelRule(max_speed_kmh=1500)) is None


def test_nearby_places_and_same_instant_reports_are_not_alerts():
    nearby = Location("NO", "Viken", "Drammen", 59.7439, 10.2045)  # ~40 km from Oslo
    assert impossible_travel(Sighting(T0, OSLO), Sighting(T0, nearby), RULE) is None
    # The same second, far apart: speed over a minute at least, still impossible.
    assert impossible_travel(Sighting(T0, OSLO), Sighting(T0, STOCKHOLM), RULE).speed_kmh == pytest.approx(24_978, 1)


def test_without_coordinates_a_country_change_within_the_window_is_impossible():
    norway, australia, sweden = Location("NO"), Location("AU"), Location("SE")
    alert = impossible_travel(Sighting(T0, norway), Sighting(T0 + timedelta(minutes=30), australia), RULE)
    assert alert is not None and alert.speed_kmh is None and (alert.from_country, alert.to_country) == ("NO", "AU")
    assert impossible_travel(Sighting(T0, norway), Sighting(T0 + timedelta(hours=8), sweden), RULE) is None
    assert impossible_travel(Sighting(T0, norway), Sighting(T0 + timedelta(minutes=5), norway), RULE) is None
    assert impossible_travel(Sighting(T0, NOWHERE), Sighting(T0 + timedelta(minutes=5), australia), RULE) is None


# --- the dataset ---------------------------------------------------------------------------------------


def test_geologin_datasets_declare_only_sign_in_fields():
    from shared.registry.models import Dataset

    Dataset.model_validate(SIGNINS)
    extra = {**SIGNINS, "fields": [*SIGNINS["fields"], {"name": "email", "type": "email"}]}
    with pytest.raises(ValidationError, match="may declare only"):
        Dataset.model_validate(extra)
    retyped = {**SIGNINS, "fields": [SIGNINS["fields"][0], {"name": "ip", "type": "string"}]}
    with pytest.raises(ValidationError, match="type ip"):
        Dataset.model_validate(retyped)
