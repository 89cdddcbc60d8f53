"""The tracking pixel over real HTTP through the local host."""

from __future__ import annotations

import json
import re

import pytest

from shared.pixel.hits import GIF
from tests.factories import EXAMPLE, all_blobs, blob_states

PAGE = "https://www.contoso.example/pricing"


@pytest.fixture
def tenant(manage, tenant_id):
    assert manage.put(f"/manage/tenants/{tenant_id}", json={}).status_code == 201
    assert manage.put(f"/manage/tenants/{tenant_id}/datasets/pricing", json=EXAMPLE).status_code == 201
    return tenant_id


def records(azurite, tenant):
    return [json.loads(body) for body in all_blobs(azurite, "records", f"{tenant}/").values()]


def assert_gif(answer):
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "image/gif"
    assert "no-store" in answer.headers["cache-control"]
    assert answer.content == GIF


def test_pixel_records_one_page_view(anon, tenant, azurite):
    answer = anon.get(
        f"/px/{tenant}/pricing",
        params={"page_url": PAGE, "visitor": "v-1", "name": "Jane"},
        headers={"referer": "https://www.contoso.example/"},
    )
    assert_gif(answer)
    (record,) = records(azurite, tenant)
    assert record["fields"] == {"page_url": PAGE, "visitor": "v-1", "ip": "127.0.0.0"}
    assert "Jane" not in json.dumps(record)


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/px/{tenant}/pricing", {"referer": ""}),  # page_url on an allowed site, but no header says so
        ("/px/{tenant}/pricing", {"sec-gpc": "1"}),
        ("/px/{tenant}/pricing", {"dnt": "1"}),
        ("/px/{tenant}/pricing", {"user-agent": "Googlebot/2.1 (+http://www.google.com/bot.html)"}),
        ("/px/{tenant}/unknown", {}),
        ("/px/nobody-here/pricing", {}),
        ("/px/{tenant}/Bad_Id", {}),
    ],
)
def test_pixel_answers_the_gif_and_records_nothing(anon, tenant, azurite, path, headers):
    before = blob_states(azurite, ("records",))
    # From an allowed page, so that each case is refused for its own reason only.
    headers = {"referer": "https://www.contoso.example/", **headers}
    answer = anon.get(path.format(tenant=tenant), params={"page_url": PAGE}, headers=headers)
    assert_gif(answer)
    assert blob_states(azurite, ("records",)) == before


def test_snippet_is_served_configured(anon, tenant):
    answer = anon.get("/px/snippet.js", params={"tenant": tenant, "dataset": "pricing"})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/javascript")
    config = json.loads(re.search(r"var config = (\{.*?\});", answer.text).group(1))
    assert config["enabled"] is True
    assert config["endpoint"] == str(anon.base_url).rstrip("/") + f"/px/{tenant}/pricing"


def test_snippet_for_unknown_dataset_does_nothing(anon):
    answer = anon.get("/px/snippet.js", params={"tenant": "nobody-here", "dataset": "x1"})
    assert answer.status_code == 200
    assert json.loads(re.search(r"var config = (\{.*?\});", answer.text).group(1)) == {"enabled": False}
