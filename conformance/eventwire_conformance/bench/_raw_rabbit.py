"""Raw aio-pika: persistent messages with publisher confirms into a quorum queue; a consumer
that acks every message after handling it.

"Per-message acknowledgement" on RabbitMQ is ``basic.ack`` of each delivery (manual acks,
prefetch bounded like eventwire's in-flight window).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from importlib.metadata import version
from typing import Any

from eventwire_conformance.bench.model import BenchConfig, PayloadFactory, Tracker

__all__ = ["RabbitRawRunner", "candidate_names", "sweep"]

QUORUM = {"x-queue-type": "quorum"}
#: Shard queues per group the sweep looks for (the eventwire rabbit backend defaults to 8).
MAX_SHARDS = 16


async def _connect(url: str) -> Any:
    import aio_pika

    return await aio_pika.connect(url, timeout=5)


def candidate_names(channels: Sequence[str], groups: Sequence[str]) -> list[str]:
    """Queue and exchange names a run may have created for `channels` and `groups`.

    AMQP cannot list queues, so the sweep deletes by name: the channel itself (the raw and
    FastStream rows' queue) and, for the eventwire rows' channels and their dead-letter
    channels, what the eventwire rabbit backend declares (``<channel>``, ``<channel>:history``,
    ``<channel>:<group>``, ``<channel>:<group>:<shard>`` for up to `MAX_SHARDS` shards and
    ``<channel>:<group>:creating``).
    """
    names: list[str] = []
    for channel in channels:
        names.append(channel)
        if "-eventwire-" not in channel:  # a raw or FastStream row: one queue
            continue
        for base in (channel, f"{channel}.dlq"):
            names.extend((base, f"{base}:history"))
            for group in groups:
                names.extend((f"{base}:{group}", f"{base}:{group}:creating"))
                names.extend(f"{base}:{group}:{shard}" for shard in range(MAX_SHARDS))
    return list(dict.fromkeys(names))


async def sweep(url: str, channels: Sequence[str], groups: Sequence[str]) -> list[str]:
    """Delete the queues and exchanges named by `candidate_names`; returns what existed."""
    connection = await _connect(url)
    deleted: list[str] = []
    try:
        for name in candidate_names(channels, groups):
            for kind in ("queue", "exchange"):
                channel = await connection.channel()
                try:
                    if kind == "queue":
                        await channel.declare_queue(name, passive=True)
                        await channel.queue_delete(name)
                    else:
                        await channel.declare_exchange(name, passive=True)
                        await channel.exchange_delete(name)
                    deleted.append(f"{kind} {name}")
                except Exception:  # absent: the passive declare closes the channel
                    pass
                finally:
                    with contextlib.suppress(Exception):
                        await channel.close()
        return deleted
    finally:
        await connection.close()


class RabbitRawRunner:
    kind = "raw"

    def __init__(self, config: BenchConfig, payloads: PayloadFactory) -> None:
        self._config = config
        self._payloads = payloads
        self._connection: Any = None
        self._channel: Any = None
        self._prefetch = max(64, 4 * config.concurrency)
        self.label = (
            f"aio-pika {version('aio-pika')}: quorum queue, persistent messages, publisher "
            f"confirms (gathered for batches), manual ack per message, prefetch {self._prefetch}"
        )

    async def start(self) -> None:
        self._connection = await _connect(self._config.url)
        self._channel = await self._connection.channel(publisher_confirms=True)

    async def close(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            await connection.close()

    async def prepare(self, channel: str, group: str, figure: str) -> None:
        await self._channel.declare_queue(channel, durable=True, arguments=QUORUM)

    def _message(self, seq: int) -> Any:
        import aio_pika

        return aio_pika.Message(
            self._payloads.body(seq),
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            content_type="application/json",
        )

    async def publish_one(self, channel: str, seq: int) -> None:
        await self._channel.default_exchange.publish(self._message(seq), routing_key=channel)

    async def publish_batch(self, channel: str, seqs: Sequence[int]) -> None:
        publish = self._channel.default_exchange.publish
        await asyncio.gather(*(publish(self._message(seq), routing_key=channel) for seq in seqs))

    @asynccontextmanager
    async def consume(self, channel: str, group: str, tracker: Tracker) -> AsyncIterator[None]:
        amqp = await self._connection.channel()
        await amqp.set_qos(prefetch_count=self._prefetch)
        queue = await amqp.declare_queue(channel, durable=True, arguments=QUORUM)
        hit = tracker.hit

        async def on_message(message: Any) -> None:
            try:
                data = json.loads(message.body)
                hit(data["seq"], data["sent_ns"])
                await message.ack()
            except Exception as exc:
                tracker.fail(exc)

        tag = await queue.consume(on_message)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                await queue.cancel(tag)
            with contextlib.suppress(Exception):
                await amqp.close()
