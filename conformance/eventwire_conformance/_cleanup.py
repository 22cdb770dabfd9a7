"""Cleaning up after a test or benchmark run: deleting the channels it created, through the
backend itself, and closing within a bound."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import TypeVar

from eventwire.backend import ChannelDeleter
from eventwire.plugins import create_backend

__all__ = ["delete_channels", "within"]

T = TypeVar("T")


async def delete_channels(
    url: str, names: Sequence[str], timeout: float | None = None
) -> list[str]:
    """Delete the channels `names` and their ``.dlq`` channels through `url`'s backend, when
    it can (`eventwire.backend.ChannelDeleter`); returns those that existed. Connecting and
    each deletion wait at most `timeout` seconds (``None``: no limit); errors are raised,
    the caller decides whether they matter."""
    backend = create_backend(url)
    if not names or not isinstance(backend, ChannelDeleter):
        return []
    deleted: list[str] = []
    await asyncio.wait_for(backend.connect(), timeout)
    try:
        for name in (*names, *(f"{n}.dlq" for n in names)):
            if await asyncio.wait_for(backend.delete_channel(name), timeout):
                deleted.append(name)
    finally:
        closed = await within(backend.close(), timeout)
        if closed is not None:
            closed.result()
    return deleted


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
