"""Two regions, each a local host with its own Azurite: US (home, with registration) and EU.

An EU tenant is registered through US, captures through EU, is refused (421) by US, and every blob of both
storages is then read: US holds the registration and nothing captured; EU holds the captures and nothing of
the registration. Deregistering through US removes the tenant and its data from EU.
"""

from __future__ import annotations

import json
import os
import secrets
import uuid

import httpx
import pytest

from devenv.azurite import free_port, start_azurite
from devenv.local_host import start_local_host, stop_local_host
from shared.storage.secrets import LocalSecrets, region_key_secret_name
from tests.factories import (
    MASTER_KEY,
    REGISTRATION_KEY,
    SENDGRID,
    SIGNINS,
    TWILIO,
    all_blobs,
    give_registration_key,
    registration,
)

US_KEY = secrets.token_urlsafe(24)
EU_KEY = secrets.token_urlsafe(24)
CONTAINERS = ("registry", "records", "state", "audit")


@pytest.fixture(scope="module")
def regions(tmp_path_factory):
    """{"us": (api, azurite), "eu": (api, azurite)}, each host on its own storage."""
    us_port, eu_port = free_port(), free_port()
    urls = {"us": f"http://127.0.0.1:{us_port}/api", "eu": f"http://127.0.0.1:{eu_port}/api"}
    secrets_path = tmp_path_factory.mktemp("us-home") / "secrets.json"
    # The home deployment provisions EU tenants with the EU deployment's function key, from its secret store.
    LocalSecrets(secrets_path).set(region_key_secret_name("eu"), EU_KEY)
    give_registration_key(secrets_path)
    started = {}
    processes = []
    try:
        for region, port, key in (("eu", eu_port, EU_KEY), ("us", us_port, US_KEY)):
            azurite = start_azurite()
            started[region] = (urls[region], azurite)
            env = {
                **os.environ,
                "PACKCLOUD_REGION": region,
                "PACKCLOUD_ROLE": "regional,registration" if region == "us" else "regional",
                "PACKCLOUD_STORAGE_CONNECTION_STRING": azurite.connection_string,
                "PACKCLOUD_MASTER_KEY": MASTER_KEY,
                "PACKCLOUD_REGION_URLS": json.dumps(urls),
                "PACKCLOUD_LOCAL_SECRETS_PATH": str(secrets_path),
                "DEVHOST_FUNCTION_KEY": key,
                "DEVHOST_MASTER_KEY": secrets.token_urlsafe(24),
            }
            if region == "eu":
                env["PACKCLOUD_LOCAL_SECRETS_PATH"] = str(secrets_path.parent / "eu-secrets.json")
            processes.append(start_local_host(port, env))
        yield {**started, "secrets": secrets_path.parent}
    finally:
        for process in processes:
            stop_local_host(process)
        for _, azurite in started.values():
            azurite.stop()


def everything(azurite) -> dict[str, dict[str, bytes]]:
    return {container: all_blobs(azurite, container) for container in CONTAINERS}


