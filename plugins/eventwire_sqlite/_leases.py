"""Members and shard leases as rows of the database file: the kit's lease store for SQLite."""

from __future__ import annotations

import time
from collections.abc import Sequence

from eventwire.backendkit import Grant, LeaseRequest

from eventwire_sqlite._db import Database, transaction

__all__ = ["SqliteLeaseStore"]


class SqliteLeaseStore:
    """The kit's `eventwire.backendkit.LeaseStore` as rows of the database file.

    Expiry is judged by the wall clock of the process writing the row: the processes
    sharing a file share a host, hence a clock.
    """

    def __init__(self, database: Database, channel: str, group: str) -> None:
        self._db = database
        self._key = (channel, group)

    async def heartbeat(self, member: str, ttl: float, *, alive: bool) -> Sequence[str]:
        return await self._db.run(self._heartbeat, member, ttl, alive)

    async def leases(
        self, member: str, ttl: float, requests: Sequence[LeaseRequest]
    ) -> Sequence[Grant]:
        return await self._db.run(self._leases, member, ttl, requests)

    async def release(self, member: str, shards: Sequence[int]) -> None:
        await self._db.run(self._release, member, shards)

    def _heartbeat(self, member: str, ttl: float, alive: bool) -> list[str]:
        conn = self._db.meta

        def work() -> list[str]:
            now = time.time()
            key = self._key
            if alive:
                conn.execute(
                    "INSERT INTO members (channel, grp, member, expires) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (channel, grp, member) DO UPDATE SET expires = excluded.expires",
                    (*key, member, now + ttl),
                )
            else:
                conn.execute(
                    "DELETE FROM members WHERE channel = ? AND grp = ? AND member = ?",
                    (*key, member),
                )
            conn.execute(
                "DELETE FROM members WHERE channel = ? AND grp = ? AND expires <= ?", (*key, now)
            )
            rows = conn.execute(
                "SELECT member FROM members WHERE channel = ? AND grp = ?", key
            ).fetchall()
            return [name for (name,) in rows]

        return transaction(conn, work)

    def _leases(self, member: str, ttl: float, requests: Sequence[LeaseRequest]) -> list[Grant]:
        conn = self._db.meta

        def work() -> list[Grant]:
            now = time.time()
            grants: list[Grant] = []
            for request in requests:
                key = (*self._key, request.shard)
                found = conn.execute(
                    "SELECT holder, expires FROM leases WHERE channel = ? AND grp = ? "
                    "AND shard = ?",
                    key,
                ).fetchone()
                live = found is not None and found[1] > now
                if live and found[0] == member:
                    grant = Grant.RENEWED
                elif not live and request.take:
                    grant = Grant.ACQUIRED
                else:
                    grants.append(Grant.DENIED)
                    continue
                conn.execute(
                    "INSERT INTO leases (channel, grp, shard, holder, expires) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (channel, grp, shard) DO UPDATE SET "
                    "holder = excluded.holder, expires = excluded.expires",
                    (*key, member, now + ttl),
                )
                grants.append(grant)
            return grants

        return transaction(conn, work)

    def _release(self, member: str, shards: Sequence[int]) -> None:
        conn = self._db.meta
        transaction(
            conn,
            lambda: conn.executemany(
                "DELETE FROM leases WHERE channel = ? AND grp = ? AND shard = ? AND holder = ?",
                [(*self._key, shard, member) for shard in shards],
            ),
        )
