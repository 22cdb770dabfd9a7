"""`PostgresLeaseStore`: the backend kit's `LeaseStore` in two PostgreSQL tables, for a
backend that keeps its groups in PostgreSQL.

- ``<prefix>_members(channel, grp, member, expires)``: a heartbeat upserts the member (or
  deletes it when it leaves), deletes the group's expired members and returns the live ones.
- ``<prefix>_leases(channel, grp, shard, holder, expires, since)``: a row per shard once
  someone took it. A request without ``take`` only renews the member's live lease (an
  ``UPDATE``); a request with ``take`` is one guarded upsert that takes a free or expired
  lease, or renews the member's own, and ``since`` changes only when the lease changes hands,
  so ``since = now()`` says `Grant.ACQUIRED` (also for the member's own expired lease) rather
  than `Grant.RENEWED`. The upsert takes its rows in shard order, and no statement holds
  locks past its end: two members' heartbeats cannot deadlock.

Expiry is judged by the server's clock (``now()``), never the caller's. `create_tables`
creates both tables (idempotent, one creator at a time); `delete_channel` forgets a
channel's rows in both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from eventwire.backendkit import Grant, LeaseRequest

from eventwire_postgres._names import sql_name

if TYPE_CHECKING:
    import asyncpg

__all__ = ["PostgresLeaseStore"]

#: The longest table prefix: the table names stay well within PostgreSQL's identifiers.
_PREFIX_LONGEST = 41


def _tables(prefix: str) -> tuple[str, str]:
    """The members and leases tables of `prefix` (checked: it goes into SQL text)."""
    sql_name(prefix, "prefix", _PREFIX_LONGEST)
    return f"{prefix}_members", f"{prefix}_leases"


class PostgresLeaseStore:
    """Shard leases and live members of one (channel, group) in PostgreSQL (a
    `eventwire.backendkit.LeaseStore` for a `ShardCoordinator` or `ShardedSubscription`).

    ``pool``: an asyncpg pool (the backend's own). ``prefix``: the tables' name prefix;
    create them once with `create_tables` (e.g. in the backend's ``_connect``).
    """

    def __init__(
        self, pool: asyncpg.Pool, channel: str, group: str, *, prefix: str = "eventwire"
    ) -> None:
        self._pool = pool
        self._key = (channel, group)
        m, t = _tables(prefix)
        ttl = "now() + make_interval(secs => $4)"
        self._join_sql = f"""
            INSERT INTO {m} (channel, grp, member, expires) VALUES ($1, $2, $3, {ttl})
            ON CONFLICT (channel, grp, member) DO UPDATE SET expires = excluded.expires"""
        self._leave_sql = f"DELETE FROM {m} WHERE channel = $1 AND grp = $2 AND member = $3"
        self._live_sql = f"""
            WITH gone AS (DELETE FROM {m} WHERE channel = $1 AND grp = $2 AND expires <= now())
            SELECT member FROM {m} WHERE channel = $1 AND grp = $2 AND expires > now()
            ORDER BY member"""
        self._renew_sql = f"""
            UPDATE {t} SET expires = {ttl} WHERE channel = $1 AND grp = $2 AND holder = $3
                AND shard = ANY($5::int[]) AND expires > now()
            RETURNING shard"""
        self._take_sql = f"""
            INSERT INTO {t} (channel, grp, shard, holder, expires, since)
            SELECT $1, $2, s, $3, {ttl}, now() FROM unnest($5::int[]) AS s ORDER BY s
            ON CONFLICT (channel, grp, shard) DO UPDATE
                SET holder = excluded.holder, expires = excluded.expires,
                    since = CASE WHEN {t}.holder = excluded.holder AND {t}.expires > now()
                            THEN {t}.since ELSE now() END
                WHERE {t}.holder = excluded.holder OR {t}.expires <= now()
            RETURNING shard, since = now() AS acquired"""
        self._release_sql = (
            f"DELETE FROM {t} WHERE channel = $1 AND grp = $2 AND holder = $3 "
            "AND shard = ANY($4::int[])"
        )

    @staticmethod
    async def create_tables(pool: asyncpg.Pool, *, prefix: str = "eventwire") -> None:
        """Create the two tables if they do not exist (under an advisory lock: concurrent
        ``CREATE TABLE IF NOT EXISTS`` can collide)."""
        m, t = _tables(prefix)
        async with pool.acquire() as connection, connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock(hashtext($1))", t)
            await connection.execute(
                f"CREATE TABLE IF NOT EXISTS {m} (channel text, grp text, member text, "
                "expires timestamptz NOT NULL, PRIMARY KEY (channel, grp, member))"
            )
            await connection.execute(
                f"CREATE TABLE IF NOT EXISTS {t} (channel text, grp text, shard int, "
                "holder text NOT NULL, expires timestamptz NOT NULL, "
                "since timestamptz NOT NULL, PRIMARY KEY (channel, grp, shard))"
            )

    @staticmethod
    async def delete_channel(
        pool: asyncpg.Pool, channel: str, *, prefix: str = "eventwire"
    ) -> None:
        """Forget the members and leases of every group of `channel` (a backend's
        ``delete_channel``)."""
        async with pool.acquire() as connection, connection.transaction():
            for table in _tables(prefix):
                await connection.execute(f"DELETE FROM {table} WHERE channel = $1", channel)

    async def heartbeat(self, member: str, ttl: float, *, alive: bool) -> Sequence[str]:
        if alive:
            await self._pool.execute(self._join_sql, *self._key, member, float(ttl))
        else:
            await self._pool.execute(self._leave_sql, *self._key, member)
        rows = await self._pool.fetch(self._live_sql, *self._key)
        return [row[0] for row in rows]

    async def leases(
        self, member: str, ttl: float, requests: Sequence[LeaseRequest]
    ) -> Sequence[Grant]:
        grants: dict[int, Grant] = {}
        renew = [r.shard for r in requests if not r.take]
        take = [r.shard for r in requests if r.take]
        if renew:
            rows = await self._pool.fetch(self._renew_sql, *self._key, member, float(ttl), renew)
            grants.update((row[0], Grant.RENEWED) for row in rows)
        if take:
            rows = await self._pool.fetch(self._take_sql, *self._key, member, float(ttl), take)
            grants.update((row[0], Grant.ACQUIRED if row[1] else Grant.RENEWED) for row in rows)
        return [grants.get(r.shard, Grant.DENIED) for r in requests]

    async def release(self, member: str, shards: Sequence[int]) -> None:
        if shards:
            await self._pool.execute(self._release_sql, *self._key, member, list(shards))
