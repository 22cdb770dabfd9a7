"""Raw aiokafka: awaited and pipelined sends (acks=all); a consumer that commits per batch.

"Per-message acknowledgement" on Kafka is a committed offset: the consumer handles every
record of a ``getmany`` batch, then commits the batch's offsets (manual commit, auto-commit
off), so nothing is committed before it was handled.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

from eventwire_conformance.bench._urls import kafka_bootstrap
from eventwire_conformance.bench.model import (
    BenchConfig,
    ConsumerLoop,
    PayloadFactory,
    Tracker,
)

if TYPE_CHECKING:
    from eventwire_kafka import KafkaSettings

__all__ = ["KafkaRawRunner", "create_topic", "eventwire_settings", "sweep"]


def eventwire_settings(url: str) -> KafkaSettings:
    """What the eventwire row's Kafka backend makes of `url`. The other rows take two things
    from it, so that every row does the same work: the partitions of the topics they create
    (aiokafka's own work per send grows with them), and the raw consumer's
    ``fetch_max_wait_ms`` (with aiokafka's default of 500 ms, a drain of 8 partitions
    stalls for up to half a second once some partitions are read to their end: see
    ``docs/performance.md``)."""
    from eventwire_kafka import KafkaSettings

    return KafkaSettings.parse(url)


async def create_topic(url: str, topic: str) -> None:
    """Create `topic` with the eventwire row's partitions unless it exists, and return once
    every partition's leader answers for it (before that, the leader refuses the first
    sends, and aiokafka logs each refusal and sends again 100 ms later)."""
    bootstrap, count = kafka_bootstrap(url), eventwire_settings(url).partitions
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics([NewTopic(topic, count, 1)])
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:  # ListOffsets: aiokafka asks again until each partition's leader answers
        await consumer.end_offsets([TopicPartition(topic, p) for p in range(count)])
    finally:
        await consumer.stop()


async def sweep(url: str, marker: str) -> list[str]:
    """Delete every topic whose name contains `marker`; returns their names."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap(url))
    await admin.start()
    try:
        topics = [t for t in await admin.list_topics() if marker in t]
        if topics:
            await admin.delete_topics(topics)
        return sorted(topics)
    finally:
        await admin.close()


class KafkaRawRunner:
    kind = "raw"

    def __init__(self, config: BenchConfig, payloads: PayloadFactory) -> None:
        self._config = config
        self._payloads = payloads
        self._bootstrap = kafka_bootstrap(config.url)
        self._producer: Any = None
        self._settings = eventwire_settings(config.url)
        self.label = (
            f"aiokafka {version('aiokafka')}: acks=all, auto-commit off, commit after each "
            f"handled getmany() batch; as the eventwire row: topics with "
            f"{self._settings.partitions} partitions, "
            f"fetch_max_wait_ms={self._settings.fetch_max_wait_ms}"
        )

    async def start(self) -> None:
        from aiokafka import AIOKafkaProducer

        self._producer = AIOKafkaProducer(bootstrap_servers=self._bootstrap, acks="all")
        await self._producer.start()

    async def close(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()

    async def prepare(self, channel: str, group: str, figure: str) -> None:
        await create_topic(self._config.url, channel)

    async def publish_one(self, channel: str, seq: int) -> None:
        key = self._payloads.key(seq).encode()
        await self._producer.send_and_wait(channel, self._payloads.body(seq), key=key)

    async def publish_batch(self, channel: str, seqs: Sequence[int]) -> None:
        send = self._producer.send
        body, key = self._payloads.body, self._payloads.key
        futures = [await send(channel, body(seq), key=key(seq).encode()) for seq in seqs]
        await asyncio.gather(*futures)

    @asynccontextmanager
    async def consume(self, channel: str, group: str, tracker: Tracker) -> AsyncIterator[None]:
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(
            channel,
            bootstrap_servers=self._bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=self._settings.fetch_max_wait_ms,
        )
        await consumer.start()

        async def loop(stopping: asyncio.Event) -> None:
            hit = tracker.hit
            while not stopping.is_set():
                batches = await consumer.getmany(timeout_ms=200, max_records=500)
                if not batches:
                    continue
                for records in batches.values():
                    for record in records:
                        data = json.loads(record.value)
                        hit(data["seq"], data["sent_ns"])
                await consumer.commit()

        consumer_loop = ConsumerLoop(loop, tracker)
        try:
            yield
        finally:
            await consumer_loop.stop()
            await consumer.stop()
