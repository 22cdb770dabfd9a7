"""The Redis Streams backend: ``redis://`` and ``rediss://`` (TLS), and a Redis idempotency
store any backend can use.

``redis://[[user]:password@]host[:port][/db][?option=value...]``; the options are the fields
of `RedisSettings` (``docs/backends/redis.md`` has them, and how each guarantee is achieved).

A channel is ``shards`` streams; an event goes to ``crc32(key) % shards`` as one entry of
CloudEvents header fields. A group is a consumer group on every shard stream; its members
share the shards through the backend kit's `eventwire.backendkit.ShardCoordinator` over
`RedisLeaseStore` (leases ``SET NX PX``, members in a heartbeat sorted set). A member that
takes a shard first claims what earlier owners left pending (``XAUTOCLAIM``, in id order),
delivers it, and only then reads new entries; it acks (``XACK``) in batches and gives a
shard back only once every entry it read there is settled. Retention trimming entries a
group has not settled is reported (``RedisBackend.trimmed_entries`` and an ``ERROR`` log).

FastStream's ``RedisBroker`` builds the connection (URL, credentials, TLS, the redis-py
pool); everything else is redis-py underneath it, because FastStream's stream subscriber
is bound to one stream and claims instead of reading new entries (see the docs page).
`RedisIdempotencyStore` claims event ids with one Lua script (``SET ... NX PX`` semantics
with a per-claim token), atomic on the server across processes; it is the backend's default
store (`RedisBackend.shared_idempotency_store`), so ``idempotent=True`` holds across member
processes without configuration.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from eventwire.backendkit import lazy_exports

from eventwire_redis._idempotency import DEFAULT_PREFIX, RedisIdempotencyStore
from eventwire_redis._info import BACKEND_INFO, CAPABILITIES, MAX_MESSAGE_BYTES, SCHEMES
from eventwire_redis._leases import RedisLeaseStore
from eventwire_redis._settings import RedisConnection, RedisSettings
from eventwire_redis._topology import ChannelKeys, shard_of

if TYPE_CHECKING:
    from eventwire_redis._backend import RedisBackend
    from eventwire_redis._subscription import RedisInbound, RedisSubscription

__all__ = [
    "BACKEND_INFO",
    "CAPABILITIES",
    "DEFAULT_PREFIX",
    "MAX_MESSAGE_BYTES",
    "SCHEMES",
    "ChannelKeys",
    "RedisBackend",
    "RedisConnection",
    "RedisIdempotencyStore",
    "RedisInbound",
    "RedisLeaseStore",
    "RedisSettings",
    "RedisSubscription",
    "shard_of",
]

# These import redis-py (and FastStream): loaded on first use.
__getattr__ = lazy_exports(
    __name__,
    {
        "RedisBackend": "eventwire_redis._backend",
        "RedisInbound": "eventwire_redis._subscription",
        "RedisSubscription": "eventwire_redis._subscription",
    },
)
