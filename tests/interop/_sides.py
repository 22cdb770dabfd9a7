"""The other side of each broker, written with its own libraries: FastStream 0.7, the
`cloudevents` SDK and the raw client (aiokafka, aio-pika, redis-py, nats-py).

Where a foreign producer must write so that an eventwire group reads it:

- Kafka: the channel's topic.
- RabbitMQ: the channel's exchange (a durable topic exchange named as the channel), any
  routing key.
- Redis: one of the channel's shard streams, ``<channel>:<n>`` (``<channel>:0`` here).
- NATS: one of the channel's shard subjects, ``<channel>.<n>``, captured by the stream
  ``EW_<channel>`` (``<channel>.0`` here).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any, Protocol

from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from eventwire.foreign import STRUCTURED
from pydantic import BaseModel

KAFKA_URL = os.environ.get("EVENTWIRE_KAFKA_URL") or "kafka://127.0.0.1:9092"
RABBIT_URL = os.environ.get("EVENTWIRE_RABBIT_URL") or "amqp://guest:guest@127.0.0.1:5672/"
REDIS_URL = os.environ.get("EVENTWIRE_REDIS_URL") or "redis://127.0.0.1:6379/0"
NATS_URL = os.environ.get("EVENTWIRE_NATS_URL") or "nats://127.0.0.1:4222"


def unique(what: str) -> str:
    return f"ewt-foreign-{what}-{uuid.uuid4().hex[:10]}"


class Side(Protocol):
    """One broker as a foreign producer (and FastStream consumer) sees it."""

    name: str
    url: str

    async def faststream_publish(self, channel: str, payload: BaseModel, **options: Any) -> None:
        """Publish `payload` with a FastStream broker's defaults (plus `options`)."""
        ...

    async def raw_publish(
        self, channel: str, payload: dict[str, Any], headers: dict[str, str]
    ) -> None:
        """Publish `payload` as plain JSON with the broker's client library (Redis: as the
        entry's fields, which have no headers besides)."""
        ...

    async def structured_publish(self, channel: str, event: CloudEvent | dict[str, Any]) -> None:
        """Publish a structured-mode CloudEvent: the SDK's binding where it has one for this
        broker; a dict is a document the SDK would refuse to build (sent as it is)."""
        ...

    def faststream_consumer(
        self, channel: str, model: type[BaseModel]
    ) -> contextlib.AbstractAsyncContextManager[asyncio.Queue[BaseModel]]:
        """A running FastStream subscriber with its default settings, reading the channel."""
        ...


def structured_body(event: CloudEvent | dict[str, Any]) -> bytes:
    """The JSON event format of `event` (the SDK's writer), or the document as it is."""
    if isinstance(event, dict):
        return json.dumps(event).encode()
    return JSONFormat().write(event)


class KafkaSide:
    name = "kafka"
    url = KAFKA_URL
    bootstrap = KAFKA_URL.split("://", 1)[1].split("?", 1)[0]

    async def faststream_publish(self, channel: str, payload: BaseModel, **options: Any) -> None:
        from faststream.kafka import KafkaBroker

        async with KafkaBroker(self.bootstrap, logger=None) as broker:
            await broker.publish(payload, topic=channel, **options)

    async def raw_publish(
        self, channel: str, payload: dict[str, Any], headers: dict[str, str]
    ) -> None:
        body = json.dumps(payload).encode()
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap)
        await producer.start()
        try:
            pairs = [(k, v.encode()) for k, v in headers.items()]
            await producer.send_and_wait(channel, body, headers=pairs)
        finally:
            await producer.stop()

    async def structured_publish(self, channel: str, event: CloudEvent | dict[str, Any]) -> None:
        from aiokafka import AIOKafkaProducer
        from cloudevents.core.bindings.kafka import KafkaMessage, to_structured

        if isinstance(event, dict):
            message = KafkaMessage(
                headers={"content-type": STRUCTURED.encode()},
                key=None,
                value=structured_body(event),
            )
        else:
            message = to_structured(event, JSONFormat())
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap)
        await producer.start()
        try:
            headers = [
                (k, v if isinstance(v, bytes) else v.encode()) for k, v in message.headers.items()
            ]
            await producer.send_and_wait(channel, message.value, key=message.key, headers=headers)
        finally:
            await producer.stop()

    @contextlib.asynccontextmanager
    async def faststream_consumer(
        self, channel: str, model: type[BaseModel]
    ) -> AsyncIterator[asyncio.Queue[BaseModel]]:
        from faststream.kafka import KafkaBroker

        got: asyncio.Queue[BaseModel] = asyncio.Queue()
        broker = KafkaBroker(self.bootstrap, logger=None)

        @broker.subscriber(channel, group_id=unique("fs"), auto_offset_reset="earliest")
        async def handle(message: model) -> None:  # type: ignore[valid-type]
            await got.put(message)

        async with broker:
            await broker.start()
            yield got


