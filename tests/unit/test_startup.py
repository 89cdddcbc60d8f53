"""The app's import runs with the collector off and ends with what it made frozen (shared/core/startup.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from shared.core.startup import long_lived_objects


class _Made:
    """An object the block makes; a cycle, so only the collector could free it."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture(autouse=True)
def _collector_as_found() -> Iterator[None]:
    enabled = gc.isenabled()
    yield
    gc.unfreeze()  # the rest of the session collects as before
    gc.enable() if enabled else gc.disable()


def test_the_block_runs_with_the_collector_off_and_it_is_back_on_after() -> None:
    gc.enable()
    with long_lived_objects():
        inside = gc.isenabled()
    assert inside is False
    assert gc.isenabled() is True


def test_what_the_block_made_is_frozen_and_later_objects_are_not() -> None:
    gc.enable()
    gc.unfreeze()
    with long_lived_objects():
        made = _Made()
    frozen = gc.get_freeze_count()
    assert frozen > 0
    assert not any(o is made for o in gc.get_objects())  # frozen objects are out of every generation
    later = _Made()
    assert any(o is later for o in gc.get_objects())


def test_an_error_turns_the_collector_back_on_and_freezes_nothing() -> None:
    gc.enable()
    gc.unfreeze()
    with pytest.raises(RuntimeError, match="a setting is missing"), long_lived_objects():
        raise RuntimeError("a setting is missing")
    assert gc.isenabled() is True
    assert gc.get_freeze_count() == 0


def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    with long_lived_objects():
        pass
    assert gc.isenabled() is False
