"""The raw-client rows, one module per broker, and the sweep that deletes a run's channels.

| broker   | client    | per-message acknowledgement                                   |
|----------|-----------|---------------------------------------------------------------|
| Kafka    | aiokafka  | offsets committed after each handled ``getmany()`` batch      |
| RabbitMQ | aio-pika  | ``basic.ack`` of each delivery (manual ack, bounded prefetch) |
| Redis    | redis-py  | ``XACK`` of each handled entry id (one call per read)         |
| NATS     | nats-py   | ``msg.ack()`` of each JetStream message (AckExplicit)         |
"""

from __future__ import annotations

from collections.abc import Sequence

from eventwire_conformance.bench._urls import broker_kind
from eventwire_conformance.bench.model import BenchConfig, PayloadFactory, Runner

__all__ = ["raw_runner", "sweep"]


def raw_runner(config: BenchConfig, payloads: PayloadFactory) -> Runner | None:
    """The raw-client runner for the URL's broker; ``None`` for ``memory://``."""
    kind = broker_kind(config.url)
    if kind == "kafka":
        from eventwire_conformance.bench._raw_kafka import KafkaRawRunner

        return KafkaRawRunner(config, payloads)
    if kind == "rabbit":
        from eventwire_conformance.bench._raw_rabbit import RabbitRawRunner

        return RabbitRawRunner(config, payloads)
    if kind == "redis":
        from eventwire_conformance.bench._raw_redis import RedisRawRunner

        return RedisRawRunner(config, payloads)
    if kind == "nats":
        from eventwire_conformance.bench._raw_nats import NatsRawRunner

        return NatsRawRunner(config, payloads)
    return None


async def sweep(
    url: str,
    marker: str,
    channels: Sequence[str],
    groups: Sequence[str],
    *,
    raw_client: bool = True,
) -> list[str]:
    """Delete what a run created on the broker (names containing `marker`), best effort.

    Returns what was deleted. With `raw_client` (some row used FastStream or the client
    library), Kafka topics, Redis keys and NATS streams are listed and matched by `marker`;
    RabbitMQ cannot list over AMQP, so its queues and exchanges are deleted by name
    (`channels`, their dead-letter channels, and names built from `groups`). Without it (only
    eventwire rows ran, e.g. on a TLS listener whose options only eventwire takes), and on any
    other backend, `channels` are deleted through the backend itself.
    """
    kind = broker_kind(url)
    if not raw_client or kind not in ("kafka", "rabbit", "redis", "nats"):
        return await _sweep_by_backend(url, channels)
    if kind == "kafka":
        from eventwire_conformance.bench import _raw_kafka

        return await _raw_kafka.sweep(url, marker)
    if kind == "rabbit":
        from eventwire_conformance.bench import _raw_rabbit

        return await _raw_rabbit.sweep(url, channels, groups)
    if kind == "redis":
        from eventwire_conformance.bench import _raw_redis

        return await _raw_redis.sweep(url, marker)
    if kind == "nats":
        from eventwire_conformance.bench import _raw_nats

        return await _raw_nats.sweep(url, marker)
    return []


async def _sweep_by_backend(url: str, channels: Sequence[str]) -> list[str]:
    """Delete the run's channels through the backend itself, when it can
    (`eventwire.backend.ChannelDeleter`: memory, sqlite, and third-party backends)."""
    from eventwire_conformance._cleanup import delete_channels

    return await delete_channels(url, channels)
