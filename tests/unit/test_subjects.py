"""Data subjects: one normalisation-then-hash for capture tags, personal state and data-subject requests,
whatever the spelling. On a real capture store: tests/integration/test_subjects.py."""

from __future__ import annotations

import pytest

from shared.capture.subjects import request_tags, stored_subject_tag, subject_tag
from shared.core.fieldtypes import FIELD_TYPES, InvalidValue
from tests.factories import MASTER_KEY, SPELLINGS, declaration, spec


def test_every_field_type_has_its_spellings():
    assert set(SPELLINGS) == set(FIELD_TYPES)


@pytest.mark.parametrize("field_type", sorted(SPELLINGS))
def test_spellings_of_one_value_have_one_tag_and_other_values_another(field_type):
    captured, asked, other = SPELLINGS[field_type]
    tag = subject_tag(MASTER_KEY, "t-one", spec(field_type), captured)
    assert subject_tag(MASTER_KEY, "t-one", spec(field_type), asked) == tag
    assert subject_tag(MASTER_KEY, "t-one", spec(field_type), other) != tag
    assert subject_tag(MASTER_KEY, "t-two", spec(field_type), captured) != tag  # keyed per tenant


@pytest.mark.parametrize("field_type", sorted(SPELLINGS))
def test_a_stored_value_has_the_tag_of_every_spelling_of_it(field_type):
    # The capture store tags a record by its stored value without normalising it again: normalising is
    # idempotent, so that tag is the one a data-subject request's spelling finds.
    captured, asked, _ = SPELLINGS[field_type]
    stored = spec(field_type).normalise(captured)
    assert spec(field_type).normalise(stored) == stored
    tag = stored_subject_tag(MASTER_KEY, "t-one", stored)
    assert tag == subject_tag(MASTER_KEY, "t-one", spec(field_type), captured)
    assert tag == subject_tag(MASTER_KEY, "t-one", spec(field_type), asked)


def test_a_value_that_is_not_of_the_field_type_has_no_tag_and_the_request_skips_that_dataset():
    with pytest.raises(InvalidValue):
        subject_tag(MASTER_KEY, "t-one", spec("phone"), "jane")
    with pytest.raises(InvalidValue):
        subject_tag(MASTER_KEY, "t-one", spec("string"), "a\ud800")  # a lone surrogate is not text
    phones = doc("phones", "phone")
    names = doc("names", "string")
    assert request_tags(MASTER_KEY, "t-one", [phones, names], "jane") == {
        subject_tag(MASTER_KEY, "t-one", spec("string"), "jane")
    }
    assert len(request_tags(MASTER_KEY, "t-one", [phones, names], "+47 22 33 44 55")) == 2


def doc(dataset_id: str, field_type: str):
    from datetime import UTC, datetime

    from shared.registry.models import DatasetDoc

    now = datetime.now(UTC)
    return DatasetDoc.model_validate(
        {**declaration(field_type), "tenant": "t-one", "id": dataset_id, "created_at": now, "updated_at": now}
    )


def test_a_national_spelling_finds_the_number_in_a_dataset_with_a_default_region():
    from shared.registry.models import FieldSpec

    national = FieldSpec(name="who", type="phone", default_region="NO")
    captured = subject_tag(MASTER_KEY, "t-one", national, "22 33 44 55")
    assert subject_tag(MASTER_KEY, "t-one", national, "+47 22334455") == captured
    assert subject_tag(MASTER_KEY, "t-one", spec("phone"), "0047 22 33 44 55") == captured
    with pytest.raises(InvalidValue):
        subject_tag(MASTER_KEY, "t-one", spec("phone"), "22 33 44 55")  # without a region, no national form
    norwegian = doc_of("callbacks", national)
    international = doc("phones", "phone")
    assert request_tags(MASTER_KEY, "t-one", [norwegian, international], "22 33 44 55") == {captured}
    assert request_tags(MASTER_KEY, "t-one", [norwegian, international], "+4722334455") == {captured}


def doc_of(dataset_id: str, field):
    from datetime import UTC, datetime

    from shared.registry.models import DatasetDoc
    from tests.factories import variant

    now = datetime.now(UTC)
    fields = [field.model_dump(exclude_none=True), {"name": "page", "type": "string", "personal": False}]
    return DatasetDoc.model_validate(
        {
            **variant(subject_field="who", fields=fields),
            "tenant": "t-one",
            "id": dataset_id,
            "created_at": now,
            "updated_at": now,
        }
    )
