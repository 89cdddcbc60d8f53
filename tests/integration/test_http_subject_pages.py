"""Data-subject requests over real HTTP, at the production page size: more records than one page are exported
over two calls and erased over two calls; a cursor the request was not given is a 400 that changes nothing."""

from __future__ import annotations

import base64
import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from shared.lifecycle.subject_requests import PAGE_ITEMS
from tests.factories import BROWSER_UA, all_blobs, blob_states, variant

SUBJECT = "visitor-planted"
OTHER = "visitor-other"


@pytest.fixture
def tenant(manage, tenant_id):
    created = manage.put(f"/manage/tenants/{tenant_id}", json={})
    assert created.status_code == 201
    answer = manage.put(f"/manage/tenants/{tenant_id}/datasets/visits", json=variant())
    assert answer.status_code == 201, answer.text
    return tenant_id, created.json()["api_key"]


@pytest.fixture
def client(host, tenant):
    _, key = tenant
    headers = {"authorization": f"Bearer {key}", "user-agent": BROWSER_UA}
    with httpx.Client(base_url=host, headers=headers, timeout=60) as client:
        yield client


def plant(services, tenant_id: str, visitor: str, count: int) -> list[str]:
    """Pixel records under one visitor value, as anyone could plant them (written here, not over HTTP)."""
    target = services.capture.resolve(tenant_id, "visits", "pixel")
    values = {"page_url": "https://www.contoso.example/pricing", "visitor": visitor}
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(lambda _: services.capture.capture(target, values).record.id, range(count)))


def post(client: httpx.Client, tenant_id: str, action: str, cursor: object = None) -> httpx.Response:
    body = {"subject": SUBJECT, **({"cursor": cursor} if cursor is not None else {})}
    return client.post(f"/privacy/{tenant_id}/subjects/{action}", json=body)


def ids(answer: dict) -> list[str]:
    return [r["id"] for d in answer["datasets"].values() for r in d["records"]]


def test_more_than_a_page_is_exported_in_two_calls_and_erased_in_two(services, client, tenant, azurite):
    tenant_id, _ = tenant
    mine = plant(services, tenant_id, SUBJECT, PAGE_ITEMS + 2)
    (theirs,) = plant(services, tenant_id, OTHER, 1)

    first = post(client, tenant_id, "export")
    assert first.status_code == 200, first.text
    first = first.json()
    assert (first["record_count"], first["more"]) == (PAGE_ITEMS, True) and first["next_cursor"]
    second = post(client, tenant_id, "export", first["next_cursor"]).json()
    assert (second["record_count"], second["more"], second["next_cursor"]) == (2, False, None)
    exported = ids(first) + ids(second)
    assert sorted(exported) == sorted(mine) and len(set(exported)) == len(exported)

    erased = post(client, tenant_id, "erase").json()
    assert (erased["erased"], erased["state_erased"], erased["more"]) == (PAGE_ITEMS, 0, True)
    rest = post(client, tenant_id, "erase", erased["next_cursor"]).json()
    assert (rest["erased"], rest["more"], rest["next_cursor"]) == (2, False, None)
    left = [json.loads(body)["id"] for body in all_blobs(azurite, "records", f"{tenant_id}/").values()]
    assert left == [theirs]
    again = post(client, tenant_id, "erase").json()
    assert (again["erased"], again["more"]) == (0, False)


def test_a_cursor_the_request_was_not_given_is_a_400_that_changes_nothing(services, client, tenant, azurite):
    tenant_id, _ = tenant
    plant(services, tenant_id, SUBJECT, 2)
    plant(services, tenant_id, OTHER, 2)
    # A page of one record makes real cursors to tamper with.
    small = services.subject_requests(page_items=1)
    first = small.export(tenant_id, SUBJECT)
    cursor = first["next_cursor"]
    another_subject = small.export(tenant_id, OTHER)["next_cursor"]
    middle = len(cursor) // 2
    bad = [
        "zq9-forged",
        "' OR 1=1 --",
        cursor[:middle] + ("A" if cursor[middle] != "A" else "B") + cursor[middle + 1 :],
        cursor[:-4],
        f"{cursor}'",
        "A" * 9000,
        base64.urlsafe_b64encode(b"\0" * 12 + b"[0, null, null]" + b"\0" * 16).rstrip(b"=").decode(),
        another_subject,
    ]
    before = blob_states(azurite, ("records", "state", "audit"), within=(tenant_id,))
    for action in ("export", "erase"):
        for value in bad:
            answer = post(client, tenant_id, action, value)
            assert answer.status_code == 400, (action, value, answer.text)
            assert answer.headers["content-type"].startswith("application/json")
            assert answer.json()["error"] == "invalid_cursor"
            assert value not in answer.text and SUBJECT not in answer.text
        typed = post(client, tenant_id, action, 5)  # not a string at all: the body's schema
        assert typed.status_code == 422 and typed.json()["error"] == "invalid_subject_request"
    assert blob_states(azurite, ("records", "state", "audit"), within=(tenant_id,)) == before
    # The cursor it was given goes on over HTTP too (the host's page takes the one record left).
    following = post(client, tenant_id, "export", cursor).json()
    assert (following["record_count"], following["more"]) == (1, False)
    assert ids(following) != ids(first)
