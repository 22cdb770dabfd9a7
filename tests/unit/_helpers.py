from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable


def memory_url() -> str:
    """A fresh, isolated in-memory broker."""
    return f"memory://t{uuid.uuid4().hex[:12]}"


async def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll `condition` until it holds; fail the test with a clear message on timeout."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.005)
