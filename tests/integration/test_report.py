"""The DPO report on Azurite: its storage reads are bounded (docs/privacy.md), whatever is held and however long
the audit is; a dataset without records; an audit chain that no longer verifies."""

from __future__ import annotations

from datetime import timedelta

import yaml

from shared.lifecycle.report import processing_record
from shared.lifecycle.report_page import render_html
from shared.registry.models import Dataset, TenantIn
from shared.storage.blobs import AUDIT
from tests.factories import ROOT, variant

DATASETS = 20
AUDIT_DAYS = 45  # more than the report's window: older days are listed, never read
# docs/privacy.md: 2D + K + 4V + 38 for D datasets, K kinds of personal state among them, V dataverse datasets.
BOUND = 2 * DATASETS + 38


def report_reads(services, tenant_id: str) -> tuple[dict, int]:
    tenant = services.registry.get_tenant(tenant_id, fresh=True)
    services.storage.container(AUDIT)  # the containers are made once per process, not per report
    before = services.storage.transport.sent
    made = processing_record(tenant, services.registry, services.storage, services.audit, services.clock)
    return made, services.storage.transport.sent - before


def test_a_report_of_20_datasets_and_30_days_of_audit_reads_storage_a_bounded_number_of_times(
    services, clock, tenant_id
):
    services.registry.put_tenant(tenant_id, TenantIn())
    names = [f"ds-{n:02d}" for n in range(DATASETS)]
    for name in names:
        services.registry.put_dataset(tenant_id, name, Dataset.model_validate(variant(retention_days=30)))
    start = clock.now()
    for day in range(AUDIT_DAYS):  # one capture a day in two datasets, and one acknowledgement
        clock.set(start + timedelta(days=day))
        for name in names[:2]:
            services.capture.capture(services.capture.resolve(tenant_id, name, "pixel"), {"page_url": "https://a.b/"})
        services.counts.flush()
        services.audit.append(tenant_id, "delivery", dataset=names[0], acknowledged=1, deleted=1)
    made, reads = report_reads(services, tenant_id)
    assert len(made["datasets"]) == DATASETS and made["audit_chain"]["verified"]
    by_id = {d["dataset"]: d for d in made["datasets"]}
    # The window holds today and the 29 days before.
    assert by_id["ds-00"]["last_30_days"]["captured"] == 30 and by_id["ds-00"]["last_30_days"]["delivered"] == 30
    assert by_id["ds-05"]["last_30_days"] == dict.fromkeys(("captured", "delivered", "purged", "erased", "refused"), 0)
    assert reads <= BOUND
    # Records held do not add reads (each listing is one request up to the count bound), nor do more datasets' entries.
    for name in names:
        services.capture.capture(services.capture.resolve(tenant_id, name, "pixel"), {"page_url": "https://a.b/"})
    services.counts.flush()
    _, again = report_reads(services, tenant_id)
    assert again == reads


def test_a_dataset_without_records_shows_no_age_and_a_broken_chain_shows(services, tenant_id, azurite):
    services.registry.put_tenant(tenant_id, TenantIn())
    services.registry.put_dataset(tenant_id, "visits", Dataset.model_validate(variant()))
    services.audit.append(tenant_id, "tenant", change="created", region="eu")
    made, _ = report_reads(services, tenant_id)
    (dataset,) = made["datasets"]
    assert dataset["records_held"] == 0 and dataset["oldest_record_age_s"] is None and dataset["retention_used"] is None
    page = render_html(made)
    assert "no records held" in page and " s</dd>" not in page and "Audit chain of the tenant: verifies" in page

    # An entry altered in storage: the report says so instead of "verifies".
    container = services.storage.container(AUDIT)
    (name,) = [b.name for b in container.list_blobs(name_starts_with=f"{tenant_id}/")]
    body = container.download_blob(name).readall().replace(b'"change":"created"', b'"change":"updated"')
    container.upload_blob(name, body, overwrite=True)
    made, _ = report_reads(services, tenant_id)
    assert made["audit_chain"]["verified"] is False and "altered" in made["audit_chain"]["detail"]
    assert "does not verify" in render_html(made)


def test_the_json_form_has_what_openapi_says_it_has(services, tenant_id):
    schemas = yaml.safe_load((ROOT / "openapi.yaml").read_text())["components"]["schemas"]
    services.registry.put_tenant(tenant_id, TenantIn())
    services.registry.put_dataset(tenant_id, "visits", Dataset.model_validate(variant()))
    made, _ = report_reads(services, tenant_id)
    (dataset,) = made["datasets"]
    for schema, value in [
        ("Report", made),
        ("ReportDataset", dataset),
        ("ReportCounts", dataset["last_30_days"]),
        ("ReportCounts", dataset["activity"][0]),
        ("ReportWeek", made["subject_requests"][0]),
    ]:
        assert set(schemas[schema]["required"]) <= set(value), schema
    assert set(schemas["ReportDataset"]["properties"]) == set(dataset)