class RabbitSide:
    name = "rabbit"
    url = RABBIT_URL

    @staticmethod
    def exchange(channel: str) -> Any:
        from faststream.rabbit import ExchangeType, RabbitExchange

        return RabbitExchange(channel, type=ExchangeType.TOPIC, durable=True)

    async def faststream_publish(self, channel: str, payload: BaseModel, **options: Any) -> None:
        from faststream.rabbit import RabbitBroker

        async with RabbitBroker(self.url, logger=None) as broker:
            await broker.publish(
                payload, exchange=self.exchange(channel), routing_key="any", **options
            )

    async def raw_publish(
        self, channel: str, payload: dict[str, Any], headers: dict[str, str]
    ) -> None:
        await self._send(channel, json.dumps(payload).encode(), headers)

    async def _send(self, channel: str, body: bytes, headers: dict[str, str]) -> None:
        """aio-pika: ``content-type``, ``message_id`` and ``correlation_id`` as properties."""
        import aio_pika

        properties: dict[str, Any] = dict(headers)
        message = aio_pika.Message(
            body,
            content_type=properties.pop("content-type", None),
            message_id=properties.pop("message_id", None),
            correlation_id=properties.pop("correlation_id", None),
            headers=properties or None,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        connection = await aio_pika.connect(self.url)
        async with connection:
            amqp = await connection.channel(publisher_confirms=True)
            exchange = await amqp.get_exchange(channel)
            await exchange.publish(message, routing_key="any")

    async def structured_publish(self, channel: str, event: CloudEvent | dict[str, Any]) -> None:
        from cloudevents.core.bindings.rabbitmq import to_structured

        if isinstance(event, dict):
            body, headers = structured_body(event), {"content-type": STRUCTURED}
        else:
            message = to_structured(event, JSONFormat())
            body = message.body
            headers = {**message.headers, "content-type": message.content_type or ""}
        await self._send(channel, body, headers)

    @contextlib.asynccontextmanager
    async def faststream_consumer(
        self, channel: str, model: type[BaseModel]
    ) -> AsyncIterator[asyncio.Queue[BaseModel]]:
        from faststream.rabbit import RabbitBroker, RabbitQueue

        got: asyncio.Queue[BaseModel] = asyncio.Queue()
        broker = RabbitBroker(self.url, logger=None)
        queue = RabbitQueue(unique("fs"), routing_key="#", auto_delete=True)

        @broker.subscriber(queue, self.exchange(channel))
        async def handle(message: model) -> None:  # type: ignore[valid-type]
            await got.put(message)

        async with broker:
            await broker.start()
            yield got


class RedisSide:
    name = "redis"
    url = REDIS_URL

    async def faststream_publish(self, channel: str, payload: BaseModel, **options: Any) -> None:
        from faststream.redis import RedisBroker

        async with RedisBroker(self.url, logger=None) as broker:  # type: ignore[arg-type]
            await broker.publish(payload, stream=f"{channel}:0", **options)

    async def raw_publish(
        self, channel: str, payload: dict[str, Any], headers: dict[str, str]
    ) -> None:
        import redis.asyncio as redis

        client = redis.from_url(self.url)
        try:
            fields = {k: v if isinstance(v, str) else json.dumps(v) for k, v in payload.items()}
            await client.xadd(f"{channel}:0", fields)  # type: ignore[arg-type]
        finally:
            await client.aclose()

    async def structured_publish(self, channel: str, event: CloudEvent | dict[str, Any]) -> None:
        # The SDK has no Redis binding: FastStream carries the content type in its format.
        from faststream.redis import RedisBroker

        async with RedisBroker(self.url, logger=None) as broker:  # type: ignore[arg-type]
            await broker.publish(
                structured_body(event), stream=f"{channel}:0", headers={"content-type": STRUCTURED}
            )

    def faststream_consumer(
        self, channel: str, model: type[BaseModel]
    ) -> contextlib.AbstractAsyncContextManager[asyncio.Queue[BaseModel]]:
        raise NotImplementedError


class NatsSide:
    name = "nats"
    url = NATS_URL

    async def faststream_publish(self, channel: str, payload: BaseModel, **options: Any) -> None:
        from eventwire_nats import stream_name
        from faststream.nats import NatsBroker

        async with NatsBroker(self.url, logger=None) as broker:
            await broker.publish(
                payload, subject=f"{channel}.0", stream=stream_name(channel), **options
            )

    async def raw_publish(
        self, channel: str, payload: dict[str, Any], headers: dict[str, str]
    ) -> None:
        body = json.dumps(payload).encode()
        import nats

        client = await nats.connect(self.url)
        try:
            await client.jetstream().publish(f"{channel}.0", body, headers=headers or None)
        finally:
            await client.close()

    async def structured_publish(self, channel: str, event: CloudEvent | dict[str, Any]) -> None:
        # The SDK has no NATS binding: the JSON event format with its content type header.
        import nats

        client = await nats.connect(self.url)
        try:
            await client.jetstream().publish(
                f"{channel}.0", structured_body(event), headers={"content-type": STRUCTURED}
            )
        finally:
            await client.close()

    @contextlib.asynccontextmanager
    async def faststream_consumer(
        self, channel: str, model: type[BaseModel]
    ) -> AsyncIterator[asyncio.Queue[BaseModel]]:
        from eventwire_nats import stream_name
        from faststream.nats import JStream, NatsBroker

        got: asyncio.Queue[BaseModel] = asyncio.Queue()
        broker = NatsBroker(self.url, logger=None)
        stream = JStream(stream_name(channel), declare=False)

        @broker.subscriber(f"{channel}.*", stream=stream)
        async def handle(message: model) -> None:  # type: ignore[valid-type]
            await got.put(message)

        async with broker:
            await broker.start()
            yield got


SIDES: dict[str, Side] = {
    "kafka": KafkaSide(),
    "rabbit": RabbitSide(),
    "redis": RedisSide(),
    "nats": NatsSide(),
}
