"""What the rabbit backend creates on the broker, and the names it gives it.

Channel and group names never contain ``:`` (see `eventwire._naming`), so every name derived
here with ``:`` cannot collide with a channel's own exchange. The table of what each name is
and who creates it: "What the backend creates" in ``docs/backends/rabbit.md``.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Protocol

import aiormq

from eventwire_rabbit._info import SLOTS
from eventwire_rabbit._settings import RabbitSettings
from eventwire_rabbit._wire import SLOT_HEADER

if TYPE_CHECKING:
    from eventwire_rabbit._publisher import Publisher

__all__ = [
    "MEMBERS_EXCHANGE",
    "Connection",
    "declare_channel",
    "declare_router",
    "declare_shards",
    "group_exchange",
    "history_queue",
    "init_lock_queue",
    "shard_arguments",
    "shard_queue",
    "stream_arguments",
    "unslotted_exchange",
]

MEMBERS_EXCHANGE = "eventwire:members"


class Connection(Protocol):
    """What the group and member code needs of the backend (`RabbitBackend`)."""

    @property
    def settings(self) -> RabbitSettings: ...
    async def amqp(self, timeout: float | None = None) -> aiormq.abc.AbstractConnection: ...
    @property
    def publisher(self) -> Publisher: ...
    def scratch(self) -> contextlib.AbstractAsyncContextManager[aiormq.abc.AbstractChannel]: ...
    def map_errors(self, action: str) -> contextlib.AbstractContextManager[None]: ...


#: Points on the consistent-hash ring per shard (1 point per shard spreads keys unevenly).
HASH_WEIGHT = "16"


def history_queue(channel: str) -> str:
    return f"{channel}:history"


def groups_queue(channel: str) -> str:
    """The record of `channel`'s groups: one message per group, its name, a tab and its
    shard count."""
    return f"{channel}:groups"


def group_exchange(channel: str, group: str) -> str:
    return f"{channel}:{group}"


def unslotted_exchange(router: str) -> str:
    """The alternate exchange of the router `router` (messages without a slot)."""
    return f"{router}:unslotted"


def shard_queue(channel: str, group: str, shard: int) -> str:
    return f"{channel}:{group}:{shard}"


def init_lock_queue(channel: str, group: str) -> str:
    return f"{channel}:{group}:creating"


def stream_arguments(settings: RabbitSettings) -> dict[str, Any]:
    segment = max(1 << 20, min(100 << 20, settings.history_max_bytes // 4))
    return {
        "x-queue-type": "stream",
        "x-max-age": settings.history_max_age,
        "x-max-length-bytes": settings.history_max_bytes,
        "x-stream-max-segment-size-bytes": segment,
    } | ({"x-initial-cluster-size": settings.quorum_size} if settings.quorum_size else {})


def shard_arguments(settings: RabbitSettings, channel: str) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "x-queue-type": "quorum",
        "x-single-active-consumer": True,
        "x-dead-letter-exchange": channel + ".dlq",
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }
    if settings.delivery_limit:
        arguments["x-delivery-limit"] = settings.delivery_limit
    if settings.group_expires is not None:
        arguments["x-expires"] = int(settings.group_expires * 1000)
    if settings.quorum_size:
        arguments["x-quorum-initial-group-size"] = settings.quorum_size
    return arguments


async def declare_channel(
    amqp: aiormq.abc.AbstractChannel, settings: RabbitSettings, channel: str
) -> None:
    """The channel exchange and (with ``history``, or for a ``.dlq``) its history stream."""
    await amqp.exchange_declare(channel, exchange_type="topic", durable=True)
    if settings.history or channel.endswith(".dlq"):
        stream = history_queue(channel)
        await amqp.queue_declare(stream, durable=True, arguments=stream_arguments(settings))
        await amqp.queue_bind(stream, channel, routing_key="#")


async def declare_shards(
    amqp: aiormq.abc.AbstractChannel, settings: RabbitSettings, channel: str, group: str
) -> list[str]:
    names = [shard_queue(channel, group, n) for n in range(settings.shards)]
    arguments = shard_arguments(settings, channel)
    for name in names:
        await amqp.queue_declare(name, durable=True, arguments=arguments)
    return names


async def declare_router(
    amqp: aiormq.abc.AbstractChannel,
    name: str,
    shards: list[str],
    *,
    durable: bool,
) -> None:
    """The headers exchange `name` sending slot ``s`` to ``shards[s mod len(shards)]``, with
    a consistent-hash alternate exchange for messages that carry no slot (bound in shard
    order: the same ring each time it is created; not necessarily after a broker restart)."""
    fallback = unslotted_exchange(name)
    arguments: dict[str, Any] = {"x-eventwire-shards": len(shards)}
    await amqp.exchange_declare(
        fallback, exchange_type="x-consistent-hash", durable=durable, arguments=arguments
    )
    for queue in shards:
        await amqp.queue_bind(queue, fallback, routing_key=HASH_WEIGHT)
    await amqp.exchange_declare(
        name,
        exchange_type="headers",
        durable=durable,
        arguments={"alternate-exchange": fallback, **arguments},
    )
    for slot in range(SLOTS):
        await amqp.queue_bind(
            shards[slot % len(shards)],
            name,
            routing_key="",
            arguments={"x-match": "all", SLOT_HEADER: str(slot)},
        )
