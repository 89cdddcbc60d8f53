"""Data subjects: one normalisation-then-hash for capture tags, personal state and data-subject requests,
whatever the spelling. On a real capture store: tests/integration/test_subjects.py."""

from __future__ import annotations

import pytest

from shared.capture.subjects import request_tags, subject_tag
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
