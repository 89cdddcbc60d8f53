"""Geo-login rules: offline location, the impossible-travel rule, the dataset's field rules, and the sign-in
service on a real Azurite with a settable clock (last-location state, late reports, stale caches)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from shared.geologin.locator import NOWHERE, Location, Locator, distance_km, parse_ip
from shared.geologin.travel import Sighting, TravelRule, impossible_travel
from tests.city_db import ADDRESSES, write_city_db
from tests.conftest import all_blobs

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
OSLO = Location("NO", "Oslo", "Oslo", 59.9139, 10.7522)
STOCKHOLM = Location("SE", "Stockholm County", "Stockholm", 59.3293, 18.0686)
SYDNEY = Location("AU", "New South Wales", "Sydney", -33.8688, 151.2093)
RULE = TravelRule()

SIGNINS = {
    "capability": "geologin",
    "purpose": "Security monitoring of user sign-ins",
    "legal_basis": "legitimate_interest",
    "retention_days": 14,
    "controller": {"name": "Contoso Ltd", "email": "privacy@contoso.example"},
    "subject_field": "user_id",
    "fields": [
        {"name": "user_id", "type": "string", "required": True},
        {"name": "signed_in_at", "type": "datetime", "personal": False},
        {"name": "country", "type": "string"},
        {"name": "city", "type": "string"},
        {"name": "ip", "type": "ip"},
    ],
}
USER = "0f8fad5b-d9cb-469f-a165-70867728950e"


@pytest.fixture(scope="module")
def city_db(tmp_path_factory) -> Path:
    return write_city_db(tmp_path_factory.mktemp("geo") / "city.mmdb")


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


# --- the sign-in service on Azurite ---------------------------------------------------------------------


def geo_services(settings, clock, city_db=None, **overrides):
    from shared.services import Services

    changed = settings.model_copy(update={"geo_city_db_path": city_db, **overrides})
    return Services.build(changed, clock)


@pytest.fixture
def signins(services, tenant_id):
    from shared.registry.models import Dataset, TenantIn

    services.registry.put_tenant(tenant_id, TenantIn(region="eu"))
    services.registry.put_dataset(tenant_id, "signins", Dataset.model_validate(SIGNINS))
    return tenant_id


def sign_in(services, tenant, where, at=None, user=USER, forwarded_for=None):
    from shared.geologin.signins import SignInRequest

    geo = services.geologins
    target = services.capture.resolve(tenant, "signins", "geologin")
    body = {"user_id": user, **({"ip": ADDRESSES.get(where, where)} if where else {})}
    if at is not None:
        body["signed_in_at"] = at.isoformat()
    return geo.sign_in(target, SignInRequest.model_validate(body), forwarded_for)


def records(azurite, tenant):
    return [json.loads(body) for body in all_blobs(azurite, "records", f"{tenant}/").values()]


def last_state(azurite, tenant):
    return {name: json.loads(body) for name, body in all_blobs(azurite, "state", f"{tenant}/").items()}


def test_oslo_then_sydney_is_flagged_in_the_answer_and_the_record(settings, clock, signins, city_db, azurite):
    geo = geo_services(settings, clock, city_db)
    first = sign_in(geo, signins, "oslo")
    assert first.alerts == () and first.location == OSLO
    clock.advance(timedelta(minutes=30))
    second = sign_in(geo, signins, "sydney")
    assert [(a.from_country, a.to_country) for a in second.alerts] == [("NO", "AU")]
    stored = {r["id"]: r for r in records(azurite, signins)}
    assert stored[first.id]["meta"] == {}
    (alert,) = stored[second.id]["meta"]["alerts"]
    assert alert["type"] == "impossible_travel" and alert["speed_kmh"] > 30_000
    assert stored[second.id]["fields"] == {
        "user_id": USER,
        "signed_in_at": "2026-11-23T10:30:00Z",
        "country": "AU",
        "city": "Sydney",
        "ip": "139.130.4.0",  # truncated; region was not declared, so it is not kept
    }


def test_oslo_then_stockholm_eight_hours_later_is_not_flagged(settings, clock, signins, city_db):
    geo = geo_services(settings, clock, city_db)
    sign_in(geo, signins, "oslo")
    clock.advance(timedelta(hours=8))
    assert sign_in(geo, signins, "stockholm").alerts == ()


def test_country_only_travel_and_other_users_apart(services, clock, signins):
    sign_in(services, signins, "oslo")
    sign_in(services, signins, "sydney", user="11111111-2222-3333-4444-555555555555")  # someone else
    clock.advance(timedelta(minutes=30))
    (alert,) = sign_in(services, signins, "sydney").alerts
    assert (alert.from_country, alert.to_country, alert.speed_kmh) == ("NO", "AU", None)


def test_one_small_state_blob_per_user_tagged_to_expire_and_no_full_ip_anywhere(services, clock, signins, azurite):
    sign_in(services, signins, "oslo")
    clock.advance(timedelta(minutes=10))
    sign_in(services, signins, "oslo")
    (name, state), *_ = last_state(azurite, signins).items()
    assert len(last_state(azurite, signins)) == 1
    assert name.startswith(f"{signins}/datasets/signins/last/") and USER not in name
    generation = services.registry.get_dataset(signins, "signins").generation
    assert state == {
        "generation": generation,
        "at": "2026-11-23T10:10:00+00:00",
        "country": "NO",
        "latitude": None,
        "longitude": None,
    }
    from azure.storage.blob import BlobServiceClient

    tags = (
        BlobServiceClient.from_connection_string(azurite.connection_string)
        .get_blob_client("state", name)
        .get_blob_tags()
    )
    assert tags["exp"] == "20261207T101000Z" and tags["t"] == signins and len(tags["sub"]) == 40
    everything = b"".join(all_blobs(azurite, c, f"{signins}/").__str__().encode() for c in ("records", "state"))
    assert ADDRESSES["oslo"].encode() not in everything


def test_late_report_is_compared_but_does_not_replace_the_last_sign_in(services, clock, signins, azurite):
    sign_in(services, signins, "oslo")
    clock.advance(timedelta(hours=3))
    late = sign_in(services, signins, "sydney", at=clock.now() - timedelta(hours=3, minutes=30))
    assert [a.to_country for a in late.alerts] == ["AU"]  # 30 minutes before Oslo
    (state,) = last_state(azurite, signins).values()
    assert state["country"] == "NO" and state["at"] == "2026-11-23T10:00:00+00:00"


def test_a_stale_cache_never_compares_with_an_old_sign_in(settings, clock, signins, city_db):
    """Two instances: B saw the user in Sydney since A cached Oslo; A must compare with Sydney."""
    instance_a, instance_b = geo_services(settings, clock, city_db), geo_services(settings, clock, city_db)
    sign_in(instance_a, signins, "oslo")
    clock.advance(timedelta(hours=30))
    sign_in(instance_b, signins, "sydney")
    clock.advance(timedelta(minutes=30))
    assert sign_in(instance_a, signins, "sydney").alerts == ()
    clock.advance(timedelta(minutes=30))
    assert [a.to_country for a in sign_in(instance_b, signins, "oslo").alerts] == ["NO"]


def test_address_from_a_trusted_proxy_header(settings, clock, signins):
    import ipaddress

    geo = geo_services(settings, clock, trusted_proxies=(ipaddress.ip_network("10.0.0.0/8"),))
    result = sign_in(geo, signins, None, forwarded_for=f"{ADDRESSES['oslo']}, 10.1.2.3")
    assert result.location.country == "NO"
    assert sign_in(geo, signins, None, forwarded_for="10.1.2.3").location is NOWHERE


def test_times_outside_the_window_are_refused_and_nothing_is_stored(services, clock, signins, azurite):
    from shared.core.errors import Unprocessable

    for at in (clock.now() + timedelta(minutes=6), clock.now() - timedelta(days=14, seconds=1)):
        with pytest.raises(Unprocessable) as refused:
            sign_in(services, signins, "oslo", at=at)
        assert refused.value.extra["errors"][0]["field"] == "signed_in_at"
    assert sign_in(services, signins, "oslo", at=clock.now() + timedelta(minutes=4)).id
    assert len(records(azurite, signins)) == 1


def test_erasure_and_purge_remove_the_last_location(services, clock, signins, azurite):
    from shared.lifecycle.subject_requests import SubjectRequests

    master = services.settings.master_key.get_secret_value()
    sign_in(services, signins, "oslo")
    assert len(last_state(azurite, signins)) == 1
    requests = SubjectRequests(services.storage, services.registry, services.audit, master)
    assert requests.erase(signins, USER.upper()).records == 1  # GUIDs in any case are the same person
    assert last_state(azurite, signins) == {} and records(azurite, signins) == []
    sign_in(services, signins, "oslo")  # this instance still has the erased state cached: it must not matter
    assert len(last_state(azurite, signins)) == 1
    clock.advance(timedelta(days=14, seconds=1))
    services.purger().run()
    assert last_state(azurite, signins) == {} and records(azurite, signins) == []


def test_a_failed_record_puts_the_last_sign_in_back_so_the_retry_still_alerts(
    services, clock, signins, azurite, monkeypatch
):
    from shared.core.errors import StorageUnavailable

    sign_in(services, signins, "oslo")
    clock.advance(timedelta(minutes=30))

    def storage_down(target, record):
        raise StorageUnavailable()

    with monkeypatch.context() as patched:
        patched.setattr(services.capture, "commit", storage_down)
        with pytest.raises(StorageUnavailable):
            sign_in(services, signins, "sydney")
    (state,) = last_state(azurite, signins).values()
    assert state["country"] == "NO"
    assert [a.to_country for a in sign_in(services, signins, "sydney").alerts] == ["AU"]
    assert len(records(azurite, signins)) == 2
