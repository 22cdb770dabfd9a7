"""A PostgreSQL idempotency store: ``EventBus(url, idempotency_store="postgresql://...")``.

For backends whose broker cannot hold one (Kafka, RabbitMQ) and for services that already run
PostgreSQL: every member process of a group claims event ids in one table, so a duplicate
that reaches another member does not run the effect again. Needs ``eventwire[postgres]``
(asyncpg). See `PostgresIdempotencyStore`.

For a backend that keeps its groups in PostgreSQL, `PostgresLeaseStore` is the backend kit's
`LeaseStore` in two tables (the shard leases its `ShardCoordinator` runs on).
"""

from eventwire_postgres._leases import PostgresLeaseStore
from eventwire_postgres._store import DEFAULT_TABLE, PostgresIdempotencyStore

__all__ = ["DEFAULT_TABLE", "PostgresIdempotencyStore", "PostgresLeaseStore"]
