"""`GroupCommit`: concurrent publishes written together, each caller told its own outcome.

A broker (or a file) that takes many writes in one round trip (a pipeline of ``XADD``, one
transaction and one disk sync) serves concurrent publishes best by writing what queued up
while the previous write was on its way in the next one. `GroupCommit` is that queue: a
`submit` that finds nothing being written writes its item itself, at once (an awaited publish
pays no hand-over to another task); what is submitted meanwhile waits for it and then goes
out from one background task in batches of up to ``limit`` units. Each `submit` returns (or
raises) with the outcome of its own item.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["GroupCommit"]

T = TypeVar("T")

#: What a write says per item of its batch, in order: ``None`` (stored) or the error.
Outcomes = Sequence[BaseException | None] | None


class GroupCommit(Generic[T]):
    """Writes submitted items in batches; what arrives during a write goes in the next one.

    :param write: writes a batch; returns one outcome per item (``None``: stored, or the
        item's error), or ``None`` when the whole batch is stored. An exception fails every
        item of the batch with it.
    :param name: the background task's name.
    :param size: how many units an item counts for (default 1).
    :param limit: the most units in one batch (0: no limit); an item larger than `limit`
        is written alone.
    """

    def __init__(
        self,
        write: Callable[[list[T]], Awaitable[Outcomes]],
        *,
        name: str,
        size: Callable[[T], int] = lambda item: 1,
        limit: int = 0,
    ) -> None:
        self._write = write
        self._name = name
        self._size = size
        self._limit = limit
        self._queue: list[tuple[T, asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None
        #: Set while a `submit` writes its own item (done when that write ends), and the
        #: task that runs it.
        self._leading: asyncio.Future[None] | None = None
        self._leader: asyncio.Task[object] | None = None
        #: What `close` made a write cut short fail with.
        self._cut: BaseException | None = None
        #: The batch being written now.
        self._writing: list[tuple[T, asyncio.Future[None]]] = []

    async def submit(self, item: T) -> None:
        """Write `item` (now when nothing is being written, else in the next batch); return
        once it is written, or raise its error."""
        if self._leading is None and not self._queue and not self._busy():
            await self._lead(item)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._leading is None:
            self._start()
        await future

    def _busy(self) -> bool:
        return self._task is not None and not self._task.done()

    def _start(self) -> None:
        """Start the background task that writes the queue, unless it runs already."""
        if not self._busy():
            self._task = asyncio.create_task(self._run(), name=self._name)

    async def _lead(self, item: T) -> None:
        """Write `item` alone, in the caller's task; then hand what queued meanwhile to the
        background task."""
        done = self._leading = asyncio.get_running_loop().create_future()
        leader = self._leader = asyncio.current_task()
        try:
            outcomes = await self._write([item])
        except asyncio.CancelledError:
            # cut short by `close` (and by nothing else): fail with its error
            if self._cut is not None and leader is not None and leader.uncancel() == 0:
                raise self._cut from None
            raise
        finally:
            self._leading = self._leader = None
            done.set_result(None)
            if self._queue and self._cut is None:
                self._start()
        error = outcomes[0] if outcomes else None
        if error is not None:
            raise error

    async def close(self, patience: float, error: BaseException) -> None:
        """Let the batches under way finish for up to `patience` seconds, then stop; what is
        not written by then (queued, or in a write that was cut short) fails with `error`."""
        try:
            async with asyncio.timeout(patience):
                if self._leading is not None:
                    await asyncio.shield(self._leading)
                task = self._task  # started by the leader, if anything queued behind it
                if task is not None and not task.done():
                    await asyncio.shield(task)
        except TimeoutError:
            self._cut = error
            leading, leader = self._leading, self._leader
            if leading is not None and leader is not None:
                leader.cancel()
                await asyncio.wait([leading], timeout=5)
            task = self._task
            if task is not None and not task.done():
                task.cancel()
                await asyncio.wait([task], timeout=5)
        left, self._queue, self._writing = self._writing + self._queue, [], []
        for _, future in left:
            if not future.done():
                future.set_exception(error)

    def _next_batch(self) -> list[tuple[T, asyncio.Future[None]]]:
        batch: list[tuple[T, asyncio.Future[None]]]
        if not self._limit:
            batch, self._queue = self._queue, []
            return batch
        batch = []
        units = 0
        while self._queue and (not batch or units + self._size(self._queue[0][0]) <= self._limit):
            batch.append(self._queue.pop(0))
            units += self._size(batch[-1][0])
        return batch

    async def _run(self) -> None:
        while self._queue:
            batch = self._writing = self._next_batch()
            try:
                outcomes = await self._write([item for item, _ in batch])
            except Exception as exc:
                outcomes = [exc] * len(batch)
            self._writing = []
            for (_, future), error in zip(batch, outcomes or [None] * len(batch), strict=True):
                if future.done():
                    continue
                if error is not None:
                    future.set_exception(error)
                else:
                    future.set_result(None)