def test_an_eu_tenant_registered_in_us_keeps_its_data_in_eu(regions):
    (us, us_storage), (eu, eu_storage) = regions["us"], regions["eu"]
    home = httpx.Client(base_url=us, headers={"x-functions-key": US_KEY}, timeout=30)
    installer = httpx.Client(base_url=us, headers={"x-registration-key": REGISTRATION_KEY}, timeout=30)
    eu_manage = httpx.Client(base_url=eu, headers={"x-functions-key": EU_KEY}, timeout=30)
    org = str(uuid.uuid4())

    created = installer.post("/registrations", json=registration(org, region="eu"))
    assert created.status_code == 201, created.text
    tenant, key = created.json()["tenant"], created.json()["api_key"]
    assert created.json()["base_url"] == eu
    assert eu_manage.get(f"/manage/tenants/{tenant}").json()["region"] == "eu"
    assert home.get(f"/manage/tenants/{tenant}").status_code == 404  # no tenant document in US

    # The customer's add-on now talks to EU only.
    assert eu_manage.put(f"/manage/tenants/{tenant}/datasets/signins", json=SIGNINS).status_code == 201
    auth = {"authorization": f"Bearer {key}"}
    sign_in = {"user_id": "0f8fad5b-d9cb-469f-a165-70867728950e", "ip": "193.0.6.139"}
    captured = httpx.post(f"{eu}/geologin/{tenant}/signins", json=sign_in, headers=auth)
    assert captured.status_code == 201
    assert (
        eu_manage.put(f"/manage/tenants/{tenant}/sequences/invoice", json={"format": "INV-{SEQNUM:6}"}).status_code
        == 201
    )

    us_before = everything(us_storage)
    attempts = [
        httpx.post(f"{us}/geologin/{tenant}/signins", json=sign_in, headers=auth),
        httpx.get(f"{us}/sync/{tenant}/signins", headers=auth),
        httpx.post(f"{us}/privacy/{tenant}/subjects/export", json={"subject": sign_in["user_id"]}, headers=auth),
        httpx.post(f"{us}/autonumber/{tenant}/invoice/next", json={}, headers=auth),
        httpx.post(f"{us}/geologin/{tenant}/signins", json=sign_in),  # no key: still sent to its region
    ]
    for answer in attempts:
        assert answer.status_code == 421, answer.text
        assert answer.json()["region"] == "eu" and answer.json()["base_url"] == eu
    assert everything(us_storage) == us_before

    # Re-registering updates, in US, and creates no second tenant in EU; only with the tenant's key, which EU
    # checks (US keeps no copy of it). Without it, or with a wrong one, nothing changes.
    changed = registration(org, region="eu", **{"contact.name": "Bo Admin"})
    us_before = everything(us_storage)
    assert installer.post("/registrations", json=changed).status_code == 401
    assert home.post("/registrations", json=changed, headers=auth).status_code == 401  # a host key opens nothing
    wrong = installer.post("/registrations", json=changed, headers={"authorization": "Bearer pck_wrong"})
    assert wrong.status_code == 403
    assert everything(us_storage) == us_before
    again = installer.post("/registrations", json=changed, headers=auth)
    assert again.status_code == 200 and again.json()["tenant"] == tenant and "api_key" not in again.json()

    us_blobs, eu_blobs = everything(us_storage), everything(eu_storage)
    assert list(us_blobs["registry"]) == [f"registrations/{tenant}.json"]
    assert us_blobs["records"] == {} and us_blobs["state"] == {}
    assert set(us_blobs["audit"]) == {name for name in us_blobs["audit"] if name.startswith(f"{tenant}/")}
    assert len(eu_blobs["records"]) == 1 and f"tenants/{tenant}.json" in eu_blobs["registry"]
    assert not any(name.startswith("registrations/") for name in eu_blobs["registry"])
    eu_text = b"".join(b for blobs in eu_blobs.values() for b in blobs.values())
    us_text = b"".join(b for blobs in us_blobs.values() for b in blobs.values())
    for registration_detail in (b"ada.admin@contoso.example", b"Bo Admin", b"Ada Admin", org.encode()):
        assert registration_detail not in eu_text
    assert b"193.0.6" not in us_text
    for secret in (SENDGRID, TWILIO, key):
        assert secret.encode() not in eu_text + us_text

    # Deregistering through US deletes the tenant, and all its data, in EU; the registration in US.
    assert home.delete(f"/registrations/{tenant}").status_code == 204
    assert eu_manage.get(f"/manage/tenants/{tenant}").status_code == 404
    assert all_blobs(eu_storage, "records") == {} and all_blobs(eu_storage, "state") == {}
    assert all_blobs(us_storage, "registry") == {}
    assert home.get(f"/registrations/{tenant}").status_code == 404
    assert httpx.post(f"{us}/geologin/{tenant}/signins", json=sign_in, headers=auth).status_code == 403


def test_home_reports_an_unreachable_region_and_stores_nothing(regions):
    (us, us_storage), _ = regions["us"], regions["eu"]
    before = everything(us_storage)
    answer = httpx.post(
        f"{us}/registrations",
        json=registration(str(uuid.uuid4()), region="ea"),
        headers={"x-registration-key": REGISTRATION_KEY},
    )
    assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "region"
    assert everything(us_storage) == before


def test_a_registration_carries_the_delivery_target_to_the_tenants_region_only(regions, tmp_path):
    (us, us_storage), (eu, eu_storage) = regions["us"], regions["eu"]
    installer = httpx.Client(base_url=us, headers={"x-registration-key": REGISTRATION_KEY}, timeout=30)
    home = httpx.Client(base_url=us, headers={"x-functions-key": US_KEY}, timeout=30)
    eu_manage = httpx.Client(base_url=eu, headers={"x-functions-key": EU_KEY}, timeout=30)
    client, secret = str(uuid.uuid4()), "dv-secret-" + secrets.token_urlsafe(16)
    delivery = {"entra_tenant_id": str(uuid.uuid4()), "client_id": client, "client_secret": secret}

    created = installer.post("/registrations", json=registration(str(uuid.uuid4()), region="eu", delivery=delivery))
    assert created.status_code == 201, created.text
    tenant = created.json()["tenant"]
    target = eu_manage.get(f"/manage/tenants/{tenant}/delivery")
    assert target.status_code == 200 and target.json()["client_id"] == client
    assert target.json()["organization_url"] == "https://contoso.crm4.dynamics.com/"
    assert home.get(f"/manage/tenants/{tenant}/delivery").status_code == 404  # no tenant, no target in US
    folder = regions["secrets"]
    assert secret in (folder / "eu-secrets.json").read_text()
    assert secret not in (folder / "secrets.json").read_text()
    stored = b"".join(
        b for storage in (us_storage, eu_storage) for blobs in everything(storage).values() for b in blobs.values()
    )
    assert secret.encode() not in stored

    assert home.delete(f"/registrations/{tenant}").status_code == 204
    assert eu_manage.get(f"/manage/tenants/{tenant}/delivery").status_code == 404
    assert secret not in (folder / "eu-secrets.json").read_text()
