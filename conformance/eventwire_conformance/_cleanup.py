"""Deleting the channels a test or benchmark run created, through the backend itself."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence

from eventwire.backend import ChannelDeleter
from eventwire.plugins import create_backend

__all__ = ["delete_channels"]


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
        await _close(backend.close(), timeout)
    return deleted


async def _close(closing: Awaitable[None], timeout: float | None) -> None:
    """Await `closing` for `timeout` seconds at most; a close that ignores its cancellation
    is left to finish on its own instead of holding the caller."""
    task = asyncio.ensure_future(closing)
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        task.cancel()
        return
    task.result()
