"""The manage API over real HTTP through the local host: tenants, datasets, and every bad input."""

from __future__ import annotations

import pytest

from tests.factories import EXAMPLE, all_blobs, blob_states, variant


def snapshot(azurite):
    return blob_states(azurite, ("registry", "records"))


@pytest.fixture
def tenant(manage, tenant_id):
    answer = manage.put(f"/manage/tenants/{tenant_id}", json={"name": "Contoso"})
    assert answer.status_code == 201
    return answer.json()


def test_tenant_lifecycle(manage, tenant_id, azurite):
    created = manage.put(f"/manage/tenants/{tenant_id}", json={"name": "Contoso"})
    assert created.status_code == 201
    body = created.json()
    assert body["id"] == tenant_id and body["region"] == "eu"
    assert body["api_key"].startswith("pck_") and len(body["signing_key"]) == 64
    shown = manage.get(f"/manage/tenants/{tenant_id}").json()
    assert "api_key" not in shown and "api_key_sha256" not in shown and "signing_key" not in shown
    again = manage.put(f"/manage/tenants/{tenant_id}", json={"name": "Contoso Ltd"})
    assert again.status_code == 200 and "api_key" not in again.json() and again.json()["name"] == "Contoso Ltd"
    assert body["api_key"] not in str(all_blobs(azurite, "registry"))
    assert manage.delete(f"/manage/tenants/{tenant_id}").status_code == 204
    assert manage.get(f"/manage/tenants/{tenant_id}").status_code == 404
    assert manage.delete(f"/manage/tenants/{tenant_id}").status_code == 404


def test_dataset_lifecycle(manage, tenant, tenant_id):
    path = f"/manage/tenants/{tenant_id}/datasets/pricing"
    assert manage.put(path, json=EXAMPLE).status_code == 201
    replaced = manage.put(path, json=variant(retention_days=7))
    assert replaced.status_code == 200 and replaced.json()["retention_days"] == 7
    got = manage.get(path).json()
    assert got["id"] == "pricing" and got["tenant"] == tenant_id and got["fields"][0]["name"] == "page_url"
    listed = manage.get(f"/manage/tenants/{tenant_id}/datasets").json()
    assert [doc["id"] for doc in listed["datasets"]] == ["pricing"]
    assert manage.delete(path).status_code == 204
    assert manage.get(path).status_code == 404


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/manage/tenants/Contoso", 400, "invalid_id"),
        ("/manage/tenants/a", 400, "invalid_id"),
        ("/manage/tenants/-abc", 400, "invalid_id"),
        ("/manage/tenants/" + "a" * 64, 400, "invalid_id"),
        ("/manage/tenants/abc%2e%2e", 400, "invalid_id"),
        ("/manage/tenants/ab%C3%A7", 400, "invalid_id"),
    ],
)
def test_bad_tenant_ids_are_refused_before_storage(manage, azurite, path, status, code):
    before = snapshot(azurite)
    for method in ("PUT", "GET", "DELETE"):
        answer = manage.request(method, path, json={})
        assert answer.status_code == status, method
        assert answer.json()["error"] == code
    assert snapshot(azurite) == before


def test_bad_dataset_id_is_refused(manage, tenant, tenant_id, azurite):
    before = snapshot(azurite)
    answer = manage.put(f"/manage/tenants/{tenant_id}/datasets/Pricing_Page", json=EXAMPLE)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_id"
    assert snapshot(azurite) == before


