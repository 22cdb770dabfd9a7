"""The database file: schema, and every statement the backend runs, on one thread.

Python's own `sqlite3` runs in a dedicated thread per backend (a one-worker executor): every
statement of one backend is serial, the event loop never blocks on the disk, and no extra
package is needed. Writes run in ``BEGIN IMMEDIATE`` transactions, so two processes never
both hold a read lock they would have to upgrade; a write waits ``busy_timeout`` for another
process's. The journal is WAL: readers never block the writer.

Tables (``seq`` is one increasing number for the whole file):

- ``channels(channel, shards)`` — a channel's shard count, fixed when it is first used;
- ``messages(seq, channel, shard, key, body, headers, created)`` — the retained log;
- ``groups(channel, grp, start)`` — a group reads what has ``seq > start`` (fixed when the
  group is first subscribed: the end of the log, or 0 with ``from_beginning``);
- ``cursors(channel, grp, shard, position)`` — the last ``seq`` handed out per shard;
- ``pending(channel, grp, shard, seq, deliveries)`` — handed out, not acked;
- ``members(channel, grp, member, expires)``, ``leases(channel, grp, shard, holder,
  expires)`` — who lives and who reads which shard (`eventwire_sqlite._leases`).

Member and lease rows change several times a second and need no durability: they go
through a second connection with ``synchronous=OFF`` (the setting is per connection).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import json
import sqlite3
import time
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any, TypeVar

from eventwire.backend import WireMessage

from eventwire_sqlite._settings import SqliteSettings

__all__ = ["Database", "Row", "transaction"]

T = TypeVar("T")

#: (shard, seq, deliveries, key, body, headers as JSON)
Row = tuple[int, int, int, str | None, bytes, str]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS channels (
    channel TEXT PRIMARY KEY, shards INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, channel TEXT NOT NULL, shard INTEGER NOT NULL,
    key TEXT, body BLOB NOT NULL, headers TEXT NOT NULL, created REAL NOT NULL);
CREATE INDEX IF NOT EXISTS messages_by_shard ON messages (channel, shard, seq);
CREATE INDEX IF NOT EXISTS messages_by_age ON messages (created);
CREATE TABLE IF NOT EXISTS groups (
    channel TEXT NOT NULL, grp TEXT NOT NULL, start INTEGER NOT NULL,
    PRIMARY KEY (channel, grp));
CREATE TABLE IF NOT EXISTS cursors (
    channel TEXT NOT NULL, grp TEXT NOT NULL, shard INTEGER NOT NULL,
    position INTEGER NOT NULL, PRIMARY KEY (channel, grp, shard));
CREATE TABLE IF NOT EXISTS pending (
    channel TEXT NOT NULL, grp TEXT NOT NULL, shard INTEGER NOT NULL, seq INTEGER NOT NULL,
    deliveries INTEGER NOT NULL, PRIMARY KEY (channel, grp, shard, seq));
CREATE TABLE IF NOT EXISTS members (
    channel TEXT NOT NULL, grp TEXT NOT NULL, member TEXT NOT NULL, expires REAL NOT NULL,
    PRIMARY KEY (channel, grp, member));
CREATE TABLE IF NOT EXISTS leases (
    channel TEXT NOT NULL, grp TEXT NOT NULL, shard INTEGER NOT NULL, holder TEXT NOT NULL,
    expires REAL NOT NULL, PRIMARY KEY (channel, grp, shard));
"""


def transaction(connection: sqlite3.Connection, work: Callable[[], T]) -> T:
    connection.execute("BEGIN IMMEDIATE")
    try:
        result = work()
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")
    return result


