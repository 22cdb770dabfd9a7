"""Retrying while the server is away: which errors mean that, and one log line per outage."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ["RETRYABLE", "Outage", "retrying"]

log = logging.getLogger("eventwire.redis")

T = TypeVar("T")

#: Errors that mean "the server is not reachable right now": retried, never fatal.
RETRYABLE: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    OSError,
    TimeoutError,
)


class Outage:
    """Logs the first failure of a loop as a warning, later ones at debug level, and the
    recovery once; gives the back-off before the next try."""

    def __init__(self, what: str, scrub: Callable[[str], str]) -> None:
        self.what = what
        self.scrub = scrub
        self.since: float | None = None
        self.failures = 0

    def failed(self, exc: BaseException) -> float:
        text = self.scrub(f"{type(exc).__name__}: {exc}")
        if self.since is None:
            self.since = time.monotonic()
            log.warning("eventwire: redis %s failed (%s); retrying", self.what, text)
        else:
            log.debug("eventwire: redis %s still failing (%s)", self.what, text)
        self.failures += 1
        return float(min(2.0, 0.05 * 2 ** min(self.failures, 6)))

    def ok(self) -> None:
        if self.since is not None:
            log.info(
                "eventwire: redis %s works again after %.1fs",
                self.what,
                time.monotonic() - self.since,
            )
            self.since = None
            self.failures = 0


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
            outage = outage or Outage(what, scrub)
            delay = outage.failed(exc)
            if time.monotonic() + delay > deadline:
                raise
            await asyncio.sleep(delay)
            continue
        if outage is not None:
            outage.ok()
        return result
