"""`Window`: the ``max_in_flight`` deliveries a consumer may hold unsettled.

A counter rather than an `asyncio.Semaphore`: a fetched batch takes as many places as are
free in one synchronous step (`take`), and only a backend with nothing taken waits
(`wait_room`). Python 3.11's ``Semaphore.acquire`` also scans its waiters on every call.
"""

from __future__ import annotations

import asyncio

__all__ = ["Window"]


class Window:
    """``size`` places; `close` wakes every waiter and refuses further places."""

    __slots__ = ("_room", "closed", "free")

    def __init__(self, size: int) -> None:
        self.free = size
        self.closed = False
        self._room = asyncio.Event()

    def take(self, wanted: int) -> int:
        """Take up to `wanted` free places at once (none once closed); how many were taken."""
        if self.closed:
            return 0
        taken = wanted if wanted <= self.free else self.free
        self.free -= taken
        return taken

    async def wait_room(self, wanted: int = 1) -> bool:
        """Wait until `wanted` places are free (taking none); ``False`` once closed."""
        while not self.closed and self.free < wanted:
            self._room.clear()
            await self._room.wait()
        return not self.closed

    async def acquire(self) -> bool:
        """Take one place, waiting for it; ``False`` (none taken) once closed."""
        while True:
            if self.closed:
                return False
            if self.free > 0:
                self.free -= 1
                return True
            self._room.clear()
            await self._room.wait()

    def release(self, count: int = 1) -> None:
        """Give back `count` places."""
        self.free += count
        self._room.set()

    def close(self) -> None:
        """Refuse further places and wake every waiter."""
        self.closed = True
        self._room.set()
