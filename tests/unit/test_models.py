import pytest
from pydantic import ValidationError

from shared.core.bodies import validate_model
from shared.core.errors import Unprocessable
from shared.registry.models import Dataset
from tests.factories import EXAMPLE, variant


def test_the_documented_example_is_valid():
    dataset = Dataset.model_validate(EXAMPLE)
    assert dataset.retention_days == 14
    assert dataset.field_names == {"page_url", "visitor", "ip"}


def test_retention_over_30_days_names_the_limit():
    with pytest.raises(Unprocessable) as caught:
        validate_model(Dataset, variant(retention_days=31), "invalid_dataset", "dataset")
    assert caught.value.status == 422
    assert caught.value.body()["errors"][0]["field"] == "retention_days"
    assert "at most 30" in caught.value.body()["errors"][0]["reason"]


@pytest.mark.parametrize(
    "bad",
    [
        variant(retention_days=0),
        variant(unknown_option=True),
        variant(capability="fax"),
        variant(legal_basis="because"),
        variant(subject_field="email"),
        variant(fields=[]),
        variant(fields=[{"name": "a", "type": "string", "colour": "red"}]),
        variant(fields=[{"name": "Bad Name", "type": "string"}]),
        variant(fields=[{"name": "x", "type": "choice"}]),
        variant(fields=[{"name": "x", "type": "integer", "max_length": 3}]),
        variant(fields=[{"name": "x", "type": "string"}, {"name": "x", "type": "email"}], subject_field=None),
        variant(allowed_origins=["https://www.contoso.example/path"]),
        variant(allowed_origins=["http://www.contoso.example"]),
        variant(controller={"name": "Contoso", "email": "nope"}),
        variant(capability="webform", legal_basis="contract", keep_url_query=True),  # a pixel option
        variant(fields=[{"name": "x", "type": "string", "default_region": "NO"}]),  # phone fields only
        variant(fields=[{"name": "x", "type": "phone", "default_region": "XX"}]),  # no such region
        variant(fields=[{"name": "x", "type": "phone", "default_region": "NOR"}]),  # alpha-2 only
        variant(fields=[{"name": "x", "type": "phone", "default_region": "001"}]),
    ],
)
def test_invalid_declarations_are_refused(bad):
    with pytest.raises(ValidationError):
        Dataset.model_validate(bad)


def test_keep_url_query_is_off_unless_declared():
    assert Dataset.model_validate(EXAMPLE).keep_url_query is False
    assert Dataset.model_validate(variant(capability="webform", legal_basis="contract")).keep_url_query is False
    assert Dataset.model_validate(variant(keep_url_query=True)).keep_url_query is True


def test_origins_are_normalised():
    dataset = Dataset.model_validate(variant(allowed_origins=["https://WWW.Contoso.Example/", "http://localhost:8080"]))
    assert dataset.allowed_origins == ("https://www.contoso.example", "http://localhost:8080")


def test_a_phone_fields_default_region_is_a_known_region_and_its_refusal_names_the_field():
    dataset = Dataset.model_validate(
        variant(subject_field=None, fields=[{"name": "tel", "type": "phone", "default_region": "no"}])
    )
    assert dataset.fields[0].default_region == "NO"
    assert dataset.fields[0].normalise("22 33 44 55") == "+4722334455"
    plain = Dataset.model_validate(variant(subject_field=None, fields=[{"name": "tel", "type": "phone"}]))
    assert plain.fields[0].default_region is None
    with pytest.raises(Unprocessable) as caught:
        validate_model(
            Dataset,
            variant(subject_field=None, fields=[{"name": "tel", "type": "phone", "default_region": "QQ"}]),
            "invalid_dataset",
            "x",
        )
    error = caught.value.body()["errors"][0]
    assert error["field"] == "fields.0.default_region" and "ISO 3166 alpha-2" in error["reason"]
    assert "QQ" not in caught.value.body()["detail"] + error["reason"]
