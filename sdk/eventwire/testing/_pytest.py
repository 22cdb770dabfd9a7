"""The pytest plugin of `eventwire.testing` (entry point ``eventwire_testing``).

Fixture ``eventwire_testbus``: a factory of `TestBus` sessions that checks, when the test
ends, that every session it made was exited (a bus left running would leak into the next
test). Each session has its own broker, so tests stay isolated under pytest-xdist.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from eventwire.bus import EventBus
from eventwire.testing._testbus import TestBus

__all__ = ["TestBusFactory", "eventwire_testbus"]


class TestBusFactory:
    """``eventwire_testbus(bus, ...)`` makes a `TestBus`; keeps them to check at teardown."""

    __test__ = False

    def __init__(self) -> None:
        self.made: list[TestBus] = []

    def __call__(self, *buses: EventBus, **options: Any) -> TestBus:
        session = TestBus(*buses, **options)
        self.made.append(session)
        return session


@pytest.fixture
def eventwire_testbus() -> Iterator[TestBusFactory]:
    """Make `TestBus` sessions: ``async with eventwire_testbus(bus) as tb: ...``."""
    factory = TestBusFactory()
    yield factory
    left = [session for session in factory.made if session._active]
    for session in left:
        session._abandon()  # so the next test can use the buses again
    if left:
        pytest.fail(
            f"{', '.join(map(repr, left))} still active at the end of the test; use "
            "'async with eventwire_testbus(bus) as tb:' so the buses are closed and restored",
            pytrace=False,
        )
