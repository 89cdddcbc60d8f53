"""Fixtures both tiers use; they start nothing. Azurite, hosts and the browser are in integration/conftest.py."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.city_db import write_city_db


@pytest.fixture
def clock():
    from shared.core.clock import ManualClock

    return ManualClock(datetime(2026, 11, 23, 10, 0, tzinfo=UTC))


@pytest.fixture
def tenant_id() -> str:
    return "t-" + uuid.uuid4().hex[:12]


@pytest.fixture(scope="module")
def city_db(tmp_path_factory) -> Path:
    return write_city_db(tmp_path_factory.mktemp("geo") / "city.mmdb")
