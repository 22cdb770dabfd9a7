"""`within`: a step bounded in time that never waits on its own cancellation (the harness's
closing steps, the channel clean-up, the benchmark's start and stop)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

__all__ = ["within"]

T = TypeVar("T")


async def within(step: Awaitable[T], seconds: float | None) -> asyncio.Future[T] | None:
    """Run `step` for `seconds` at most (``None``: no limit): its finished task, or ``None``
    if it was cut short. Unlike `asyncio.wait_for`, this does not wait for a step that
    ignores its cancellation: such a step is left to finish on its own. A caller cancelled
    while it waits cancels the step too."""
    task = asyncio.ensure_future(step)
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not done:
        task.cancel()
        return None
    return task
