"""Tag queries find every match, however many blobs sort before it, on the emulator too.

Azurite (3.37) answers Find Blobs by Tags from the container's first page of blobs only (its FilterBlobPage
advances by the matches, not by the blobs read, and gives no continuation when a page holds none): a tenant
whose blobs sort after a page of others' found nothing. On the emulator `Storage` evaluates the query over a
listing of the tenant's blobs instead (shared/storage/emulated_tags.py). This module's own Azurite holds a
full page of other blobs that sort before every tenant, so each test below (the filler's own check aside)
failed before that path existed.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from azure.storage.blob import BlobServiceClient

from devenv.azurite import Azurite
from shared.dataverse import dead_letters
from shared.lifecycle.subject_requests import SubjectRequests
from shared.registry.models import Dataset, TenantIn
from shared.storage.blobs import FIND_PAGE_MAX, RECORDS, tag_query
from tests.factories import MASTER_KEY, all_blobs, variant

# A query without a page size gets Azurite's default page, the service's maximum: so many blobs that sort
# before every tenant ("!" sorts before any id) fill it.
FILLER = FIND_PAGE_MAX
FILLER_PREFIX = "!filler/"
FORM_FIELDS = [{"name": "email", "type": "email", "required": True}]


def fill(azurite: Azurite) -> None:
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    container = service.create_container(RECORDS)

    def put(n: int) -> None:
        container.upload_blob(f"{FILLER_PREFIX}{n:05d}.json", b"{}", tags={"t": "filler"})

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(put, range(FILLER)))


pytestmark = pytest.mark.own_azurite


@pytest.fixture(scope="module", autouse=True)
def _filled(own_azurite: Azurite) -> None:
    """This module's own Azurite, with a page of filler blobs that sort before every tenant's records."""
    fill(own_azurite)


@pytest.fixture
def tenant(services, tenant_id):
    services.registry.put_tenant(tenant_id, TenantIn())
    services.registry.put_dataset(tenant_id, "visits", Dataset.model_validate(variant(retention_days=1)))
    services.registry.put_dataset(
        tenant_id,
        "contact",
        Dataset.model_validate(
            variant(capability="webform", legal_basis="contract", subject_field="email", fields=FORM_FIELDS)
        ),
    )
    return tenant_id


def visit(services, tenant: str) -> str:
    target = services.capture.resolve(tenant, "visits", "pixel")
    return str(services.capture.capture(target, {"page_url": "https://www.contoso.example/"}).record.id)


def form(services, tenant: str, email: str) -> str:
    target = services.capture.resolve(tenant, "contact", "webform")
    return str(services.capture.capture(target, {"email": email}).record.id)


def held(services_azurite: Azurite, tenant: str) -> set[str]:
    return {json.loads(body)["id"] for body in all_blobs(services_azurite, RECORDS, f"{tenant}/").values()}


def filler_left(services_azurite: Azurite) -> int:
    client = BlobServiceClient.from_connection_string(services_azurite.connection_string).get_container_client(RECORDS)
    return sum(1 for _ in client.list_blobs(name_starts_with=FILLER_PREFIX))


def test_the_filler_fills_the_page_azurite_answers_from(services_azurite):
    assert filler_left(services_azurite) == FILLER


def test_the_purge_deletes_expired_records_that_sort_after_a_page_of_others(services_azurite, services, clock, tenant):
    expired = {visit(services, tenant) for _ in range(3)}
    clock.advance(timedelta(days=2))  # past the visits' retention of one day
    kept = {form(services, tenant, "jane@example.com")}
    report = services.purger().run()
    assert held(services_azurite, tenant) == kept
    assert report.deleted == len(expired)
    assert filler_left(services_azurite) == FILLER  # not expired: untouched


def test_an_export_and_an_erasure_find_every_record_of_the_subject(services_azurite, services, tenant):
    requests = SubjectRequests(services.storage, services.registry, services.audit, MASTER_KEY)
    mine = {form(services, tenant, "jane@example.com") for _ in range(3)}
    other = form(services, tenant, "john@example.com")
    exported = requests.export(tenant, "Jane@Example.com")
    assert exported["record_count"] == len(mine)
    assert {r["id"] for r in exported["datasets"]["contact"]["records"]} == mine
    erased = requests.erase(tenant, "jane@example.com")
    assert erased.records == len(mine)
    assert held(services_azurite, tenant) == {other}


def test_dead_letters_come_in_small_pages_with_none_missed(services, clock, tenant):
    ids = sorted(visit(services, tenant) for _ in range(7))
    dead = ids[1::2]
    for record_id in dead:
        assert dead_letters.mark(services.storage, tenant, "visits", record_id, 400, "bad", None, clock.now())
    listed, marker, pages = [], None, 0
    while True:
        letters, marker = dead_letters.page(services.storage, tenant, "visits", 2, marker)
        listed += [letter.record_id for letter in letters]
        pages += 1
        assert len(letters) <= 2 and pages <= len(dead) + 1
        if marker is None:
            break
    assert listed == dead
    assert dead_letters.count(services.storage, tenant, "visits", 10) == (len(dead), False)
    assert dead_letters.count(services.storage, tenant, "visits", 2) == (2, True)


def test_a_page_of_a_tag_query_holds_at_most_its_size_in_name_order_and_the_marker_goes_on(services, tenant):
    ids = {visit(services, tenant) for _ in range(5)}
    where = tag_query(tenant=tenant, dataset="visits")
    names, marker, pages = [], None, 0
    while True:
        page = services.storage.find_page_by_tags(RECORDS, where, marker=marker, page_size=2)
        assert len(page.names) <= 2
        names += page.names
        marker, pages = page.marker, pages + 1
        if marker is None:
            break
        assert pages < 10
    assert names == sorted(names) and len(names) == len(set(names))
    assert {name.rsplit("/", 1)[-1].removesuffix(".json") for name in names} == ids
    assert set(services.storage.find_by_tags(RECORDS, where)) == set(names)
