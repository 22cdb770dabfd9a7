"""Deleting the channels a test or benchmark run created, through the backend itself."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from eventwire.backend import ChannelDeleter
from eventwire.plugins import create_backend

from eventwire_conformance._within import within

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
        closed = await within(backend.close(), timeout)
        if closed is not None:
            closed.result()
    return deleted
