"""`KafkaBackend`: the `eventwire.backend.Backend` protocol over Apache Kafka."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, cast

from aiokafka import AIOKafkaClient, AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError, MessageSizeTooLargeError
from eventwire.backend import MessageHandler, SubscriptionSpec, WireMessage
from eventwire.backendkit import BaseBackend, ErrorMap, first_oversized, quietly
from eventwire.deadletter import dead_letter_channel
from eventwire.errors import (
    BackendUnavailableError,
    MessageTooLargeError,
    PublishError,
)
from faststream.kafka import KafkaBroker

from eventwire_kafka._connect import aiokafka_producer, explain, security, takes
from eventwire_kafka._info import CAPABILITIES
from eventwire_kafka._producer import Producers
from eventwire_kafka._records import to_wire
from eventwire_kafka._settings import KafkaSettings
from eventwire_kafka._subscription import KafkaSubscription
from eventwire_kafka._topics import RECORD_OVERHEAD, TopicManager, check_topic, read_topic

__all__ = ["KafkaBackend"]

#: Room the producer's request limit keeps above ``max_message_bytes`` (batch framing).
_REQUEST_HEADROOM = 64 * 1024


class KafkaBackend(BaseBackend[KafkaSettings]):
    """A connection to a Kafka cluster: ``kafka://host1:9092,host2:9092[?options]``.

    See docs/backends/kafka.md for how each guarantee is met and `KafkaSettings` for the options.
    """

    name = "kafka"
    binding = "kafka"
    error_map: ClassVar[ErrorMap] = {
        MessageSizeTooLargeError: MessageTooLargeError,
        KafkaError: BackendUnavailableError,
    }

    def __init__(self, url: str, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(KafkaSettings.parse(url, options))
        self.capabilities = dataclasses.replace(
            CAPABILITIES, max_message_bytes=self.settings.max_message_bytes
        )
        self._broker: KafkaBroker | None = None
        self._producers: Producers | None = None
        self._admin: Any = None
        #: A group-less consumer that reads offsets, started on first use.
        self._offsets: Any = None
        self._topics: TopicManager | None = None

    # -- connection ----------------------------------------------------------------------

    def _client_kwargs(self) -> dict[str, Any]:
        assert self._broker is not None
        return dict(self._broker._connection_kwargs)

    async def _connect(self) -> None:
        s = self.settings
        broker = KafkaBroker(
            list(s.hosts),
            security=security(s),
            client_id=s.client_id,
            request_timeout_ms=s.request_timeout_ms,
            acks="all",
            enable_idempotence=True,
            linger_ms=s.linger_ms,
            max_batch_size=min(s.max_batch_bytes, s.max_message_bytes),
            compression_type=cast(Any, s.compression_type),
            max_request_size=s.max_message_bytes + _REQUEST_HEADROOM,
            allow_auto_create_topics=False,
            apply_types=False,
            logger=None,
        )
        try:
            with self.map_errors(
                f"connecting to Kafka at {self.url} within {s.connect_timeout:g}s",
                advice="check that the brokers run and the URL, credentials and security "
                "options are right",
            ):
                # Probe first with a plain client, closed whatever happens: a failed
                # ``KafkaBroker.connect`` would leave its half-started producer behind.
                probe_kwargs = takes(AIOKafkaClient, broker._connection_kwargs, "client_id")
                probe = AIOKafkaClient(**probe_kwargs)
                try:
                    await asyncio.wait_for(probe.bootstrap(), s.connect_timeout)
                except KafkaConnectionError as exc:
                    await explain(s, self.url, exc, probe_kwargs)
                    raise
                finally:
                    await probe.close()
                await asyncio.wait_for(broker.connect(), s.connect_timeout)
        except BaseException:
            await quietly(broker.stop(), "kafka disconnect", timeout=10)
            raise
        config = broker.config.broker_config
        self._broker = broker
        # Underneath FastStream: its aiokafka producer (idempotent, acks=all) and admin client.
        producers = self._producers = Producers(
            aiokafka_producer(config.producer),
            self._new_producer,
            s.scrub,
            timeout=s.request_timeout_ms / 1000,
        )
        self._admin = config.admin_client
        self._topics = TopicManager(
            self._admin, lambda topic: producers.current.partitions_for(topic), s
        )

    async def _new_producer(self) -> Any:
        """A started producer with the options FastStream's has (idempotent, acks=all)."""
        producer = AIOKafkaProducer(**self._client_kwargs())
        try:
            await asyncio.wait_for(producer.start(), self.settings.connect_timeout)
        except BaseException:
            await asyncio.shield(producer.stop())
            raise
        return producer

    def _connected(self, channel: str | None = None) -> TopicManager:
        """The topic manager, once the backend is connected and `channel` (if given) is a
        legal topic name (`check_topic`)."""
        self.check_connected()
        if channel is not None:
            check_topic(channel)
        assert self._topics is not None
        return self._topics

    # -- publishing ----------------------------------------------------------------------

    async def publish(self, channel: str, messages: Sequence[WireMessage]) -> None:
        self.check_publish(channel, messages)
        # The topic's name is checked when it is created (`TopicManager.limit`).
        limit = await self._connected().limit(channel)
        limit = min(limit, self.settings.max_message_bytes + _REQUEST_HEADROOM)
        if (over := first_oversized(messages, limit, RECORD_OVERHEAD)) is not None:
            index, size = over
            raise MessageTooLargeError(
                f"message {index} for Kafka topic {channel!r} is about {size} bytes as a "
                f"record (body, key, headers), over the topic's max.message.bytes of "
                f"{limit}; nothing was sent. Publish a reference to the data instead, or "
                "raise max.message.bytes (option max_message_bytes for new topics)"
            )
        producers = self._producers
        assert producers is not None
        with self.map_errors(f"publish to Kafka topic {channel!r}", into=PublishError):
            await producers.publish(channel, messages)

    # -- consuming -----------------------------------------------------------------------

    async def subscribe(self, spec: SubscriptionSpec, handler: MessageHandler) -> KafkaSubscription:
        self.check_subscribe(spec)
        topics = self._connected(spec.channel)
        await topics.ensure([spec.channel, dead_letter_channel(spec.channel)])
        s = self.settings
        consumer = self._consumer(
            group_id=spec.group,
            client_id=spec.member_prefix,
            enable_auto_commit=False,
            auto_offset_reset="earliest" if spec.from_beginning else "latest",
            session_timeout_ms=s.session_timeout_ms,
            heartbeat_interval_ms=s.heartbeat_interval_ms,
            max_poll_interval_ms=s.max_poll_interval_ms,
            max_partition_fetch_bytes=s.max_partition_fetch_bytes,
            fetch_max_bytes=max(50 * 1024 * 1024, s.max_message_bytes + _REQUEST_HEADROOM),
            fetch_max_wait_ms=s.fetch_max_wait_ms,
        )
        subscription = KafkaSubscription(spec, handler, consumer, s)
        with self.map_errors(f"joining group {spec.group!r} on Kafka topic {spec.channel!r}"):
            return await self.started(subscription)

    def _consumer(self, *, client_id: str, **options: Any) -> Any:
        """A consumer; its client id is the backend's with `client_id` appended."""
        kwargs = takes(AIOKafkaConsumer, self._client_kwargs())
        kwargs.update(options, client_id=f"{self.settings.client_id}-{client_id}")
        return AIOKafkaConsumer(**kwargs)

    async def delete_group(self, channel: str, group: str) -> None:
        """Delete the consumer group `group` (a Kafka group spans topics: all of it goes).

        The group must have no running member."""
        await self._connected().delete_group(group)

    async def delete_channel(self, channel: str) -> bool:
        """Delete the channel's topic (`eventwire.backend.ChannelDeleter`): its records and
        every group's committed offsets on it (the broker drops the offsets of a deleted
        topic's partitions); ``False`` if there was no topic. This backend's members on it
        give their partitions up (nothing is left to commit to)."""
        topics = self._connected(channel)
        with self.map_errors(f"deleting Kafka topic {channel!r}"):
            deleted = await topics.delete(channel)
        for subscription in self.subscriptions:
            if isinstance(subscription, KafkaSubscription) and subscription.spec.channel == channel:
                subscription.drop()
        return deleted

    async def lag(self, channel: str, group: str) -> int | None:
        """Records of `channel` past `group`'s committed offsets: the end offset minus the
        committed offset, summed over the partitions (`eventwire.backend.LagReporter`).
        A member commits the lowest offset it has not finished, so delivered records still
        being handled count. ``None`` if the topic does not exist or the group committed
        nothing on it."""
        topics = self._connected(channel)
        with self.map_errors(f"lag of group {group!r} on Kafka topic {channel!r}"):
            tps = await topics.partitions(channel)
            if not tps:
                return None
            committed = await self._admin.list_consumer_group_offsets(group, partitions=tps)
            positions = {tp: c.offset for tp, c in committed.items() if c.offset >= 0}
            if not positions:
                return None
            ends = await (await self._offsets_consumer()).end_offsets(list(positions))
            return sum(max(0, int(ends[tp]) - int(offset)) for tp, offset in positions.items())

    async def _offsets_consumer(self) -> Any:
        """The group-less consumer that reads offsets (for `lag` and `purge_channel`)."""
        if self._offsets is None:
            consumer = self._consumer(group_id=None, client_id="offsets")
            await asyncio.wait_for(consumer.start(), self.settings.connect_timeout)
            self._offsets = consumer
        return self._offsets

    async def browse(self, channel: str, limit: int = 1000) -> list[WireMessage]:
        """Up to `limit` records of `channel`, oldest first (by record time across
        partitions), read with a group-less consumer: nothing is committed."""
        topics = self._connected(channel)
        if limit <= 0:
            return []
        s = self.settings
        timeout = s.request_timeout_ms / 1000
        with self.map_errors(f"reading Kafka topic {channel!r}"):
            tps = await topics.partitions(channel)
            if not tps:
                return []
            consumer = self._consumer(
                group_id=None,
                client_id="browse",
                auto_offset_reset="earliest",
                fetch_max_bytes=max(50 * 1024 * 1024, s.max_message_bytes * 2),
            )
            try:  # a group-less consumer: nothing is committed
                await asyncio.wait_for(consumer.start(), s.connect_timeout)
                records = await read_topic(consumer, tps, limit, timeout)
            finally:
                await quietly(consumer.stop(), "kafka browse consumer stop", timeout=timeout)
        # Record time (ms) first; within one millisecond the CloudEvents time (µs), which
        # follows publish order across partitions; then partition order.
        records.sort(key=lambda r: (r.timestamp, _ce_time(r), r.partition, r.offset))
        return [to_wire(r) for r in records[:limit]]

    async def purge_channel(self, channel: str) -> int:
        """Delete the records of topic `channel` up to its end offsets now, through the
        admin client's DeleteRecords (`eventwire.backend.ChannelPurger`). The topic, its
        partitions and every group's committed offsets stay; records published afterwards
        are kept. Returns how many offsets were removed (``0`` if there is no topic)."""
        from aiokafka.admin import RecordsToDelete

        topics = self._connected(channel)
        with self.map_errors(f"purge Kafka topic {channel!r}"):
            tps = await topics.partitions(channel)
            if not tps:
                return 0
            offsets = await self._offsets_consumer()
            starts = await offsets.beginning_offsets(tps)
            ends = await offsets.end_offsets(tps)
            todo = {
                tp: RecordsToDelete(before_offset=ends[tp]) for tp in tps if ends[tp] > starts[tp]
            }
            if todo:
                await self._admin.delete_records(todo, timeout_ms=self.settings.request_timeout_ms)
        return sum(ends[tp] - starts[tp] for tp in todo)

    # -- shutdown ------------------------------------------------------------------------

    async def _close(self) -> None:
        """Flush and disconnect (the subscriptions have committed and left their groups)."""
        if self._offsets is not None:
            offsets, self._offsets = self._offsets, None
            await quietly(offsets.stop(), "kafka offsets consumer stop", timeout=10)
        if self._producers is not None:
            await self._producers.close()
        if self._broker is not None:
            await quietly(self._broker.stop(), "kafka disconnect", timeout=10)
        self._topics = None


def _ce_time(record: Any) -> bytes:
    return next((bytes(value) for name, value in record.headers if name == "ce_time"), b"")
