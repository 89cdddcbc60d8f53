"""Security of the suite as a whole, over real HTTP: tenants kept apart, keys compared in constant time, hostile
ids, oversized and mislabelled requests, CORS, signed pixel links, and a full scenario whose every log line is
searched for the personal values and secrets it used."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import httpx
import pytest

from shared.pixel.hits import sign_query
from tests.factories import (
    BROWSER_UA,
    FORM,
    FUNCTION_KEY,
    ORIGIN,
    PIXEL,
    REGISTRATION_KEY,
    ROOT,
    SIGNINS,
    USER,
    all_blobs,
    blob_states,
    home_host_env,
)

CONTAINERS = ("registry", "records", "state")


def storage(azurite, *tenants):
    """The state of every blob of the tenants: what "nothing changed" is checked against."""
    return blob_states(azurite, CONTAINERS, within=tenants)


def make_tenant(manage, tenant_id):
    created = manage.put(f"/manage/tenants/{tenant_id}", json={})
    assert created.status_code == 201
    signed_pixel = {**PIXEL, "require_signature": True}
    for dataset, declaration in (("signins", SIGNINS), ("contact", FORM), ("visits", signed_pixel)):
        assert manage.put(f"/manage/tenants/{tenant_id}/datasets/{dataset}", json=declaration).status_code == 201
    assert (
        manage.put(f"/manage/tenants/{tenant_id}/sequences/numbers", json={"format": "N-{SEQNUM:4}"}).status_code == 201
    )
    return created.json()


@pytest.fixture
def two_tenants(manage):
    first, second = (f"sec-{uuid.uuid4().hex[:10]}" for _ in range(2))
    return make_tenant(manage, first), make_tenant(manage, second)


def test_one_tenants_key_opens_nothing_of_another(anon, two_tenants, azurite):
    victim, attacker = two_tenants
    victim_id, key = victim["id"], attacker["api_key"]
    owner = {"authorization": f"Bearer {victim['api_key']}"}
    assert (
        anon.post(
            f"/geologin/{victim_id}/signins", json={"user_id": USER, "ip": "193.0.6.139"}, headers=owner
        ).status_code
        == 201
    )
    before = storage(azurite, victim_id, attacker["id"])
    auth = {"authorization": f"Bearer {key}"}
    attempts = [
        anon.get(f"/sync/{victim_id}/signins", headers=auth),
        anon.post(
            f"/sync/{victim_id}/signins/ack", json={"ids": ["20261123T100000000000Z-0123456789abcdef"]}, headers=auth
        ),
        anon.post(f"/privacy/{victim_id}/subjects/export", json={"subject": USER}, headers=auth),
        anon.post(f"/privacy/{victim_id}/subjects/erase", json={"subject": USER}, headers=auth),
        anon.get(f"/privacy/{victim_id}/report", headers=auth),
        anon.post(f"/autonumber/{victim_id}/numbers/next", json={}, headers=auth),
        anon.post(f"/geologin/{victim_id}/signins", json={"user_id": USER}, headers=auth),
        # The victim's own key with a prefix, a suffix, another scheme: still not the key.
        anon.get(f"/sync/{victim_id}/signins", headers={"authorization": f"Bearer {victim['api_key']}x"}),
        anon.get(f"/sync/{victim_id}/signins", headers={"authorization": f"Basic {victim['api_key']}"}),
    ]
    for answer in attempts:
        assert answer.status_code in (401, 403), answer.text
        assert answer.json()["error"] in ("forbidden", "missing_key") and USER not in answer.text
    assert storage(azurite, victim_id, attacker["id"]) == before


def test_keys_are_compared_in_constant_time(monkeypatch, services, tenant_id):
    import hmac

    from shared.core import keys
    from shared.core.errors import Forbidden
    from shared.registry.auth import authenticate_tenant
    from shared.registry.models import TenantIn

    _, api_key = services.registry.put_tenant(tenant_id, TenantIn())
    compared = []
    real = hmac.compare_digest

    def recording(a, b):
        compared.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(keys.hmac, "compare_digest", recording)
    assert authenticate_tenant(services.registry, tenant_id, f"Bearer {api_key}").id == tenant_id
    for wrong, tenant in (("pck_" + "A" * 43, tenant_id), (api_key, "no-such-tenant")):
        with pytest.raises(Forbidden):
            authenticate_tenant(services.registry, tenant, f"Bearer {wrong}")
    # Every check went through compare_digest on equal-length digests, unknown tenants included.
    assert compared == [(64, 64)] * 3


HOSTILE_IDS = [
    "..", "..%2f..%2fregistry", "%2e%2e", "a%2fb", "A-UPPER", "t\u0435nant", "x" * 64, "-lead",
    "\uff54\uff45\uff4e\uff41\uff4e\uff54", "a b", "a%00b", "a;b", "%252e%252e",
]  # fmt: skip


@pytest.mark.parametrize("hostile", HOSTILE_IDS)
def test_hostile_ids_are_refused_before_storage(anon, manage, two_tenants, azurite, hostile):
    victim = two_tenants[0]
    auth = {"authorization": f"Bearer {victim['api_key']}"}
    before = blob_states(azurite, CONTAINERS)
    answers = [
        manage.put(f"/manage/tenants/{hostile}", json={}),
        manage.put(f"/manage/tenants/{victim['id']}/datasets/{hostile}", json=SIGNINS),
        anon.post(f"/geologin/{hostile}/signins", json={"user_id": USER}, headers=auth),
        anon.post(f"/geologin/{victim['id']}/{hostile}", json={"user_id": USER}, headers=auth),
        anon.post(f"/autonumber/{victim['id']}/{hostile}/next", json={}, headers=auth),
        anon.get(f"/sync/{victim['id']}/{hostile}", headers=auth),
        anon.post(f"/forms/{victim['id']}/{hostile}", json={"email": "a@example.com"}, headers={"origin": ORIGIN}),
    ]
    for answer in answers:
        assert 400 <= answer.status_code < 500, (hostile, answer.status_code)
        if answer.headers.get("content-type", "").startswith("application/json"):
            assert answer.json()["error"]
    assert blob_states(azurite, CONTAINERS) == before
    # The pixel answers its GIF whenever its route matches; an id that changes the path matches no route.
    pixel = anon.get(f"/px/{hostile}/visits")
    assert pixel.headers["content-type"] == "image/gif" or (pixel.status_code == 404 and pixel.json()["error"])


def test_oversized_and_mislabelled_requests(anon, two_tenants, azurite):
    tenant = two_tenants[0]
    auth = {"authorization": f"Bearer {tenant['api_key']}"}
    before = storage(azurite, tenant["id"])
    big = json.dumps({"user_id": USER, "user_agent": "x" * 70_000})
    geologin, form = f"/geologin/{tenant['id']}/signins", f"/forms/{tenant['id']}/contact"
    site = {"origin": ORIGIN}
    cases = [
        (geologin, big, {**auth, "content-type": "application/json"}, 413),
        (form, "e" * 70_000, {**site, "content-type": "application/x-www-form-urlencoded"}, 413),
        # A JSON body labelled as something else, and the other way round.
        (geologin, json.dumps({"user_id": USER}), {**auth, "content-type": "text/plain"}, 415),
        (f"/autonumber/{tenant['id']}/numbers/next", "count=2",
         {**auth, "content-type": "application/x-www-form-urlencoded"}, 415),
        (form, "<email>a@example.com</email>", {**site, "content-type": "application/xml"}, 415),
        (form, "{not json", {**site, "content-type": "application/json"}, 400),
        (geologin, b"\xff\xfe{}", {**auth, "content-type": "application/json"}, 400),
    ]  # fmt: skip
    for path, content, headers, status in cases:
        answer = anon.post(path, content=content, headers=headers)
        assert answer.status_code == status, (path, status, answer.text)
        assert answer.json()["error"]
    # A header far over any sane size is refused by the server before PackCloud's code.
    huge = anon.get(f"/sync/{tenant['id']}/signins", headers={**auth, "x-padding": "p" * 40_000})
    assert huge.status_code == 431 and huge.json()["error"] == "headers_too_large"
    assert storage(azurite, tenant["id"]) == before


@pytest.mark.parametrize("origin", ["https://evil.example", "null", "https://www.contoso.example.evil.example"])
def test_cors_from_an_origin_not_allowed(anon, two_tenants, azurite, origin):
    tenant = two_tenants[0]["id"]
    before = storage(azurite, tenant)
    preflight = anon.options(
        f"/forms/{tenant}/contact", headers={"origin": origin, "access-control-request-method": "POST"}
    )
    assert preflight.status_code == 403 and "access-control-allow-origin" not in preflight.headers
    posted = anon.post(f"/forms/{tenant}/contact", json={"email": "a@example.com"}, headers={"origin": origin})
    assert posted.status_code == 403 and posted.json()["error"] == "origin_not_allowed"
    assert storage(azurite, tenant) == before


def test_signed_pixel_links_forged_or_replayed_record_nothing(anon, two_tenants, azurite):
    tenant, other = two_tenants
    good_query = {"visitor": "v-1", "page_url": f"{ORIGIN}/mail", "exp": str(int(time.time()) + 3600)}
    good = {**good_query, "sig": sign_query(tenant["signing_key"], tenant["id"], "visits", good_query)}
    expired_query = {**good_query, "exp": str(int(time.time()) - 1)}
    forged = [
        {**good, "visitor": "v-2"},  # a valid signature replayed onto other values
        {**good, "exp": str(int(time.time()) + 10**6)},  # its expiry pushed out
        {**expired_query, "sig": sign_query(tenant["signing_key"], tenant["id"], "visits", expired_query)},
        {**good_query, "sig": sign_query(other["signing_key"], tenant["id"], "visits", good_query)},  # wrong key
        {**good_query, "sig": "0" * 64},
        {k: v for k, v in good.items() if k != "sig"},
        {**good_query, "sig": "\u00cb\u0096\u00a7\U000af55a"},  # not ASCII (found by the fuzz test: was a 500)
        {**good, "exp": "\u00b2" * 10},  # digits to str.isdigit, not to int()
    ]
    for query in forged:
        answer = anon.get(f"/px/{tenant['id']}/visits?{urlencode(query)}")
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/gif"
    assert all_blobs(azurite, "records", f"{tenant['id']}/") == {}
    assert anon.get(f"/px/{tenant['id']}/visits?{urlencode(good)}").status_code == 200
    assert len(all_blobs(azurite, "records", f"{tenant['id']}/")) == 1  # the genuine link still works


def test_a_full_scenario_leaves_no_personal_value_or_secret_in_any_log_line(azurite, tmp_path):
    """A host with every logger at DEBUG, every line it writes kept; the scenario's personal values, its subject
    hashes (pseudonyms), its secrets and any query string are searched for. Pixel and link URLs, sync cursors and
    the storage requests of data-subject requests (tag queries hold subject hashes) all carry them."""
    from devenv.azurite import free_port, wait_for_port
    from devenv.local_host import stop_local_host

    port = free_port()
    log_path = tmp_path / "host.log"
    env = home_host_env(azurite, tmp_path / "secrets.json", DEVHOST_LOG_LEVEL="debug")
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "devhost", "--root", str(ROOT), "--port", str(port)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            wait_for_port(port, 60, process)
            secrets_used, personal, queries = run_scenario(f"http://127.0.0.1:{port}/api", azurite)
        finally:
            stop_local_host(process)
    logged = log_path.read_text(errors="replace")
    # PackCloud's DEBUG records were written (each refused request is one): the search means something.
    assert "DEBUG packcloud: sync_records answered 400 (cursor_too_old)" in logged
    for value in secrets_used + personal:
        assert value not in logged, "a personal value, a subject hash or a secret reached the log"
    for query in queries:
        assert query not in logged, "a request's query string reached the log"
    assert not QUERY_STRING.findall(logged), "a URL with a query string reached the log"


# "?name=" or "&name=" after a path: what any logged URL with a query string looks like (storage, Key Vault,
# the API's own routes), whatever logger wrote it.
QUERY_STRING = re.compile(r"[?&][A-Za-z0-9_.%-]+=")


def subject_hashes(azurite, tenant: str) -> list[str]:
    """The `sub` index tags of the tenant's records and state: keyed hashes of its data subjects."""
    states = blob_states(azurite, ("records", "state"), within=(f"{tenant}/",))
    return sorted({tags["sub"] for blobs in states.values() for _, _, tags in blobs.values() if tags.get("sub")})


