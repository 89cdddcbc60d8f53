"""Hostile shapes through the local host on every kind of route: JSON nested tens of thousands deep, integers
of thousands of digits, numbers JSON cannot hold, Unicode digits (such as "²") and giant numbers where a query
or a body argument is a number, and the multipart form whose Content-Disposition held a core for 30 s. Each is
a 4xx with the usual JSON error (the pixel: its GIF), never a 500 or 503, and nothing is stored."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

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
    SIGNINS,
    UNICODE_DIGITS,
    USER,
    blob_states,
    home_host_env,
)

CONTAINERS = ("registry", "records", "state")

JSON_SHAPES = {
    "open_brackets_50000": b"[" * 50_000,
    "nested_30000": b"[" * 30_000 + b"]" * 30_000,
    "nested_value": b'{"x":' + b"[" * 20_000 + b"]" * 20_000 + b"}",
    "objects_10000": b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
    "integer_5000_digits": b'{"x":' + b"9" * 5_000 + b"}",
    "negative_integer_4301_digits": b'{"x":-' + b"1" * 4_301 + b"}",
    "float_1e999": b'{"x":1e999}',
    "nan": b'{"x":NaN}',
    "infinity": b'{"x":-Infinity}',
}
QUERY_NUMBERS = [*UNICODE_DIGITS, "9" * 5_000, "1" * 19, "-1", "+5", " 5", "5 "]


@dataclass(frozen=True)
class Home:
    api: str
    tenant: str
    api_key: str
    signing_key: str


@pytest.fixture(scope="module")
def home(azurite, tmp_path_factory) -> Iterator[Home]:
    """A home (us) host, which serves every route (registration too), with a tenant, its datasets and a sequence."""
    from devenv.azurite import free_port
    from devenv.local_host import start_local_host, stop_local_host

    port = free_port()
    secrets_path = tmp_path_factory.mktemp("hostile") / "secrets.json"
    env = home_host_env(azurite, secrets_path, PACKCLOUD_FORM_RATE_PER_MINUTE="0")
    process = start_local_host(port, env)
    api, tenant = f"http://127.0.0.1:{port}/api", f"hostile-{uuid.uuid4().hex[:10]}"
    try:
        with httpx.Client(base_url=api, headers={"x-functions-key": FUNCTION_KEY}, timeout=30) as manage:
            created = manage.put(f"/manage/tenants/{tenant}", json={})
            assert created.status_code == 201
            mail_opens = {**PIXEL, "require_signature": True}
            for dataset, declaration in (("signins", SIGNINS), ("contact", FORM), ("opens", mail_opens)):
                assert manage.put(f"/manage/tenants/{tenant}/datasets/{dataset}", json=declaration).status_code == 201
            numbers = manage.put(f"/manage/tenants/{tenant}/sequences/numbers", json={"format": "N-{SEQNUM:4}"})
            assert numbers.status_code == 201
        yield Home(api, tenant, created.json()["api_key"], created.json()["signing_key"])
    finally:
        stop_local_host(process)


@pytest.fixture
def client(home: Home) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=home.api, headers={"user-agent": BROWSER_UA}, timeout=60) as client:
        yield client


def json_routes(home: Home) -> list[tuple[str, str, dict[str, str]]]:
    """Every route that reads a JSON body, by the kind of caller: operator (function key), CRM (tenant key),
    web page (anonymous, from an allowed origin)."""
    t = home.tenant
    operator = {"x-functions-key": FUNCTION_KEY}
    crm = {"authorization": f"Bearer {home.api_key}"}
    page = {"origin": ORIGIN}
    return [
        ("PUT", f"/manage/tenants/{t}", operator),
        ("PUT", f"/manage/tenants/{t}/datasets/signins", operator),
        ("PUT", f"/manage/tenants/{t}/sequences/numbers", operator),
        ("POST", "/registrations", {"x-registration-key": REGISTRATION_KEY}),
        ("POST", f"/sync/{t}/signins/ack", crm),
        ("POST", f"/privacy/{t}/subjects/export", crm),
        ("POST", f"/privacy/{t}/subjects/erase", crm),
        ("POST", f"/autonumber/{t}/numbers/next", crm),
        ("POST", f"/geologin/{t}/signins", crm),
        ("POST", f"/forms/{t}/contact", page),
    ]


def storage(azurite, home: Home) -> dict[str, dict]:
    return blob_states(azurite, CONTAINERS, within=(home.tenant, "registrations/"))


def assert_json_error(answer: httpx.Response, status: int, code: str) -> None:
    assert answer.status_code == status, (answer.request.method, answer.request.url.path, answer.text[:200])
    assert answer.headers["content-type"].startswith("application/json")
    body = answer.json()
    assert body["error"] == code and body["detail"], body


@pytest.mark.parametrize("shape", sorted(JSON_SHAPES))
def test_hostile_json_is_a_400_on_every_json_route(client, home, azurite, shape):
    before = storage(azurite, home)
    for method, path, headers in json_routes(home):
        answer = client.request(
            method, path, content=JSON_SHAPES[shape], headers={**headers, "content-type": "application/json"}
        )
        assert_json_error(answer, 400, "invalid_json")
        assert "99999" not in answer.text and "11111" not in answer.text  # no submitted value in the answer
    assert storage(azurite, home) == before


@pytest.mark.parametrize("limit", QUERY_NUMBERS)
def test_a_limit_that_is_not_plain_ascii_digits_is_a_400(client, home, azurite, limit):
    auth = {"authorization": f"Bearer {home.api_key}"}
    answer = client.get(f"/sync/{home.tenant}/signins", params={"limit": limit}, headers=auth)
    assert_json_error(answer, 400, "invalid_limit")
    assert client.get(f"/sync/{home.tenant}/signins", params={"limit": "5"}, headers=auth).status_code == 200


@pytest.mark.parametrize("expires", QUERY_NUMBERS)
def test_a_signed_link_whose_expiry_is_not_plain_digits_answers_its_gif_and_records_nothing(
    client, home, azurite, expires
):
    before = storage(azurite, home)
    query = {"page_url": f"{ORIGIN}/pricing", "exp": expires}
    query["sig"] = sign_query(home.signing_key, home.tenant, "opens", query)  # signed: only the expiry is wrong
    answer = client.get(f"/px/{home.tenant}/opens", params=query)
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/gif"
    assert storage(azurite, home) == before
    query = {"page_url": f"{ORIGIN}/pricing", "exp": "99999999999"}
    query["sig"] = sign_query(home.signing_key, home.tenant, "opens", query)
    assert client.get(f"/px/{home.tenant}/opens", params=query).status_code == 200
    assert storage(azurite, home) != before  # the same link with a plain expiry counts


@pytest.mark.parametrize("argument", [*UNICODE_DIGITS, "9" * 80])
def test_a_sequence_format_argument_in_unicode_digits_is_a_422(client, home, azurite, argument):
    before = storage(azurite, home)
    answer = client.put(
        f"/manage/tenants/{home.tenant}/sequences/odd",
        json={"format": f"N-{{SEQNUM:{argument}}}"},
        headers={"x-functions-key": FUNCTION_KEY},
    )
    assert_json_error(answer, 422, "invalid_format")
    assert storage(azurite, home) == before


@pytest.mark.parametrize("value", [*UNICODE_DIGITS, "9" * 5_000, "1_000"])
@pytest.mark.parametrize("field", ["employees", "budget"])
@pytest.mark.parametrize("encoding", ["json", "urlencoded"])
def test_a_form_number_in_unicode_digits_or_of_thousands_of_digits_is_a_422(
    client, home, azurite, value, field, encoding
):
    before = storage(azurite, home)
    fields = {"email": "jane@example.com", "consent": "yes", field: value}
    body = {"json": fields} if encoding == "json" else {"data": fields}
    answer = client.post(f"/forms/{home.tenant}/contact", headers={"origin": ORIGIN}, **body)
    assert_json_error(answer, 422, "invalid_fields")
    assert [error["field"] for error in answer.json()["errors"]] == [field]
    assert storage(azurite, home) == before


def test_a_json_form_integer_of_thousands_of_digits_is_a_400(client, home, azurite):
    before = storage(azurite, home)
    body = b'{"email": "jane@example.com", "consent": "yes", "employees": ' + b"9" * 5_000 + b"}"
    answer = client.post(
        f"/forms/{home.tenant}/contact", content=body, headers={"origin": ORIGIN, "content-type": "application/json"}
    )
    assert_json_error(answer, 400, "invalid_json")
    assert storage(azurite, home) == before


def test_the_reviewed_multipart_form_is_refused_at_once(client, home, azurite):
    """The review's 30 KB post: a Content-Disposition whose parameters are a run of quoted semicolons. Python's
    email parser spent about 30 s on it; the raw-part check refuses it before any parsing."""
    before = storage(azurite, home)
    boundary = "----hostile" + uuid.uuid4().hex
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="email"; x=' + '";' * 15_000 + "\r\n\r\n"
        f"jane@example.com\r\n--{boundary}--\r\n"
    ).encode()
    answer = client.post(
        f"/forms/{home.tenant}/contact",
        content=body,
        headers={"origin": ORIGIN, "content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert_json_error(answer, 400, "invalid_form")
    assert storage(azurite, home) == before


def test_sign_ins_and_numbers_still_work_after_the_hostile_requests(client, home):
    auth = {"authorization": f"Bearer {home.api_key}"}
    assert client.post(f"/geologin/{home.tenant}/signins", json={"user_id": USER}, headers=auth).status_code == 201
    assert client.post(f"/autonumber/{home.tenant}/numbers/next", json={"count": 2}, headers=auth).status_code == 200
