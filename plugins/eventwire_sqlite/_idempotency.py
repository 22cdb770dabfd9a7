"""`SqliteIdempotencyStore`: handled event ids in an SQLite file, shared by every process on
the host that opens the same file.

``EventBus("sqlite:///var/lib/app/events.db")`` uses it by default (in the backend's own
file); any backend can use one: ``EventBus("amqp://...", idempotency_store=
"sqlite:///var/lib/app/ids.db")``. One row per claimed id in ``eventwire_idempotency(key,
token, done, expires)``:

- ``claim`` is one ``INSERT ... ON CONFLICT DO UPDATE ... WHERE expires <= now RETURNING``
  in a ``BEGIN IMMEDIATE`` transaction: a new id, or one whose claim or done mark expired,
  is taken with a fresh token (``ACQUIRED``); otherwise the row says ``DONE`` or ``BUSY``.
  SQLite runs one writer at a time per file, so two processes never both acquire an id.
- ``complete`` marks the id done until ``ttl``; ``release`` deletes the row only while it
  still holds the token of this claim (a release after the lease expired never frees
  somebody else's claim).

Python's own `sqlite3` runs on one thread per store (as the backend does): no extra package.
WAL with ``synchronous=NORMAL``: a crashed process loses nothing, a power loss may lose the
last done marks (those events would then run once more).
Expiry uses the wall clock of the host, which every process on it shares. Expired rows are
deleted now and then by ``complete``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import sqlite3
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

from eventwire.errors import BackendUnavailableError
from eventwire.idempotency import Claim

from eventwire_sqlite._settings import SqliteSettings

__all__ = ["SqliteIdempotencyStore"]

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS eventwire_idempotency (
    key TEXT PRIMARY KEY, token TEXT NOT NULL, done INTEGER NOT NULL, expires REAL NOT NULL)
"""
_CLAIM = """
INSERT INTO eventwire_idempotency (key, token, done, expires) VALUES (?, ?, 0, ?)
ON CONFLICT (key) DO UPDATE SET token = excluded.token, done = 0, expires = excluded.expires
WHERE eventwire_idempotency.expires <= ?
RETURNING token
"""
_COMPLETE = """
INSERT INTO eventwire_idempotency (key, token, done, expires) VALUES (?, '', 1, ?)
ON CONFLICT (key) DO UPDATE SET token = '', done = 1, expires = excluded.expires
"""
#: Delete expired rows once per this many completions.
PURGE_EVERY = 1000


class SqliteIdempotencyStore:
    """An `eventwire.idempotency.IdempotencyStore` in an SQLite file (atomic, with TTL,
    shared by the processes of one host).

    ``url``: ``sqlite:///absolute/path.db`` or ``sqlite://relative/path.db`` (the sqlite
    backend's URL; its ``busy_timeout`` option applies), or the settings of a backend.
    """

    def __init__(self, url: str | SqliteSettings) -> None:
        self.settings = SqliteSettings.parse(url, {}) if isinstance(url, str) else url
        self._claims: dict[str, str] = {}
        self._connection: sqlite3.Connection | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._completed = 0

    def __repr__(self) -> str:
        return f"<SqliteIdempotencyStore {self.settings.path!r}>"

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(1, "eventwire-sqlite-ids")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(self._call, work))

    def _call(self, work: Callable[[sqlite3.Connection], T]) -> T:
        try:
            if self._connection is None:
                self._connection = self._open()
            connection = self._connection
            connection.execute("BEGIN IMMEDIATE")
            try:
                result = work(connection)
            except BaseException:
                connection.rollback()
                raise
            connection.commit()
            return result
        except sqlite3.Error as exc:
            raise BackendUnavailableError(f"idempotency store {self!r}: {exc}") from exc

    def _open(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.settings.path,
            timeout=self.settings.busy_timeout,
            isolation_level=None,
            check_same_thread=False,
        )
        connection.execute("PRAGMA journal_mode=WAL")
        # A crash of the process loses nothing; a power loss may lose the last done marks
        # (those events would run once more), which saves a disk flush per claim.
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute(_SCHEMA)
        return connection

    async def claim(self, key: str, lease: float) -> Claim:
        token = uuid.uuid4().hex

        def work(db: sqlite3.Connection) -> Claim:
            now = time.time()
            row = db.execute(_CLAIM, (key, token, now + lease, now)).fetchone()
            if row is not None and row[0] == token:
                return Claim.ACQUIRED
            (done,) = db.execute(
                "SELECT done FROM eventwire_idempotency WHERE key = ?", (key,)
            ).fetchone()
            return Claim.DONE if done else Claim.BUSY

        state = await self._run(work)
        if state is Claim.ACQUIRED:
            self._claims[key] = token
        return state

    async def complete(self, key: str, ttl: float) -> None:
        self._completed += 1
        purge = self._completed % PURGE_EVERY == 0

        def work(db: sqlite3.Connection) -> None:
            now = time.time()
            db.execute(_COMPLETE, (key, now + ttl))
            if purge:
                db.execute("DELETE FROM eventwire_idempotency WHERE expires <= ?", (now,))

        await self._run(work)
        self._claims.pop(key, None)

    async def release(self, key: str) -> None:
        token = self._claims.pop(key, None)
        if token is None:
            return
        await self._run(
            lambda db: db.execute(
                "DELETE FROM eventwire_idempotency WHERE key = ? AND token = ? AND done = 0",
                (key, token),
            )
        )

    async def close(self) -> None:
        """Close the file (a later call opens it again)."""
        executor, self._executor = self._executor, None
        if executor is None:
            return

        def shut() -> None:
            connection, self._connection = self._connection, None
            if connection is not None:
                connection.close()

        await asyncio.get_running_loop().run_in_executor(executor, shut)
        executor.shutdown(wait=False)
