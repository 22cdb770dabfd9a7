"""Which redis-py errors mean "the server is not reachable right now", and a call retried
through them (the kit's `eventwire.backendkit.retrying`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from eventwire.backendkit import retrying as _retrying
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
    return await _retrying(call, f"redis {what}", limit, RETRYABLE, scrub)
