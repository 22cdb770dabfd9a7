"""`PutBatcher`: concurrent publishes share ``PutEvents`` requests.

A ``PutEvents`` request costs about as much for one entry as for ten, so entries of
concurrent ``publish`` calls are queued and sent together: up to 10 entries and 256 KiB per
request, a few requests in flight at once. Each caller waits for the outcome of its own
entries only.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from eventwire.errors import PublishError

__all__ = ["Entry", "PutBatcher", "Send"]

#: One entry of a request: the ``PutEventsRequestEntry`` and its size as AWS counts it.
Entry = tuple[dict[str, Any], int]
#: Sends one request; returns, per entry, ``None`` (stored) or why it was refused.
Send = Callable[[list[dict[str, Any]]], Awaitable[list[str | None]]]


@dataclasses.dataclass(slots=True)
class _Queued:
    entry: dict[str, Any]
    size: int
    future: asyncio.Future[str | None]


class PutBatcher:
    """Queues entries and sends them in requests of at most `max_entries` entries and
    `max_bytes` bytes, `parallel` requests at a time."""

    def __init__(self, send: Send, *, max_entries: int, max_bytes: int, parallel: int) -> None:
        self._send = send
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._parallel = parallel
        self._queue: collections.deque[_Queued] = collections.deque()
        self._tasks: set[asyncio.Task[None]] = set()
        self._scheduled = False

    async def put(self, entries: Sequence[Entry]) -> list[str | None]:
        """Send `entries`; per entry, ``None`` or why EventBridge refused it. A request
        that failed as a whole raises its error in every caller with an entry in it."""
        loop = asyncio.get_running_loop()
        queued = [_Queued(entry, size, loop.create_future()) for entry, size in entries]
        self._queue.extend(queued)
        if not self._scheduled:  # let the other publishes of this loop turn queue first
            self._scheduled = True
            loop.call_soon(self._start)
        results = await asyncio.gather(*(q.future for q in queued), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return [r for r in results if not isinstance(r, BaseException)]

    def _start(self) -> None:
        self._scheduled = False
        while self._queue and len(self._tasks) < self._parallel:
            batch = [self._queue.popleft()]
            size = batch[0].size
            while (
                self._queue
                and len(batch) < self._max_entries
                and size + self._queue[0].size <= self._max_bytes
            ):
                size += self._queue[0].size
                batch.append(self._queue.popleft())
            task = asyncio.create_task(self._run(batch), name="eventwire:eventbridge:put")
            self._tasks.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._queue:
            self._start()

    async def _run(self, batch: list[_Queued]) -> None:
        try:
            results = await self._send([q.entry for q in batch])
        except asyncio.CancelledError:
            _fail(batch, PublishError("publish cancelled: the backend closed mid-request"))
            raise
        except BaseException as exc:
            _fail(batch, exc)
        else:
            for queued, result in zip(batch, results, strict=True):
                if not queued.future.done():
                    queued.future.set_result(result)

    async def close(self) -> None:
        """Fail what is queued and cancel the requests in flight."""
        _fail(list(self._queue), PublishError("publish failed: the backend closed"))
        self._queue.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _fail(batch: list[_Queued], exc: BaseException) -> None:
    for queued in batch:
        if not queued.future.done():
            queued.future.set_exception(exc)
