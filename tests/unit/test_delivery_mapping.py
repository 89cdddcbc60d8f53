"""The `delivery` of a dataset: checked at declaration, with a 422 naming each entry; pull by default."""

import pytest

from shared.core.bodies import validate_model
from shared.core.errors import Unprocessable
from shared.registry.delivery_mapping import row_values
from shared.registry.models import Dataset, DatasetDoc
from tests.factories import EXAMPLE, FORM, FORM_TO_LEADS, PIXEL_DELIVERED, PIXEL_TO_LEADS, SIGNINS, variant


def refused(doc: dict) -> list[dict[str, str]]:
    with pytest.raises(Unprocessable) as caught:
        validate_model(Dataset, doc, "invalid_dataset", "dataset")
    assert caught.value.status == 422
    return caught.value.body()["errors"]


def test_pull_is_the_default_so_existing_datasets_load_unchanged():
    assert Dataset.model_validate(EXAMPLE).delivery.mode == "pull"
    stored = {
        **EXAMPLE,
        "tenant": "t1",
        "id": "d1",
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
    }
    assert DatasetDoc.model_validate(stored).delivery.mode == "pull"  # a document stored before delivery existed


def test_a_complete_mapping_is_accepted():
    assert Dataset.model_validate(PIXEL_DELIVERED).delivery.table == "leads"
    assert Dataset.model_validate({**FORM, "delivery": FORM_TO_LEADS}).delivery.meta == {"consent": "pc_consent"}


@pytest.mark.parametrize(
    ("mapping", "field"),
    [
        ({**PIXEL_TO_LEADS, "columns": {"page_url": "pc_page", "email": "emailaddress1"}}, "delivery.columns.email"),
        ({**PIXEL_TO_LEADS, "table": None}, "delivery.table"),
        ({**PIXEL_TO_LEADS, "key": None}, "delivery.key"),
        ({**PIXEL_TO_LEADS, "columns": {}, "meta": {}}, "delivery.columns"),
        ({**PIXEL_TO_LEADS, "table": "leads(pc_recordid='x')"}, "delivery.table"),
        ({**PIXEL_TO_LEADS, "table": "Leads"}, "delivery.table"),
        ({**PIXEL_TO_LEADS, "key": "pc id"}, "delivery.key"),
        ({**PIXEL_TO_LEADS, "columns": {"page_url": "pc_page\r\nX-Injected: 1"}}, "delivery.columns.page_url"),
        ({**PIXEL_TO_LEADS, "columns": {"page_url": "pc_recordid"}}, "delivery.columns.page_url"),
        ({**PIXEL_TO_LEADS, "columns": {"page_url": "pc_x", "visitor": "pc_x"}}, "delivery.columns.visitor"),
        ({**PIXEL_TO_LEADS, "meta": {"consent": "pc_consent"}}, "delivery.meta.consent"),
        ({**PIXEL_TO_LEADS, "meta": {"impossible_travel": "pc_travel"}}, "delivery.meta.impossible_travel"),
        ({**PIXEL_TO_LEADS, "meta": {"visitor_ip": "pc_ip"}}, "delivery.meta.visitor_ip"),
        ({**PIXEL_TO_LEADS, "mode": "push"}, "delivery.mode"),
        ({**PIXEL_TO_LEADS, "colour": "red"}, "delivery.colour"),
    ],
)
def test_every_bad_mapping_is_a_422_naming_the_entry(mapping, field):
    fields = [error["field"] for error in refused(variant(delivery=mapping))]
    assert any(name == field or name.startswith(field + ".") for name in fields), fields


def test_consent_meta_needs_a_consent_field():
    no_consent = {**FORM, "legal_basis": "contract", "consent_field": None, "consent_text_version": None}
    fields = [e["field"] for e in refused({**no_consent, "delivery": FORM_TO_LEADS})]
    assert fields == ["delivery.meta.consent"]


def test_a_geologin_dataset_may_map_impossible_travel():
    mapping = {
        "mode": "dataverse",
        "table": "pc_signins",
        "key": "pc_recordid",
        "meta": {"impossible_travel": "pc_alert"},
    }
    assert Dataset.model_validate({**SIGNINS, "delivery": mapping}).delivery.meta == {"impossible_travel": "pc_alert"}


def test_a_mapping_in_pull_mode_is_checked_too():
    fields = [e["field"] for e in refused(variant(delivery={**PIXEL_TO_LEADS, "mode": "pull", "columns": {"x": "y"}}))]
    assert fields == ["delivery.columns.x"]


def test_a_row_holds_the_mapped_fields_and_meta_only():
    record = {
        "id": "20261123T100000000000Z-0123456789abcdef",
        "captured_at": "2026-11-23T10:00:00Z",
        "expires_at": "2026-12-07T10:00:00Z",
        "fields": {"page_url": "https://www.contoso.example/", "visitor": "v-1", "ip": "192.0.2.0"},
        "meta": {},
    }
    mapping = Dataset.model_validate(PIXEL_DELIVERED).delivery
    assert row_values(mapping, record) == {
        "pc_page": "https://www.contoso.example/",
        "pc_visitor": "v-1",
        "pc_capturedat": "2026-11-23T10:00:00Z",
    }  # ip is declared but not mapped: it never leaves


def test_a_field_the_record_lacks_is_not_sent():
    mapping = Dataset.model_validate(PIXEL_DELIVERED).delivery
    assert row_values(mapping, {"fields": {"page_url": "https://x.example/"}, "meta": {}}) == {
        "pc_page": "https://x.example/"
    }


def test_consent_meta_comes_from_the_record():
    mapping = Dataset.model_validate({**FORM, "delivery": FORM_TO_LEADS}).delivery
    record = {"fields": {"email": "a@b.example"}, "meta": {"consent": {"given": True, "text_version": "v7", "at": "x"}}}
    assert row_values(mapping, record) == {"emailaddress1": "a@b.example", "pc_consent": "v7"}
