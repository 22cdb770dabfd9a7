"""`eventwire_postgres.PostgresLeaseStore` on the real server: the `LeaseStore` promises one
by one, then two coordinators sharing a group's shards through it."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from eventwire.backendkit import Grant, LeaseRequest, ShardCoordinator
from eventwire.errors import ConfigurationError
from eventwire_postgres import PostgresLeaseStore

from tests.backendkit._lease_contract import check_lease_store
from tests.backends._base import wait_until

pytestmark = [pytest.mark.broker, pytest.mark.anyio]

POSTGRES = (
    os.environ.get("EVENTWIRE_POSTGRES_URL") or "postgresql://eventwire@127.0.0.1:5433/postgres"
)


Tables = tuple[asyncpg.Pool, str]


@pytest.fixture
async def tables() -> AsyncIterator[Tables]:
    """A pool, and the prefix of lease tables of this test's own."""
    prefix = f"leasetest_{uuid.uuid4().hex[:8]}"
    made = await asyncpg.create_pool(POSTGRES, min_size=1, max_size=4)
    await PostgresLeaseStore.create_tables(made, prefix=prefix)
    await PostgresLeaseStore.create_tables(made, prefix=prefix)  # a second time: no error
    try:
        yield made, prefix
    finally:
        await made.execute(f"DROP TABLE {prefix}_members, {prefix}_leases")
        await made.close()


def _store(tables: Tables, channel: str = "orders", group: str = "g") -> PostgresLeaseStore:
    return PostgresLeaseStore(tables[0], channel, group, prefix=tables[1])


async def test_the_lease_store_answers_as_the_shard_coordinator_expects(
    tables: Tables,
) -> None:
    store = _store(tables)
    await check_lease_store(store)
    # leases and members are per channel and group
    other = _store(tables, "payments")
    assert await other.leases("b", 5, [LeaseRequest(0, True)]) == [Grant.ACQUIRED]
    assert await other.heartbeat("c", 0.05, alive=True) == ["c"]
    await asyncio.sleep(0.2)
    assert await other.heartbeat("d", 5, alive=True) == ["d"]  # c expired
    assert await store.heartbeat("a", 5, alive=True) == ["a"]
    await PostgresLeaseStore.delete_channel(tables[0], "orders", prefix=tables[1])
    assert await store.heartbeat("e", 5, alive=True) == ["e"]  # a is forgotten
    assert await store.leases("e", 5, [LeaseRequest(0, True)]) == [Grant.ACQUIRED]  # free
    assert await other.heartbeat("d", 5, alive=True) == ["d"]  # another channel: kept


async def test_two_coordinators_share_the_shards_and_the_survivor_takes_them_all(
    tables: Tables,
) -> None:
    one = ShardCoordinator(_store(tables), "m1", 4, ttl=1.0, interval=0.05)
    two = ShardCoordinator(_store(tables), "m2", 4, ttl=1.0, interval=0.05)
    tasks = [asyncio.create_task(c.run()) for c in (one, two)]
    try:

        def owned(c: ShardCoordinator) -> list[int]:
            return [s.index for s in c.owned()]

        await wait_until(lambda: owned(one) == [0, 2] and owned(two) == [1, 3], "a fair split", 10)
        two.stop()
        await two.leave()
        await wait_until(lambda: owned(one) == [0, 1, 2, 3], "every shard on m1", 10)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def test_a_prefix_that_is_no_plain_sql_name_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="prefix must be a plain SQL name"):
        PostgresLeaseStore(None, "orders", "g", prefix="x; DROP TABLE y")
