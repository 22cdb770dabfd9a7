"""What the backend tests share: unique names, a keyed test event, bounded waits.

Each test module names its broker once (``unique = namer("kafka")``) and keeps only what is
specific to its backend: options, URLs, the topology it creates, raw-client checks.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from eventwire import Event

__all__ = ["PingBase", "namer", "ping_model", "run", "wait_until"]


def namer(backend: str) -> Callable[[str], str]:
    """``unique(what)`` for `backend`: a channel or group name no other test run uses."""

    def unique(what: str) -> str:
        return f"ewt-{backend}-{what}-{uuid.uuid4().hex[:10]}"

    return unique


class PingBase(Event):
    key: str
    seq: int
    data: str = ""


def ping_model(channel: str) -> type[PingBase]:
    """A `PingBase` event type on `channel`, keyed by ``key``."""

    class Ping(PingBase, channel=channel, key="key"):
        pass

    return Ping


def run(factory: Callable[[], Awaitable[Any]], timeout: float = 60.0) -> Any:
    """Run ``factory()`` in a fresh event loop, bounded by `timeout` seconds (for the tests
    that must start outside a loop, e.g. to time a whole connect attempt)."""

    async def bounded() -> Any:
        async with asyncio.timeout(timeout):
            return await factory()

    return asyncio.run(bounded())


async def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll `condition` until it holds; `AssertionError` naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)
