"""`AckBatcher`: acknowledgements taken one by one, sent to the broker in batches.

``Inbound.ack()`` only has to be durable by the time the subscription closes (see
``docs/backend-authors.md``), so a backend whose broker takes many acks in one round trip
(Redis ``XACK`` in a pipeline, one SQL transaction) queues them here: `add` is synchronous
and cheap, a background task (`run`) sends what has been queued whenever something is, and
`flush` sends the last ones when the member closes. A batch that fails stays queued, in
order, for the next try; only once the broker has it does `sent` hear of it (the backend
then counts those deliveries settled, e.g. for the shard coordinator's hand-over).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from eventwire.backendkit._outage import Outage

__all__ = ["AckBatcher"]

log = logging.getLogger("eventwire.backendkit")

T = TypeVar("T")


class AckBatcher(Generic[T]):
    """Queue of acks (items of the backend's choosing) sent in batches.

    :param send: sends one batch (in the order the acks were taken); raises if it failed.
    :param sent: called with each batch once the broker has it.
    :param what: what is acknowledged, for the log (``"redis acknowledgement on o/billing"``).
    :param scrub: removes secrets from error texts (``settings.scrub``).
    :param patience: how long `flush` retries the last acks before giving up on them.
    """

    def __init__(
        self,
        send: Callable[[list[T]], Awaitable[None]],
        sent: Callable[[list[T]], None],
        *,
        what: str,
        scrub: Callable[[str], str] = str,
        patience: float = 0.0,
    ) -> None:
        self._send = send
        self._sent = sent
        self._what = what
        self._scrub = scrub
        self._patience = patience
        self._queue: list[T] = []
        self._event = asyncio.Event()

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, item: T) -> None:
        """Queue one ack; the background task sends it soon."""
        self._queue.append(item)
        self._event.set()

    def drop(self) -> None:
        """Forget every queued ack (a crash: those deliveries come back)."""
        self._queue.clear()

    async def run(self) -> None:
        """Send queued acks as they come, retrying through outages (a background task)."""
        outage = Outage(self._what, self._scrub)
        while True:
            await self._event.wait()
            self._event.clear()
            await self._send_all(outage, deadline=None)

    async def flush(self) -> None:
        """Send the acks queued so far, retrying for ``patience`` seconds; what could not be
        sent is logged (those events are delivered again)."""
        outage = Outage(f"final {self._what}", self._scrub)
        await self._send_all(outage, deadline=time.monotonic() + self._patience)
        if self._queue:
            log.warning(
                "eventwire: %d %s(s) could not be sent; those events will be delivered again",
                len(self._queue),
                self._what,
            )

    async def _send_all(self, outage: Outage, deadline: float | None) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                await self._send(batch)
            except BaseException as exc:
                self._queue[:0] = batch  # keep them, in order, for the next try
                if not isinstance(exc, Exception):
                    raise
                delay = outage.failed(exc)
                if deadline is not None and time.monotonic() + delay > deadline:
                    return
                await asyncio.sleep(delay)
                continue
            outage.ok()
            self._sent(batch)