class Database:
    """One backend's connections to the file, used from one thread."""

    def __init__(self, settings: SqliteSettings) -> None:
        self.settings = settings
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._data: sqlite3.Connection | None = None
        self._meta: sqlite3.Connection | None = None

    @property
    def meta(self) -> sqlite3.Connection:
        """The connection for member and lease rows (``synchronous=OFF``)."""
        assert self._meta is not None
        return self._meta

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        """Run ``work(*args)`` on the database thread."""
        if self._executor is None:
            raise sqlite3.OperationalError("the database is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(work, *args))

    # -- opening and closing ---------------------------------------------------------------

    async def open(self) -> None:
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="eventwire-sqlite"
        )
        try:
            await self.run(self._open)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise

    def _connect(self, synchronous: str) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.settings.path, timeout=self.settings.busy_timeout, isolation_level=None
        )
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(f"PRAGMA synchronous={synchronous}")
        return connection

    def _open(self) -> None:
        parent = Path(self.settings.path).parent
        if not parent.is_dir():
            raise sqlite3.OperationalError(
                f"the folder {str(parent)!r} of the database file does not exist"
            )
        self._data = self._connect(self.settings.synchronous.upper())
        self._meta = self._connect("OFF")
        self._data.executescript(_SCHEMA)  # each statement is idempotent

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(executor, self._close)
        executor.shutdown(wait=False)

    def _close(self) -> None:
        for connection in (self._data, self._meta):
            if connection is not None:
                connection.close()
        self._data = self._meta = None

    def abandon(self) -> None:
        """Drop the connections as a crash would: queued work may still run, then they close."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.submit(self._close)
            executor.shutdown(wait=False)

    # -- channels and messages -------------------------------------------------------------

    def channel_shards(self, channel: str) -> int:
        """The channel's shard count, creating the channel with ``settings.shards`` if new."""
        assert self._data is not None
        conn = self._data

        def work() -> int:
            conn.execute(
                "INSERT OR IGNORE INTO channels (channel, shards) VALUES (?, ?)",
                (channel, self.settings.shards),
            )
            (shards,) = conn.execute(
                "SELECT shards FROM channels WHERE channel = ?", (channel,)
            ).fetchone()
            return int(shards)

        return transaction(conn, work)

    def append(self, batches: Sequence[tuple[str, Sequence[tuple[int, WireMessage]]]]) -> None:
        """Store every batch of (shard, message) rows of every channel in one transaction:
        all or nothing (one commit for several concurrent publishes)."""
        assert self._data is not None
        conn = self._data
        now = time.time()
        values = [
            (channel, shard, m.key, bytes(m.body), json.dumps(dict(m.headers)), now)
            for channel, rows in batches
            for shard, m in rows
        ]
        transaction(
            conn,
            lambda: conn.executemany(
                "INSERT INTO messages (channel, shard, key, body, headers, created) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                values,
            ),
        )

    def trim(self, before: float) -> int:
        """Delete the messages created before `before` (retention); how many went."""
        assert self._data is not None
        conn = self._data
        return transaction(
            conn, lambda: conn.execute("DELETE FROM messages WHERE created < ?", (before,)).rowcount
        )

    def browse(self, channel: str, limit: int) -> list[WireMessage]:
        assert self._data is not None
        rows = self._data.execute(
            "SELECT key, body, headers FROM messages WHERE channel = ? ORDER BY seq LIMIT ?",
            (channel, limit),
        ).fetchall()
        return [WireMessage(bytes(body), json.loads(headers), key) for key, body, headers in rows]

    def delete_channel(self, channel: str) -> bool:
        """Forget `channel`: its messages, groups, positions, pending entries and leases."""
        assert self._data is not None
        conn = self._data

        def work() -> bool:
            found = conn.execute("DELETE FROM channels WHERE channel = ?", (channel,)).rowcount
            for table in ("messages", "groups", "cursors", "pending", "members", "leases"):
                found += conn.execute(
                    f"DELETE FROM {table} WHERE channel = ?",
                    (channel,),
                ).rowcount
            return found > 0

        return transaction(conn, work)

    def purge_channel(self, channel: str) -> int:
        """Delete the messages of `channel` and the pending entries pointing at them; groups
        keep their positions (new messages get higher sequence numbers). Returns the count."""
        assert self._data is not None
        conn = self._data

        def work() -> int:
            conn.execute("DELETE FROM pending WHERE channel = ?", (channel,))
            return int(conn.execute("DELETE FROM messages WHERE channel = ?", (channel,)).rowcount)

        return transaction(conn, work)

    # -- groups ----------------------------------------------------------------------------

    def join(self, channel: str, group: str, from_beginning: bool) -> None:
        """Create the group if new, fixing where it starts: the log's end, or its beginning."""
        assert self._data is not None
        conn = self._data
        start = "0" if from_beginning else "(SELECT COALESCE(MAX(seq), 0) FROM messages)"
        transaction(
            conn,
            lambda: conn.execute(
                f"INSERT OR IGNORE INTO groups (channel, grp, start) VALUES (?, ?, {start})",
                (channel, group),
            ),
        )

    def lag(self, channel: str, group: str) -> int | None:
        """Messages of `channel` that `group` has not acked: those past its position on each
        shard, plus its pending ones; ``None`` if the group never joined."""
        assert self._data is not None
        found = self._data.execute(
            "SELECT start FROM groups WHERE channel = ? AND grp = ?", (channel, group)
        ).fetchone()
        if found is None:
            return None
        (count,) = self._data.execute(
            "SELECT (SELECT COUNT(*) FROM messages m WHERE m.channel = ?1 AND m.seq > "
            "  COALESCE((SELECT position FROM cursors c WHERE c.channel = ?1 AND c.grp = ?2 "
            "            AND c.shard = m.shard), ?3)) "
            "+ (SELECT COUNT(*) FROM pending p WHERE p.channel = ?1 AND p.grp = ?2)",
            (channel, group, found[0]),
        ).fetchone()
        return int(count)

    def read(self, channel: str, group: str, shards: Sequence[int], limit: int) -> list[Row]:
        """Hand out up to `limit` new messages of `shards`, at most ``limit // len(shards)``
        (and at least one) per shard, in the order given: they become pending and the
        shards' positions move past them, in one transaction."""
        assert self._data is not None
        conn = self._data
        each = max(1, limit // len(shards))

        def work() -> list[Row]:
            (start,) = conn.execute(
                "SELECT start FROM groups WHERE channel = ? AND grp = ?", (channel, group)
            ).fetchone()
            rows: list[Row] = []
            for shard in shards:
                if len(rows) >= limit:
                    break
                found = conn.execute(
                    "SELECT position FROM cursors WHERE channel = ? AND grp = ? AND shard = ?",
                    (channel, group, shard),
                ).fetchone()
                position = found[0] if found else start
                got = conn.execute(
                    "SELECT seq, key, body, headers FROM messages WHERE channel = ? AND "
                    "shard = ? AND seq > ? ORDER BY seq LIMIT ?",
                    (channel, shard, position, min(each, limit - len(rows))),
                ).fetchall()
                if not got:
                    continue
                conn.executemany(
                    "INSERT OR IGNORE INTO pending (channel, grp, shard, seq, deliveries) "
                    "VALUES (?, ?, ?, ?, 1)",
                    [(channel, group, shard, seq) for seq, *_ in got],
                )
                conn.execute(
                    "INSERT INTO cursors (channel, grp, shard, position) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (channel, grp, shard) DO UPDATE SET position = excluded.position",
                    (channel, group, shard, got[-1][0]),
                )
                rows.extend((shard, seq, 1, key, body, headers) for seq, key, body, headers in got)
            return rows

        return transaction(conn, work)

    def recover(
        self, channel: str, group: str, shard: int, skip: Collection[int] = ()
    ) -> tuple[list[Row], int]:
        """Hand out again every pending message of `shard` (delivery count + 1), in order,
        but those of `skip` (the member's own, still in flight); also how many pending
        entries were dropped because retention deleted the message."""
        assert self._data is not None
        conn = self._data

        def work() -> tuple[list[Row], int]:
            lost = conn.execute(
                "DELETE FROM pending WHERE channel = ? AND grp = ? AND shard = ? AND seq NOT IN "
                "(SELECT seq FROM messages WHERE channel = ? AND shard = ?)",
                (channel, group, shard, channel, shard),
            ).rowcount
            conn.execute(
                "UPDATE pending SET deliveries = deliveries + 1 "
                "WHERE channel = ? AND grp = ? AND shard = ?",
                (channel, group, shard),
            )
            conn.executemany(  # not delivered again: keep their count
                "UPDATE pending SET deliveries = deliveries - 1 "
                "WHERE channel = ? AND grp = ? AND shard = ? AND seq = ?",
                [(channel, group, shard, seq) for seq in skip],
            )
            got = conn.execute(
                "SELECT p.seq, p.deliveries, m.key, m.body, m.headers FROM pending p "
                "JOIN messages m ON m.seq = p.seq "
                "WHERE p.channel = ? AND p.grp = ? AND p.shard = ? ORDER BY p.seq",
                (channel, group, shard),
            ).fetchall()
            rows = [
                (shard, seq, n, key, body, headers)
                for seq, n, key, body, headers in got
                if seq not in skip
            ]
            return rows, lost

        return transaction(conn, work)

    def ack(self, channel: str, group: str, entries: Sequence[tuple[int, int]]) -> None:
        """Settle `entries` (shard, seq): they are not handed out to this group again."""
        assert self._data is not None
        conn = self._data
        transaction(
            conn,
            lambda: conn.executemany(
                "DELETE FROM pending WHERE channel = ? AND grp = ? AND shard = ? AND seq = ?",
                [(channel, group, shard, seq) for shard, seq in entries],
            ),
        )

    def give_back(self, channel: str, group: str, entries: Sequence[tuple[int, int]]) -> None:
        """`entries` (shard, seq) were handed out but never reached a handler: take back
        their last delivery, so the next delivery counts as the one it really is."""
        assert self._data is not None
        conn = self._data
        transaction(
            conn,
            lambda: conn.executemany(
                "UPDATE pending SET deliveries = deliveries - 1 WHERE channel = ? AND grp = ? "
                "AND shard = ? AND seq = ? AND deliveries > 0",
                [(channel, group, shard, seq) for shard, seq in entries],
            ),
        )
