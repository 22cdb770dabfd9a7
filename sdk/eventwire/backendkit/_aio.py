"""Small asyncio pieces every backend needs around a client library.

- `wait_event`: wait for an `asyncio.Event` at most so long (without ``wait_for``).
- `quietly`: end something (a client, a channel, a subscription) during shutdown, bounded in
  time, logging instead of raising.
- `retrying`: a call retried while the broker is unreachable, up to a deadline.
- `retrieve`: a done callback that collects a future's outcome, for a future nobody awaits
  any more (no "exception was never retrieved" report).
- `Memo`: per-key results (a channel's topology, a topic's limit) worked out once, concurrent
  callers sharing the one attempt, a failure not remembered.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, TypeVar

from eventwire.backendkit._outage import Outage

__all__ = ["Memo", "quietly", "retrieve", "retrying", "wait_event"]

log = logging.getLogger("eventwire.backendkit")

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


def retrieve(future: asyncio.Future[Any]) -> None:
    """Collect `future`'s outcome (a done callback: ``future.add_done_callback(retrieve)``),
    so that a failure of a future nobody awaits any more is not reported by asyncio as an
    exception never retrieved."""
    if not future.cancelled():
        future.exception()


async def wait_event(event: asyncio.Event, timeout: float | None) -> bool:
    """Wait until `event` is set or `timeout` seconds pass (``None``: no limit); whether it
    was set.

    ``asyncio.timeout`` rather than ``wait_for``: on Python 3.11 ``wait_for`` can swallow a
    cancellation that arrives as the event is set."""
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return False
    return True


async def quietly(awaitable: Awaitable[Any], what: str, *, timeout: float = 5.0) -> None:
    """Await `awaitable` (a disconnect, a channel close) for at most `timeout` seconds; an
    error or the timeout is logged at debug level, never raised: shutdown goes on."""
    try:
        async with asyncio.timeout(timeout):
            await awaitable
    except Exception as exc:
        log.debug("eventwire: %s: %s: %s", what, type(exc).__name__, exc)


async def retrying(
    call: Callable[[], Awaitable[T]],
    what: str,
    limit: float,
    retryable: tuple[type[BaseException], ...],
    scrub: Callable[[str], str] = str,
) -> T:
    """Run `call`, again while it fails with a `retryable` error (the broker is away, with an
    `Outage`'s back-off and log lines); after `limit` seconds the last error is raised (the
    caller maps it with ``map_errors``)."""
    deadline = time.monotonic() + limit
    outage: Outage | None = None
    while True:
        try:
            result = await call()
        except retryable as exc:
            outage = outage or Outage(what, scrub)
            delay = outage.failed(exc)
            if time.monotonic() + delay > deadline:
                raise
            await asyncio.sleep(delay)
            continue
        if outage is not None:
            outage.ok()
        return result


class Memo(Generic[K, T]):
    """Results per key, each worked out once: concurrent callers of `get` for one key share
    one attempt (a single flight); a failed attempt is not remembered, so the next caller
    tries again; `forget` drops a result that became stale (the channel was deleted)."""

    def __init__(self) -> None:
        self._known: dict[K, T] = {}
        self._pending: dict[K, asyncio.Future[T]] = {}

    def __contains__(self, key: K) -> bool:
        return key in self._known

    def known(self, key: K) -> T | None:
        """The result for `key` if it is known, without working it out."""
        return self._known.get(key)

    def forget(self, key: K) -> None:
        """Work the result for `key` out again on its next use."""
        self._known.pop(key, None)

    async def get(
        self,
        key: K,
        work: Callable[[], Awaitable[T]],
        *,
        keep: Callable[[T], bool] = lambda _: True,
    ) -> T:
        """The result for `key`: known, being worked out (awaited), or `work()` now.
        A result for which `keep` is false is returned but not remembered."""
        if key in self._known:
            return self._known[key]
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = asyncio.ensure_future(work())
            pending.add_done_callback(lambda done: self._settle(key, done, keep))
        return await asyncio.shield(pending)

    def _settle(self, key: K, done: asyncio.Future[T], keep: Callable[[T], bool]) -> None:
        if self._pending.get(key) is done:
            del self._pending[key]
        if not done.cancelled() and done.exception() is None and keep(done.result()):
            self._known[key] = done.result()
