"""The FastStream rows: FastStream alone, its default subscriber, on the same broker.

The only non-default setting is ``logger=None`` (no access log line per message; eventwire
logs none either). Default acknowledgement per broker (FastStream 0.7): Kafka ``ACK_FIRST``
(offsets auto-committed before the handler runs: a failing handler loses the event);
RabbitMQ, Redis (stream + group) and NATS JetStream ``REJECT_ON_ERROR`` (ack after the
handler). RabbitMQ: classic queue, non-persistent messages, unlimited prefetch (its
defaults). NATS: a durable push consumer. Pipelined publishing: Kafka ``no_confirm=True``
then awaiting the futures; Redis a client pipeline; RabbitMQ and NATS gathered publishes.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from importlib.metadata import version
from typing import Any

from eventwire_conformance.bench._urls import broker_kind, kafka_bootstrap
from eventwire_conformance.bench.model import BenchConfig, PayloadFactory, Tracker

__all__ = [
    "ConfirmedKafkaRunner",
    "ConfirmedRabbitRunner",
    "FastStreamRunner",
    "confirmed_runner",
    "faststream_runner",
]

_ACK = {
    "kafka": "default ACK_FIRST (auto-commit before the handler)",
    "rabbit": "default REJECT_ON_ERROR (ack after the handler), classic queue, "
    "non-persistent publish, unlimited prefetch",
    "redis": "stream + consumer group, default REJECT_ON_ERROR (XACK after the handler)",
    "nats": "JetStream durable push consumer, default REJECT_ON_ERROR (ack after the handler)",
}


def faststream_runner(config: BenchConfig, payloads: PayloadFactory) -> FastStreamRunner | None:
    """The FastStream runner for the URL's broker; ``None`` for ``memory://``."""
    kind = broker_kind(config.url)
    if kind not in _ACK:
        return None
    return FastStreamRunner(config, payloads, kind)


def confirmed_runner(config: BenchConfig, payloads: PayloadFactory) -> FastStreamRunner | None:
    """FastStream held to eventwire's guarantees where its default does less (RabbitMQ,
    Kafka)."""
    kind = broker_kind(config.url)
    if kind == "rabbit":
        return ConfirmedRabbitRunner(config, payloads, kind)
    if kind == "kafka":
        return ConfirmedKafkaRunner(config, payloads, kind)
    return None


