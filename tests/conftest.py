"""Project-wide test settings.

Tests marked ``broker`` need the real brokers (``conformance/brokers/brokers up``); they run
when ``EVENTWIRE_BROKERS=1`` (as ``make test`` and CI do) and are deselected otherwise, so a
plain ``pytest`` works on a machine without brokers.
"""

from __future__ import annotations

import pytest

from tests._tools import FULL_RUN


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if FULL_RUN:
        return
    selected: list[pytest.Item] = []
    deselected: list[pytest.Item] = []
    for item in items:
        (deselected if item.get_closest_marker("broker") else selected).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run through anyio's pytest plugin (``@pytest.mark.anyio``), on asyncio."""
    return "asyncio"
