"""A durable embedded backend: one SQLite file, ``sqlite:///path/to/events.db``.

Built on `eventwire.backendkit`. The file holds a retained log per channel split into
shards (``crc32(key) % shards``), the position of each consumer group per shard, the
deliveries handed out and not settled, and the members and shard leases of each group.
Several processes of one host share the file: the members of a group, in any process, split
the shards; every group reads every message. Python's own ``sqlite3`` runs on one thread
per backend (no extra package), in WAL mode.

Guarantee by guarantee:

- G01 roundtrip: body, key and headers are stored as they are (headers as JSON).
- G02 isolation: every row carries its channel; reads filter on it.
- G03 fan-out: each group has its own positions and pending rows.
- G04 competing: shard *i* belongs to the (*i* mod *n*)-th live member under a lease row
  (the kit's `ShardCoordinator` over `SqliteLeaseStore`).
- G05 key order: one key, one shard; a shard is read by its lease holder only, handed over
  only after the deliveries taken from it are settled, and its new owner first delivers
  again what the previous one left pending, in order.
- G06 at-least-once, G07 retry, G13 absent groups: a read marks messages pending in the
  transaction that moves the group's position; only an ack deletes the pending row.
- G08-G11 (dead letters, idempotency, poison, validation) are the pipeline's; dead letters
  are messages of ``<channel>.dlq``. The default idempotency store is a table in the same
  file (`SqliteIdempotencyStore`), so every process of the group shares it.
- G12 crash: a killed process's leases expire after ``lease_ttl``; the next owner delivers
  its pending messages again with delivery count + 1.
- G14 old events: ``from_beginning`` starts a new group at the beginning of what is retained.
- G15 confirmed publish: ``publish`` returns after the transaction committed
  (``synchronous=full``: on disk).
- G16 reconnect: when the file is unavailable (a process holding its write lock crashed
  mid-transaction, a disk that went away), reads and acks retry and publishes wait
  ``busy_timeout``; nothing committed is lost. ``python -m eventwire_sqlite.outage PATH``
  crashes such a writer on purpose.
- G17 large: events up to ``max_message_bytes`` (16 MiB by default).
- G18 shutdown, G19 backpressure, G20 contract: the kit's shutdown contract; a read takes at
  most ``max_in_flight`` messages and the loop waits on the pipeline.

Retention: events older than ``retention`` (7 days by default) are deleted by publishers.
"""

from eventwire_sqlite._backend import SqliteBackend
from eventwire_sqlite._idempotency import SqliteIdempotencyStore
from eventwire_sqlite._info import BACKEND_INFO, CAPABILITIES, MAX_MESSAGE_BYTES
from eventwire_sqlite._leases import SqliteLeaseStore
from eventwire_sqlite._settings import SqliteSettings
from eventwire_sqlite._subscription import SqliteInbound, SqliteSubscription

__all__ = [
    "BACKEND_INFO",
    "CAPABILITIES",
    "MAX_MESSAGE_BYTES",
    "SqliteBackend",
    "SqliteIdempotencyStore",
    "SqliteInbound",
    "SqliteLeaseStore",
    "SqliteSettings",
    "SqliteSubscription",
]
