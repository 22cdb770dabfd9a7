"""Retrying while the server is away: which errors mean that, and a call retried until a limit."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from eventwire.backendkit import Outage
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ["RETRYABLE", "retrying"]

T = TypeVar("T")

#: Errors that mean "the server is not reachable right now": retried, never fatal.
RETRYABLE: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    OSError,
    TimeoutError,
)


async def retrying(
    call: Callable[[], Awaitable[T]], what: str, limit: float, scrub: Callable[[str], str]
) -> T:
    """Run `call`, retrying while the server is unreachable; after `limit` seconds the last
    error is raised (the caller maps it with ``map_errors``)."""
    deadline = time.monotonic() + limit
    outage: Outage | None = None
    while True:
        try:
            result = await call()
        except RETRYABLE as exc:
            outage = outage or Outage(f"redis {what}", scrub)
            delay = outage.failed(exc)
            if time.monotonic() + delay > deadline:
                raise
            await asyncio.sleep(delay)
            continue
        if outage is not None:
            outage.ok()
        return result