def run_scenario(api: str, azurite) -> tuple[list[str], list[str], list[str]]:
    email, name, user_ip, visitor = "jane.roe@example.org", "Jane Roe", "193.0.6.139", "visitor-4711"
    contact = "contact-jane-4242"
    credential = "SG.scenario-credential-value-31337"
    manage = httpx.Client(base_url=api, headers={"x-functions-key": FUNCTION_KEY}, timeout=30)
    org = str(uuid.uuid4())
    body = {
        "pack": "webform",
        "contact": {"name": "Ada Admin", "email": "ada@contoso.example", "phone": "+4722334455"},
        "organization": {"name": "contoso", "id": org, "users": 5, "url": "https://contoso.crm.dynamics.com/"},
        "region": "us",
        "credentials": {"sendgrid": credential},
    }
    created = manage.post("/registrations", json=body, headers={"x-registration-key": REGISTRATION_KEY})
    assert created.status_code == 201, created.text
    tenant, key, signing = created.json()["tenant"], created.json()["api_key"], created.json()["signing_key"]
    for dataset, declaration in (("signins", SIGNINS), ("contact", FORM), ("visits", PIXEL), ("opens", OPENS)):
        assert manage.put(f"/manage/tenants/{tenant}/datasets/{dataset}", json=declaration).status_code == 201
    anon = httpx.Client(base_url=api, timeout=30, headers={"user-agent": BROWSER_UA})
    auth = {"authorization": f"Bearer {key}"}
    form = {"email": email, "name": name, "consent": "yes", "topic": "sales"}
    assert anon.post(f"/forms/{tenant}/contact", json=form, headers={"origin": ORIGIN}).status_code == 201
    bad = anon.post(
        f"/forms/{tenant}/contact", json={**form, "email": "jane.roe@@example.org"}, headers={"origin": ORIGIN}
    )
    assert bad.status_code == 422
    # A page view whose query holds personal values, one a page URL with its own query.
    pixel_query = urlencode({"visitor": visitor, "page_url": f"{ORIGIN}/pricing?who={contact}-page"})
    anon.get(f"/px/{tenant}/visits?{pixel_query}", headers={"referer": f"{ORIGIN}/pricing", "origin": ORIGIN})
    # A signed e-mail link: the contact's id, an expiry and the signature in the query.
    link = {"contact": contact, "campaign": "spring", "exp": str(int(time.time()) + 3600)}
    link["sig"] = sign_query(signing, tenant, "opens", link)
    assert anon.get(f"/px/{tenant}/opens?{urlencode(link)}").status_code == 200
    assert anon.get(f"/px/{tenant}/opens?{urlencode({**link, 'contact': email})}").status_code == 200  # forged
    assert (
        anon.post(f"/geologin/{tenant}/signins", json={"user_id": USER, "ip": user_ip}, headers=auth).status_code == 201
    )
    assert (
        anon.post(f"/geologin/{tenant}/signins", json={"user_id": "bad", "ip": user_ip}, headers=auth).status_code
        == 422
    )
    hashes = subject_hashes(azurite, tenant)
    assert len(hashes) >= 3  # the form's e-mail, the link's contact, the sign-in's user (and its last sign-in)
    # Delivery pages with a cursor; a refused cursor too.
    first = anon.get(f"/sync/{tenant}/contact", params={"limit": 1}, headers=auth)
    assert first.status_code == 200
    # Nothing has settled yet (records wait 15 s): a cursor from an hour ago pages like a real one.
    cursor = (
        first.json()["next_cursor"] or f"{datetime.now(UTC) - timedelta(hours=1):%Y%m%dT%H%M%S%f}Z-0123456789abcdef"
    )
    sync_queries = [
        urlencode({"cursor": cursor, "limit": 5}),
        urlencode({"cursor": "19990101T000000000000Z-0123456789abcdef"}),
    ]
    assert [anon.get(f"/sync/{tenant}/contact?{query}", headers=auth).status_code for query in sync_queries] == [
        200,
        400,
    ]
    # Data-subject requests: their tag queries carry the subject's hash.
    for subject in (email, contact, USER):
        assert (
            anon.post(f"/privacy/{tenant}/subjects/export", json={"subject": subject}, headers=auth).status_code == 200
        )
    for subject in (USER, contact):
        assert (
            anon.post(f"/privacy/{tenant}/subjects/erase", json={"subject": subject}, headers=auth).status_code == 200
        )
    assert anon.get(f"/privacy/{tenant}/report", params={"format": "html"}, headers=auth).status_code == 200
    assert manage.delete(f"/registrations/{tenant}").status_code == 204
    secrets_used = [credential, key, signing, FUNCTION_KEY, REGISTRATION_KEY, link["sig"]]
    personal = [email, name, user_ip, USER, visitor, contact, "ada@contoso.example", org, *hashes]
    return secrets_used, personal, [pixel_query, urlencode(link), *sync_queries, "format=html"]


OPENS = {
    **PIXEL,
    "subject_field": "contact",
    "fields": [{"name": "contact", "type": "string", "required": True}, {"name": "campaign", "type": "string"}],
    "require_signature": True,
}
