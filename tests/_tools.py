"""Helpers shared by the project's tests."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

import pytest

#: The full run (``make test``, CI) has every broker and tool installed.
FULL_RUN = os.environ.get("EVENTWIRE_BROKERS") == "1"


def missing(reason: str) -> NoReturn:
    """A tool a test needs is absent: skip on a developer's machine, fail in the full run."""
    if FULL_RUN:
        pytest.fail(f"{reason} (the full run, EVENTWIRE_BROKERS=1, must not skip)")
    pytest.skip(reason)


def run(factory: Callable[[], Awaitable[Any]], timeout: float = 60.0) -> Any:
    """Run ``factory()`` in an event loop of its own, bounded by `timeout` seconds: for the
    tests that must start outside a loop (to time a whole connect, to run blocking commands
    such as a broker restart between async phases, or to use two event loops in turn)."""

    async def bounded() -> Any:
        async with asyncio.timeout(timeout):
            return await factory()

    return asyncio.run(bounded())
