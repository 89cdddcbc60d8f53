"""Geo-login: the sign-in service on a real Azurite with a settable clock (last-location state, late reports,
stale caches). The rules it applies are tested alone in tests/unit/test_geo_rules.py."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from shared.geologin.locator import NOWHERE
from tests.city_db import ADDRESSES
from tests.factories import OSLO, SIGNINS, USER, all_blobs, geo_services, sign_in
from tests.integration.storage_proxy import Seen, settings_through


@pytest.fixture
def signins(services, tenant_id):
    from shared.registry.models import Dataset, TenantIn

    services.registry.put_tenant(tenant_id, TenantIn(region="eu"))
    services.registry.put_dataset(tenant_id, "signins", Dataset.model_validate(SIGNINS))
    return tenant_id


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


def test_a_failed_record_puts_the_last_sign_in_back_so_the_retry_still_alerts(services, clock, signins, azurite, proxy):
    """Storage refuses the record's write (a real 503 from the storage endpoint, after the SDK's retries), after
    the last sign-in was replaced: it is put back, so the client's retry of that sign-in still alerts."""
    from shared.core.errors import StorageUnavailable
    from shared.services import Services

    geo = Services.build(settings_through(services.settings, proxy), clock)
    sign_in(geo, signins, "oslo")
    clock.advance(timedelta(minutes=30))

    def storage_refuses_records(request: Seen) -> int | None:
        return 503 if request.method == "PUT" and request.blob.startswith(f"records/{signins}/") else None

    with proxy.acting(storage_refuses_records), pytest.raises(StorageUnavailable):
        sign_in(geo, signins, "sydney")
    (state,) = last_state(azurite, signins).values()
    assert state["country"] == "NO"
    assert len(records(azurite, signins)) == 1
    assert [a.to_country for a in sign_in(geo, signins, "sydney").alerts] == ["AU"]
    assert len(records(azurite, signins)) == 2