class FastStreamRunner:
    kind = "faststream"
    #: Publish persistent messages (RabbitMQ).
    persist = False

    def __init__(self, config: BenchConfig, payloads: PayloadFactory, broker: str) -> None:
        self._config = config
        self._payloads = payloads
        self._broker_kind = broker
        self._publisher: Any = None
        self._side_client: Any = None  # redis client for pipelines / nats connection for streams
        self.label = f"FastStream {version('faststream')} alone: {_ACK[broker]}"

    def _new_broker(self) -> Any:
        url = self._config.url
        no_logger: Any = None  # no access log line per message
        if self._broker_kind == "kafka":
            from faststream.kafka import KafkaBroker

            return KafkaBroker(kafka_bootstrap(url), logger=no_logger, **self._kafka_options())
        if self._broker_kind == "rabbit":
            from faststream.rabbit import RabbitBroker

            return RabbitBroker(url, logger=no_logger)
        if self._broker_kind == "redis":
            from faststream.redis import RedisBroker

            return RedisBroker(url, logger=no_logger)
        from faststream.nats import NatsBroker

        return NatsBroker(url, logger=no_logger)

    async def start(self) -> None:
        self._publisher = self._new_broker()
        await self._publisher.start()
        if self._broker_kind == "redis":
            from eventwire_conformance.bench._raw_redis import _client

            self._side_client = _client(self._config.url)
            await self._side_client.ping()  # FastStream's Redis broker connects lazily
        elif self._broker_kind == "nats":
            from eventwire_conformance.bench._raw_nats import _connect

            self._side_client = await _connect(self._config.url)

    async def close(self) -> None:
        publisher, self._publisher = self._publisher, None
        side, self._side_client = self._side_client, None
        if publisher is not None:
            await publisher.stop()
        if side is not None:
            await (side.aclose() if self._broker_kind == "redis" else side.close())

    async def prepare(self, channel: str, group: str, figure: str) -> None:
        if self._broker_kind == "kafka":
            from eventwire_conformance.bench._raw_kafka import create_topic

            await create_topic(self._config.url, channel)
        elif self._broker_kind == "rabbit":
            await self._publisher.declare_queue(self._queue(channel))
        elif self._broker_kind == "redis":
            from eventwire_conformance.bench._raw_redis import create_group

            await create_group(self._side_client, channel, group)
        else:
            from eventwire_conformance.bench._raw_nats import create_stream

            await create_stream(self._side_client.jetstream(), channel)

    def _queue(self, channel: str) -> Any:
        from faststream.rabbit import RabbitQueue

        return RabbitQueue(channel)

    def _rabbit_options(self) -> dict[str, Any]:
        return {}

    def _kafka_options(self) -> dict[str, Any]:
        return {}

    def _kafka_subscriber_options(self) -> dict[str, Any]:
        return {}

    async def publish_one(self, channel: str, seq: int) -> None:
        fields = self._payloads.fields(seq)
        broker = self._publisher
        if self._broker_kind == "kafka":
            await broker.publish(fields, topic=channel, key=fields["key"].encode())
        elif self._broker_kind == "rabbit":
            await broker.publish(fields, queue=channel, persist=self.persist)
        elif self._broker_kind == "redis":
            await broker.publish(fields, stream=channel)
        else:
            from eventwire_conformance.bench._raw_nats import stream_name

            await broker.publish(fields, subject=channel, stream=stream_name(channel))

    async def publish_batch(self, channel: str, seqs: Sequence[int]) -> None:
        broker = self._publisher
        fields = self._payloads.fields
        if self._broker_kind == "kafka":
            futures = []
            for seq in seqs:
                data = fields(seq)
                futures.append(
                    await broker.publish(
                        data, topic=channel, key=data["key"].encode(), no_confirm=True
                    )
                )
            await asyncio.gather(*futures)
        elif self._broker_kind == "redis":
            async with self._side_client.pipeline(transaction=False) as pipe:
                for seq in seqs:
                    await broker.publish(fields(seq), stream=channel, pipeline=pipe)
                await pipe.execute()
        else:
            await asyncio.gather(*(self.publish_one(channel, seq) for seq in seqs))

    @asynccontextmanager
    async def consume(self, channel: str, group: str, tracker: Tracker) -> AsyncIterator[None]:
        broker = self._new_broker()
        hit = tracker.hit

        async def handle(body: dict[str, Any]) -> None:
            hit(body["seq"], body["sent_ns"])

        if self._broker_kind == "kafka":
            subscriber = broker.subscriber(
                channel,
                group_id=group,
                auto_offset_reset="earliest",
                **self._kafka_subscriber_options(),
            )
        elif self._broker_kind == "rabbit":
            subscriber = broker.subscriber(self._queue(channel), **self._rabbit_options())
        elif self._broker_kind == "redis":
            from faststream.redis import StreamSub

            subscriber = broker.subscriber(
                stream=StreamSub(channel, group=group, consumer="bench-consumer")
            )
        else:
            from faststream.nats import JStream
            from nats.js.api import DeliverPolicy

            from eventwire_conformance.bench._raw_nats import stream_name

            with warnings.catch_warnings():  # its advice to prefer pull consumers
                warnings.simplefilter("ignore", RuntimeWarning)
                subscriber = broker.subscriber(
                    channel,
                    stream=JStream(stream_name(channel), subjects=[channel]),
                    durable=group,
                    deliver_policy=DeliverPolicy.ALL,
                )
        subscriber(handle)
        await broker.start()
        try:
            yield
        finally:
            await broker.stop()


class ConfirmedRabbitRunner(FastStreamRunner):
    """FastStream on RabbitMQ with what eventwire promises: persistent messages, publisher
    confirms (FastStream's default), a durable quorum queue, and at most 64 unacked
    deliveries (eventwire's default in-flight window; FastStream's default is unlimited)."""

    kind = "faststream_confirmed"
    persist = True

    def __init__(self, config: BenchConfig, payloads: PayloadFactory, broker: str) -> None:
        super().__init__(config, payloads, broker)
        self.label = (
            f"FastStream {version('faststream')} held to eventwire's guarantees: persistent "
            "messages, publisher confirms, durable quorum queue, prefetch 64, ack after the "
            "handler"
        )

    def _queue(self, channel: str) -> Any:
        from faststream.rabbit import QueueType, RabbitQueue

        return RabbitQueue(channel, durable=True, queue_type=QueueType.QUORUM)

    def _rabbit_options(self) -> dict[str, Any]:
        from faststream.rabbit import Channel

        return {"channel": Channel(prefetch_count=64)}


class ConfirmedKafkaRunner(FastStreamRunner):
    """FastStream on Kafka with what eventwire promises: an idempotent ``acks=all`` producer
    (FastStream's default is ``acks=1``) and offsets committed after the handler
    (``AckPolicy.NACK_ON_ERROR``: a failed handler's record is fetched again; FastStream's
    default ``ACK_FIRST`` commits before the handler runs). FastStream commits after each
    handled message."""

    kind = "faststream_confirmed"

    def __init__(self, config: BenchConfig, payloads: PayloadFactory, broker: str) -> None:
        super().__init__(config, payloads, broker)
        self.label = (
            f"FastStream {version('faststream')} held to eventwire's guarantees: idempotent "
            "acks=all producer, offsets committed after the handler (NACK_ON_ERROR)"
        )

    def _kafka_options(self) -> dict[str, Any]:
        return {"enable_idempotence": True}

    def _kafka_subscriber_options(self) -> dict[str, Any]:
        from faststream import AckPolicy

        return {"ack_policy": AckPolicy.NACK_ON_ERROR}
