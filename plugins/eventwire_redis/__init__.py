"""The Redis Streams backend: ``redis://`` and ``rediss://`` (TLS), and a Redis idempotency
store any backend can use.

``redis://[[user]:password@]host[:port][/db][?option=value...]``; options also as
``EventBus(url, backend_options={...})`` (those win). Connection: ``username``,
``password`` (ACL user or ``requirepass``), ``db``, ``client_name``, ``connect_timeout``
(5 s), ``socket_timeout`` (10 s), TLS with ``rediss://`` plus ``ssl_ca_certs``,
``ssl_certfile``, ``ssl_keyfile``, ``ssl_cert_reqs`` (required|optional|none),
``ssl_check_hostname``. Behaviour: ``shards`` (8), ``maxlen`` (100000 entries per shard
stream, approximate, 0 = keep everything), ``retention`` (seconds, uses ``MINID`` instead of
``MAXLEN``), ``lease_ttl`` (5 s: how fast a crashed member's events come back),
``claim_min_idle`` (0 s), ``fetch_count`` (200), ``block`` (0.2 s), ``reconnect_timeout``
(30 s), ``prefix`` (""), ``max_message_bytes`` (32 MiB). An unknown option is a
`eventwire.errors.ConfigurationError` listing the known ones.

How each guarantee is achieved
------------------------------

- **Storage and fan-out (G01-G03, G13, G14).** A channel is ``shards`` Redis streams
  (``<channel>:<n>``); an event goes to ``crc32(key) % shards`` (no key: round-robin) as one
  entry whose fields are ``$body``, ``$key`` and the CloudEvents headers under the Kafka
  binding names. A group is a consumer group on every shard stream (never lists or
  pub/sub: they lose events). ``subscribe`` returns once the group exists on every shard, so
  everything published afterwards reaches it; a new group starts at ``$`` (or ``0`` with
  ``from_beginning``), an existing one resumes where it was, members or not.
- **Confirmed publishes (G15).** ``publish`` returns once ``XADD`` answered for every
  event (with the broker's ``appendfsync always`` that is on disk). Concurrent publishes and
  ``publish_many`` go out pipelined on one connection (one round trip per batch of up to
  1000), and each caller gets its own outcome. An error reply raises
  `eventwire.errors.PublishError`; an outage is retried until ``reconnect_timeout``.
- **Competing members and key order (G04, G05).** Members register in a heartbeat sorted
  set; shard ``i`` belongs to the ``i % n``-th live member. A member takes a shard with a
  lease (``SET NX PX lease_ttl``, renewed every ``lease_ttl / 3``) and gives it back only
  once every entry it read from it is settled, so one key is never handled by two members
  at once. Joins, leaves and give-backs bump a counter the others poll with every read, so
  a rebalance takes a fraction of a second. Within a member, entries of a shard are handed
  to the pipeline in stream order (which runs same-key events one after another).
- **At-least-once, crashes, shutdown (G06, G12, G18).** An entry is acknowledged
  (``XACK``) only after the pipeline settled it. Acks are batched: the ones that arrive
  while an ``XACK`` is on its way go in the next, and ``close`` sends the last ones before
  giving the shards back. A member that stops leaves entries pending in the group; a
  crashed one (``abort``, ``SIGKILL``) also keeps its leases until they expire. Whoever
  takes a shard first claims every entry pending there with ``XAUTOCLAIM`` (Redis 7.0 has
  no ``XREADGROUP ... CLAIM``), in id order and with delivery counts from ``XPENDING``,
  delivers those, and only then reads new entries (``>``). The lease is the idle time: a
  crashed member's events come back after about ``lease_ttl``; ``claim_min_idle`` adds a
  floor for servers shared with other consumers.
- **Retries, dead letters, idempotency (G07-G11).** The SDK's pipeline retries in place and
  dead-letters by publishing to ``<channel>.dlq`` (one stream, so it is listed in exact
  order; ``browse`` is ``XRANGE``) and then acking. The delivery count the pipeline starts
  its attempts from is the ``XPENDING`` count.
- **Reconnect (G16).** Every loop (reads, acks, heartbeats, publishes) retries with
  back-off while the server is away, logging one warning per outage; after an error the
  member re-claims what the server may have handed it while the reply was lost.
- **Large events, backpressure, contracts (G17, G19, G20).** ``max_message_bytes`` is
  checked before anything is sent (lowered to the server's ``proto-max-bulk-len`` if that is
  smaller). A read asks for at most ``min(fetch_count, max_in_flight)`` entries per shard
  and the loop blocks while the pipeline is full. Contracts are the SDK's.

Retention and trimming: every ``XADD`` trims with ``MAXLEN ~ maxlen`` (or ``MINID ~`` for
``retention``). Trimming entries a group has not settled is *reported*, never silent: an
``ERROR`` log naming the stream, the group and the count, and
``RedisBackend.trimmed_entries``; pending entries come from ``XAUTOCLAIM``'s deleted ids,
unread ones from the group's ``lag`` (exact because groups are created with
``ENTRIESREAD``), checked when a shard is taken and while a member is behind.

FastStream and redis-py
-----------------------

FastStream's ``RedisBroker`` builds the connection: URL parsing, credentials (given as
keyword arguments, so FastStream never holds them in a URL), TLS through its
``BaseSecurity(ssl_context=...)`` and the redis-py connection pool it opens. Everything
else goes underneath it, to redis-py, because FastStream's stream subscriber conflicts with
the guarantees: it binds a subscriber to one fixed stream (shard ownership moves between
members), its ``XAUTOCLAIM`` mode (``min_idle_time``) replaces reading new entries instead
of running before them (key order), its nack and reject on streams leave entries pending
without redelivery, and it costs 125-160 us per message, which caps it well below the
client. FastStream's publisher wraps the payload in its own envelope in one field; the
backend writes the CloudEvents headers as stream fields any client can read, packs ``XADD``
itself and pipelines it. The connection speaks RESP2.

The idempotency store `RedisIdempotencyStore` (``claim`` = one Lua script, ``SET ... NX
PX`` semantics with a per-claim token; ``complete`` = ``SET done PX ttl``; ``release`` =
delete-if-ours) is atomic on the server and safe for concurrent duplicates across processes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from eventwire_redis._idempotency import DEFAULT_PREFIX, RedisIdempotencyStore
from eventwire_redis._info import BACKEND_INFO, CAPABILITIES, MAX_MESSAGE_BYTES, SCHEMES
from eventwire_redis._settings import RedisConnection, RedisSettings
from eventwire_redis._topology import ChannelKeys, shard_of

if TYPE_CHECKING:
    from eventwire_redis._backend import RedisBackend
    from eventwire_redis._subscription import RedisDelivery, RedisSubscription

__all__ = [
    "BACKEND_INFO",
    "CAPABILITIES",
    "DEFAULT_PREFIX",
    "MAX_MESSAGE_BYTES",
    "SCHEMES",
    "ChannelKeys",
    "RedisBackend",
    "RedisConnection",
    "RedisDelivery",
    "RedisIdempotencyStore",
    "RedisSettings",
    "RedisSubscription",
    "shard_of",
]

# These import redis-py (and FastStream): loaded on first use, so importing the plugin
# (which every ``import eventwire`` with plugins does) never needs the Redis client.
_LAZY = {
    "RedisBackend": "eventwire_redis._backend",
    "RedisDelivery": "eventwire_redis._subscription",
    "RedisSubscription": "eventwire_redis._subscription",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'eventwire_redis' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
