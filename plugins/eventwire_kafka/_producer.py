"""`Producers`: the backend's idempotent producer, replaced when the broker stops taking it.

An idempotent producer numbers the records of each partition; the broker accepts a batch
only if it continues the sequence it knows. Around a broker restart the two can fall out
of step, and aiokafka (0.14) never recovers from it:

- a batch that waited longer than ``request_timeout_ms`` for a partition without a leader
  (the broker is starting) fails with ``NotLeaderForPartitionError`` /
  ``LeaderNotAvailableError`` *after* the producer counted its records, so the broker
  never sees those sequence numbers;
- the broker then answers ``OutOfOrderSequenceNumber`` (or ``UnknownProducerId`` when it
  lost the producer's state) to every later batch of the partition; aiokafka does not
  retry these, and the producer never publishes there again;
- its sender task ends for good on ``ProducerFenced`` or ``OutOfOrderSequenceNumber``
  while asking for a producer id.

The cure is the one Kafka's own clients apply: a new producer id, that is a new
``AIOKafkaProducer`` (still idempotent, ``acks=all``). A publish that failed that way has
not returned, so the backend sends it again on the new producer; what the old producer
confirmed stays confirmed, and nothing after the failed batch of a partition was accepted
by the broker, so order is kept.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiokafka.errors import (
    LeaderNotAvailableError,
    NotLeaderForPartitionError,
    OutOfOrderSequenceNumber,
    ProducerFenced,
    UnknownProducerId,
)
from aiokafka.partitioner import DefaultPartitioner
from eventwire.backend import WireMessage
from eventwire.backendkit import Outage, quietly, retrieve

from eventwire_kafka._send import send

__all__ = ["Producers"]

#: Errors after which an idempotent producer never publishes to a partition again. (The
#: idempotent producer retries the leader errors itself; it fails a batch with them only
#: when the batch expired without a leader, its sequence numbers spent.)
FENCED: tuple[type[BaseException], ...] = (
    NotLeaderForPartitionError,
    LeaderNotAvailableError,
    OutOfOrderSequenceNumber,
    UnknownProducerId,
    ProducerFenced,
)


def _fenced(producer: Any, exc: BaseException) -> bool:
    """Whether `exc`, raised by a publish on `producer`, means the producer is done for."""
    if isinstance(exc, FENCED):
        return True
    task = producer._sender.sender_task
    return task is not None and task.done()


class Producers:
    """The current producer, replaced when a publish finds it fenced (once per failure).

    :param first: the started producer to begin with.
    :param start: makes and starts a new producer (same options), bounded in time.
    :param scrub: removes secrets from logged error texts.
    :param timeout: bound on stopping a replaced producer.
    """

    def __init__(
        self,
        first: Any,
        start: Callable[[], Awaitable[Any]],
        scrub: Callable[[str], str],
        timeout: float,
    ) -> None:
        self.current = first
        self._first = first
        self._start = start
        self._timeout = timeout
        self._lock = asyncio.Lock()
        self._partitioner = DefaultPartitioner()
        self._outage = Outage("the Kafka producer", scrub)

    async def publish(self, channel: str, messages: Sequence[WireMessage]) -> None:
        """Send `messages` on the current producer and await their acknowledgements; if it
        turns out fenced, send them all again on a new one (not returned, so not confirmed)."""
        for attempt in (1, 2):
            producer = self.current
            futures: list[asyncio.Future[Any]] = []
            try:
                await send(producer, self._partitioner, channel, messages, futures)
            except BaseException as exc:
                for future in futures:  # retrieve the outcomes nobody awaits (no warnings)
                    future.add_done_callback(retrieve)
                if attempt == 2 or not isinstance(exc, Exception) or not _fenced(producer, exc):
                    raise
                await self._renew(producer, exc)
            else:
                self._outage.ok()
                return

    async def _renew(self, failed: Any, exc: BaseException) -> None:
        """Replace `failed` (the producer a publish failed on with `exc`) by a new one,
        unless another publish already did; then stop `failed`."""
        async with self._lock:
            if self.current is not failed:
                return
            self._outage.failed(exc)
            self.current = await self._start()
        await self._stop(failed)

    async def close(self) -> None:
        """Stop the current producer if this object started it (the first one belongs to
        the FastStream broker, which stops it)."""
        async with self._lock:
            if self.current is not self._first:
                await self._stop(self.current)

    async def _stop(self, producer: Any) -> None:
        await quietly(producer.stop(), "kafka producer stop", timeout=self._timeout)
