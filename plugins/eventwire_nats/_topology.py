"""What the NATS backend creates on the server, and how it names it.

- one stream per channel, ``EW_<channel>`` (dots become ``_``; a channel with dots gets a
  short hash suffix so ``a.b`` and ``a_b`` never share a stream), file storage, capturing
  the subjects ``<channel>.<shard>``; the shard count is written in the stream's
  description (``eventwire channel <channel> shards=<n>``) so every publisher and consumer
  agrees on it, whatever its own ``shards`` option says;
- per group and shard a durable pull consumer ``<group>_<shard>`` filtered on
  ``<channel>.<shard>`` (explicit acks, ``ack_wait``, ``max_ack_pending``, no delivery limit:
  the SDK dead-letters);
- one key-value bucket (``lease_bucket``) holding group membership and shard leases.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import zlib
from typing import Any

from eventwire_nats._settings import NatsSettings

__all__ = [
    "ChannelTopology",
    "consumer_config",
    "durable_name",
    "group_token",
    "shards_from_description",
    "stream_config",
    "stream_name",
]

_DESCRIPTION = re.compile(r"^eventwire channel (\S+) shards=(\d+)$")


def _short_hash(text: str) -> str:
    return f"{zlib.crc32(text.encode()):08x}"


def stream_name(channel: str) -> str:
    """``EW_orders``; ``EW_shop_orders_1a2b3c4d`` for ``shop.orders``."""
    if "." in channel:
        return f"EW_{channel.replace('.', '_')}_{_short_hash(channel)}"
    return f"EW_{channel}"


def durable_name(group: str, shard: int) -> str:
    """``billing_3``; ``shop_billing_1a2b3c4d_3`` for the group ``shop.billing``."""
    base = group.replace(".", "_") + (f"_{_short_hash(group)}" if "." in group else "")
    return f"{base}_{shard}"


def group_token(stream: str, group: str) -> str:
    """A key-value-safe token naming one group on one stream."""
    return hashlib.sha1(f"{stream}\0{group}".encode()).hexdigest()[:20]


def shards_from_description(description: str | None) -> int | None:
    match = _DESCRIPTION.match(description or "")
    return int(match.group(2)) if match else None


@dataclasses.dataclass(frozen=True, slots=True)
class ChannelTopology:
    """A channel's stream as publishers and consumers need it."""

    channel: str
    stream: str
    shards: int

    def subject(self, shard: int) -> str:
        return f"{self.channel}.{shard}"

    def shard_of(self, key: str) -> int:
        return zlib.crc32(key.encode()) % self.shards


def stream_config(channel: str, settings: NatsSettings) -> dict[str, Any]:
    """The configuration of a new channel stream (a ``StreamConfig`` as keyword arguments)."""
    return {
        "name": stream_name(channel),
        "description": f"eventwire channel {channel} shards={settings.shards}",
        "subjects": [f"{channel}.*"],
        "retention": "limits",
        "storage": settings.storage,
        "num_replicas": settings.replicas,
        "max_age": settings.max_age or None,
        "max_bytes": settings.max_bytes,
        "max_msgs": settings.max_msgs,
        "duplicate_window": settings.duplicate_window,
        "discard": "old",
    }


def consumer_config(
    topology: ChannelTopology,
    group: str,
    shard: int,
    *,
    from_beginning: bool,
    max_ack_pending: int,
    ack_wait: float,
) -> dict[str, Any]:
    """The configuration of one group's durable pull consumer on one shard."""
    return {
        "durable_name": durable_name(group, shard),
        "description": f"eventwire group {group} shard {shard}",
        "filter_subject": topology.subject(shard),
        "deliver_policy": "all" if from_beginning else "new",
        "ack_policy": "explicit",
        "ack_wait": ack_wait,
        "max_deliver": -1,
        "max_ack_pending": max_ack_pending,
        "max_waiting": 64,
        "replay_policy": "instant",
    }
