"""Key derivation, generations and the signing-key grace, without storage."""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from shared.core.clock import ManualClock
from shared.core.keys import GENERATION_PATTERN, new_generation, signing_key_text, subject_hash
from shared.registry.models import (
    MAX_RETIRED_SIGNING_KEYS,
    DatasetDoc,
    KeyRotation,
    Record,
    Tenant,
)
from tests.factories import EXAMPLE

MASTER = "m" * 48
START = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def tenant(**changes) -> Tenant:
    doc = {
        "id": "contoso",
        "region": "eu",
        "api_key_sha256": "0" * 64,
        "generation": "0123456789abcdef",
        "created_at": START,
        "updated_at": START,
    }
    return Tenant.model_validate({**doc, **changes})


def test_generations_are_random_and_of_the_documented_shape():
    drawn = {new_generation() for _ in range(1000)}
    assert len(drawn) == 1000
    assert all(re.fullmatch(GENERATION_PATTERN, value) for value in drawn)


def test_signing_key_depends_on_tenant_generation_and_version():
    base = signing_key_text(MASTER, "contoso", "0123456789abcdef", 1)
    assert len(base) == 64
    others = {
        signing_key_text(MASTER, "contoso", "fedcba9876543210", 1),  # the same tenant id, created again
        signing_key_text(MASTER, "contoso", "0123456789abcdef", 2),  # rotated
        signing_key_text(MASTER, "fabrikam", "0123456789abcdef", 1),
        signing_key_text(MASTER, "contoso", "", 1),
        signing_key_text("n" * 48, "contoso", "0123456789abcdef", 1),
    }
    assert base not in others and len(others) == 5
    assert signing_key_text(MASTER, "contoso", "0123456789abcdef", 1) == base  # derived, so stable


def test_a_tenant_stored_before_generations_keeps_the_signing_key_it_handed_out():
    # What the derivation was before generations existed: links already sent must keep counting.
    before = hmac.new(MASTER.encode(), b"packcloud|pixel-signing|contoso|v1", hashlib.sha256).hexdigest()
    assert signing_key_text(MASTER, "contoso", "", 1) == before


def test_subject_hash_stays_per_tenant_id_across_generations():
    # Erasure for a re-created tenant must still find what a stale instance stored for the deleted one.
    assert subject_hash(MASTER, "contoso", "a@b.c") == subject_hash(MASTER, "contoso", "A@B.c")
    assert subject_hash(MASTER, "contoso", "a@b.c") != subject_hash(MASTER, "fabrikam", "a@b.c")


def test_a_retired_signing_key_counts_exactly_until_its_grace_ends():
    clock = ManualClock(START)
    rotated = tenant().with_rotated_signing_key(clock.now(), timedelta(days=30))
    assert rotated.signing_key_version == 2
    assert rotated.signing_key_versions(clock.now()) == (2, 1)
    clock.advance(timedelta(days=30) - timedelta(seconds=1))
    assert rotated.signing_key_versions(clock.now()) == (2, 1)
    clock.advance(timedelta(seconds=1))
    assert rotated.signing_key_versions(clock.now()) == (2,)


def test_no_grace_retires_the_old_signing_key_at_once():
    rotated = tenant().with_rotated_signing_key(START, timedelta(0))
    assert rotated.signing_key_versions(START) == (2,) and rotated.retired_signing_keys == ()


def test_rotations_drop_ended_graces_and_keep_at_most_the_newest_retired_keys():
    clock = ManualClock(START)
    current = tenant().with_rotated_signing_key(clock.now(), timedelta(days=1))
    clock.advance(timedelta(days=2))  # version 1's grace is over
    current = current.with_rotated_signing_key(clock.now(), timedelta(days=30))
    assert [retired.version for retired in current.retired_signing_keys] == [2]
    for _ in range(MAX_RETIRED_SIGNING_KEYS + 3):
        current = current.with_rotated_signing_key(clock.now(), timedelta(days=30))
    versions = [retired.version for retired in current.retired_signing_keys]
    assert versions == list(range(current.signing_key_version - MAX_RETIRED_SIGNING_KEYS, current.signing_key_version))
    assert len(current.signing_key_versions(clock.now())) == MAX_RETIRED_SIGNING_KEYS + 1


@pytest.mark.parametrize(
    "body",
    [
        {"api_key": False, "signing_key": False},
        {"signing_key_grace_days": 31},
        {"signing_key_grace_days": -1},
        {"signing_key_grace_days": "30"},
        {"signing_key_grace_days": 1.5},
        {"api_key": "yes"},
        {"api_key": 1},
        {"keys": "all"},
    ],
)
def test_bad_rotation_requests_are_refused(body):
    with pytest.raises(ValidationError):
        KeyRotation.model_validate(body)


def test_a_rotation_defaults_to_both_keys_and_the_longest_grace():
    rotation = KeyRotation.model_validate({})
    assert rotation.api_key and rotation.signing_key and rotation.signing_key_grace_days == 30


def test_documents_stored_before_generations_and_revisions_still_load():
    legacy_tenant = tenant().model_dump(mode="json", exclude={"generation", "retired_signing_keys"})
    assert Tenant.model_validate(legacy_tenant).generation == ""
    legacy_dataset = {**EXAMPLE, "tenant": "contoso", "id": "pricing", "created_at": START, "updated_at": START}
    doc = DatasetDoc.model_validate(legacy_dataset)
    assert doc.generation == "" and doc.declaration_revision == 1
    assert doc.declaration().model_dump() == DatasetDoc.model_validate(legacy_dataset).declaration().model_dump()
    legacy_record = {
        "id": "20261123T100000000000Z-0123456789abcdef",
        "tenant": "contoso",
        "dataset": "pricing",
        "captured_at": START,
        "expires_at": START + timedelta(days=14),
        "fields": {},
    }
    record = Record.model_validate(legacy_record)
    assert (record.tenant_generation, record.dataset_generation, record.declaration_revision) == ("", "", None)


@pytest.mark.parametrize("generation", ["ABCDEF0123456789", "0123", "../x", "0123456789abcdef0"])
def test_a_generation_has_one_shape(generation):
    with pytest.raises(ValidationError):
        tenant(generation=generation)