@pytest.mark.parametrize(
    ("kwargs", "status", "code", "named"),
    [
        ({"json": variant(retention_days=31)}, 422, "invalid_dataset", "retention_days"),
        ({"json": variant(surprise="x")}, 422, "invalid_dataset", "surprise"),
        ({"json": variant(fields=[{"name": "a", "type": "string", "secret": 1}])}, 422, "invalid_dataset", "secret"),
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, "invalid_json", "JSON"),
        ({"content": b"[1, 2]", "headers": {"content-type": "application/json"}}, 400, "invalid_json", "object"),
        ({"content": b"\xff\xfe", "headers": {"content-type": "application/json"}}, 400, "invalid_json", "JSON"),
        (
            {"content": b"capability=pixel", "headers": {"content-type": "text/plain"}},
            415,
            "unsupported_media_type",
            "application/json",
        ),
        (
            {"content": b"{" + b" " * 70_000 + b"}", "headers": {"content-type": "application/json"}},
            413,
            "body_too_large",
            "65536",
        ),
    ],
)
def test_bad_dataset_documents_get_a_named_4xx_and_change_nothing(
    manage, tenant, tenant_id, azurite, kwargs, status, code, named
):
    before = snapshot(azurite)
    answer = manage.put(f"/manage/tenants/{tenant_id}/datasets/pricing", **kwargs)
    assert answer.status_code == status
    assert answer.json()["error"] == code
    assert named in answer.json()["detail"]
    assert snapshot(azurite) == before


def test_bad_tenant_body_is_refused(manage, tenant_id, azurite):
    before = snapshot(azurite)
    answer = manage.put(f"/manage/tenants/{tenant_id}", json={"region": "mars"})
    assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "region"
    assert snapshot(azurite) == before


@pytest.mark.parametrize("headers", [{}, {"x-functions-key": "wrong"}])
def test_wrong_function_key_is_401(host, tenant_id, headers, azurite):
    import httpx

    before = snapshot(azurite)
    answer = httpx.put(f"{host}/manage/tenants/{tenant_id}", json={}, headers=headers)
    assert answer.status_code == 401
    assert answer.json()["error"] == "unauthorized"
    assert snapshot(azurite) == before


def test_tenant_region_is_fixed_and_foreign_tenants_take_no_datasets(manage, tenant_id, azurite):
    assert manage.put(f"/manage/tenants/{tenant_id}", json={"region": "us"}).status_code == 201
    moved = manage.put(f"/manage/tenants/{tenant_id}", json={"region": "eu"})
    assert moved.status_code == 409 and moved.json()["error"] == "region_change"
    before = snapshot(azurite)
    answer = manage.put(f"/manage/tenants/{tenant_id}/datasets/pricing", json=EXAMPLE)
    assert answer.status_code == 421
    assert answer.json()["region"] == "us" and answer.json()["base_url"].startswith("https://packcloud-us")
    assert snapshot(azurite) == before


def test_capability_of_a_dataset_cannot_change(manage, tenant, tenant_id):
    path = f"/manage/tenants/{tenant_id}/datasets/pricing"
    assert manage.put(path, json=EXAMPLE).status_code == 201
    answer = manage.put(path, json=variant(capability="webform", legal_basis="contract"))
    assert answer.status_code == 409 and answer.json()["error"] == "capability_change"


def test_datasets_of_an_unknown_tenant_are_404(manage):
    answer = manage.get("/manage/tenants/nobody-here/datasets")
    assert answer.status_code == 404 and answer.json()["error"] == "unknown_tenant"


def test_a_tenant_has_at_most_a_hundred_datasets(manage, tenant, tenant_id, azurite):
    """Its dataset list, DPO report and deletion read every dataset: their number is bounded at creation."""
    from shared.registry.datasets import MAX_DATASETS_PER_TENANT

    for n in range(MAX_DATASETS_PER_TENANT):
        assert manage.put(f"/manage/tenants/{tenant_id}/datasets/d-{n}", json=EXAMPLE).status_code == 201
    before = snapshot(azurite)
    refused = manage.put(f"/manage/tenants/{tenant_id}/datasets/one-more", json=EXAMPLE)
    assert refused.status_code == 409 and refused.json()["error"] == "too_many_datasets"
    assert snapshot(azurite) == before
    assert manage.put(f"/manage/tenants/{tenant_id}/datasets/d-7", json=EXAMPLE).status_code == 200  # replaced
    assert manage.delete(f"/manage/tenants/{tenant_id}/datasets/d-7").status_code == 204
    assert manage.put(f"/manage/tenants/{tenant_id}/datasets/one-more", json=EXAMPLE).status_code == 201
