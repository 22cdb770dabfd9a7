"""The Redis Streams backend: ``redis://``, ``rediss://`` (TLS) and ``redis+sentinel://``,
and a Redis idempotency store any backend can use.

``redis://[[user]:password@]host[:port][/db][?option=value...]``; the options are the fields
of `RedisSettings`. ``docs/backends/redis.md`` has them, the keys on the server, and how each
guarantee is achieved: a channel is ``shards`` streams (``crc32(key) % shards``), a group is
a consumer group on every one of them, its members share the shards through the kit's
`eventwire.backendkit.ShardCoordinator` over `RedisLeaseStore`, and a new owner of a shard
first delivers what earlier owners left pending (``XAUTOCLAIM``). FastStream's
``RedisBroker`` builds the connection; the rest is redis-py underneath it.
`RedisIdempotencyStore` (one Lua script per claim, atomic on the server) is the backend's
default store, so ``idempotent=True`` holds across member processes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from eventwire.backendkit import lazy_exports, shard_of

from eventwire_redis._idempotency import DEFAULT_PREFIX, RedisIdempotencyStore
from eventwire_redis._info import BACKEND_INFO, CAPABILITIES, MAX_MESSAGE_BYTES, SCHEMES
from eventwire_redis._leases import RedisLeaseStore
from eventwire_redis._settings import RedisConnection, RedisSettings
from eventwire_redis._topology import ChannelKeys

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
