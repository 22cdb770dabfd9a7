"""`PostgresIdempotencyStore`: handled event ids in a PostgreSQL table, shared by every
process of a group, on any host.

One row per claimed id in ``eventwire_idempotency(key, token, done, expires)`` (the table is
created on first use):

- ``claim`` is one statement: ``INSERT ... ON CONFLICT (key) DO UPDATE ... WHERE expires <=
  clock_timestamp() RETURNING token``, plus a read of the row as it was. A new id, or one
  whose claim or done mark expired, is taken with a fresh token (``ACQUIRED``); otherwise
  the row says ``DONE`` or ``BUSY``. PostgreSQL makes the upsert atomic per key, so two
  processes never both acquire an id; one that cannot see the other's row yet says ``BUSY``
  and the pipeline asks again.
- ``complete`` marks the id done until ``ttl``; ``release`` deletes the row only while it
  still holds the token of this claim.

Expiry uses the server's clock, so members on hosts with skewed clocks agree. Expired rows
are deleted now and then by ``complete``. Connections come from an asyncpg pool (asyncpg:
the maintained asyncio driver, with prepared statements and a pool of its own).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote, urlsplit

from eventwire.backendkit import map_errors
from eventwire.errors import BackendUnavailableError, ConfigurationError
from eventwire.idempotency import Claim
from eventwire.urls import redact_url

from eventwire_postgres._names import sql_name

if TYPE_CHECKING:
    import asyncpg

__all__ = ["DEFAULT_TABLE", "PostgresIdempotencyStore"]

T = TypeVar("T")

DEFAULT_TABLE = "eventwire_idempotency"
#: Delete expired rows once per this many completions.
PURGE_EVERY = 1000


class PostgresIdempotencyStore:
    """An `eventwire.idempotency.IdempotencyStore` in PostgreSQL (atomic, with TTL, shared
    across processes and hosts).

    ``url``: ``postgresql://user:password@host:5432/database`` (any libpq URL asyncpg
    takes; prefer a password from the environment, ``PGPASSWORD``, to one in the URL).
    ``table``: the table's name. ``pool_size``: connections at most. Or, instead of a URL,
    ``pool``: an asyncpg pool of its own that the store borrows (a backend on PostgreSQL
    passes its pool: no second pool per bus); ``close`` then leaves it open.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        pool: asyncpg.Pool | None = None,
        table: str = DEFAULT_TABLE,
        pool_size: int = 4,
    ) -> None:
        if (url is None) == (pool is None):
            raise ConfigurationError(
                "PostgresIdempotencyStore takes a postgresql:// URL or an asyncpg pool, "
                "one of the two"
            )
        sql_name(table, "table")
        if pool_size < 1:
            raise ConfigurationError(f"pool_size must be >= 1, got {pool_size}")
        self._url = url or "a borrowed pool"
        self._borrowed = pool
        self.table = table
        self._pool_size = pool_size
        password = urlsplit(url).password if url else None
        self._secrets = tuple(s for s in (password, unquote(password or "")) if s)
        self._pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()
        self._claims: dict[str, str] = {}
        self._completed = 0
        t = table
        self._claim_sql = f"""
            WITH taken AS (
                INSERT INTO {t} (key, token, done, expires)
                VALUES ($1, $2, false, clock_timestamp() + make_interval(secs => $3))
                ON CONFLICT (key) DO UPDATE
                    SET token = excluded.token, done = false, expires = excluded.expires
                    WHERE {t}.expires <= clock_timestamp()
                RETURNING token)
            SELECT (SELECT token FROM taken), (SELECT done FROM {t} WHERE key = $1)"""
        self._complete_sql = f"""
            INSERT INTO {t} (key, token, done, expires)
            VALUES ($1, '', true, clock_timestamp() + make_interval(secs => $2))
            ON CONFLICT (key) DO UPDATE SET token = '', done = true, expires = excluded.expires"""
        self._release_sql = f"DELETE FROM {t} WHERE key = $1 AND token = $2 AND NOT done"
        self._purge_sql = f"DELETE FROM {t} WHERE expires <= clock_timestamp()"

    def __repr__(self) -> str:
        return f"<PostgresIdempotencyStore {redact_url(self._url)} table={self.table}>"

    async def _ready(self) -> asyncpg.Pool:
        if self._pool is not None:
            return self._pool
        async with self._lock:
            if self._pool is None:
                self._pool = await self._guarded(self._connect)
        return self._pool

    async def _connect(self) -> asyncpg.Pool:
        import asyncpg

        pool = self._borrowed
        if pool is None:
            pool = await asyncpg.create_pool(self._url, min_size=1, max_size=self._pool_size)
        try:
            async with pool.acquire() as connection, connection.transaction():
                # One creator at a time: concurrent CREATE TABLE IF NOT EXISTS can collide.
                await connection.execute("SELECT pg_advisory_xact_lock(hashtext($1))", self.table)
                await connection.execute(
                    f"CREATE TABLE IF NOT EXISTS {self.table} (key text PRIMARY KEY, "
                    "token text NOT NULL, done boolean NOT NULL, expires timestamptz NOT NULL)"
                )
        except BaseException:
            if self._borrowed is None:
                await pool.close()
            raise
        return pool

    async def _guarded(self, call: Callable[[], Awaitable[T]]) -> T:
        import asyncpg

        mapping: dict[type[BaseException], type[BackendUnavailableError]] = {
            asyncpg.PostgresError: BackendUnavailableError,
            asyncpg.InterfaceError: BackendUnavailableError,
            OSError: BackendUnavailableError,
        }
        with map_errors(f"idempotency store {self!r}", mapping, secrets=self._secrets):
            return await call()

    async def _fetchrow(self, sql: str, *args: Any) -> Any:
        pool = await self._ready()
        return await self._guarded(lambda: pool.fetchrow(sql, *args))

    async def _execute(self, sql: str, *args: Any) -> None:
        pool = await self._ready()
        await self._guarded(lambda: pool.execute(sql, *args))

    async def claim(self, key: str, lease: float) -> Claim:
        token = uuid.uuid4().hex
        taken, done = await self._fetchrow(self._claim_sql, key, token, float(lease))
        if taken == token:
            self._claims[key] = token
            return Claim.ACQUIRED
        return Claim.DONE if done else Claim.BUSY

    async def complete(self, key: str, ttl: float) -> None:
        await self._execute(self._complete_sql, key, float(ttl))
        self._claims.pop(key, None)
        self._completed += 1
        if self._completed % PURGE_EVERY == 0:
            await self._execute(self._purge_sql)

    async def release(self, key: str) -> None:
        token = self._claims.pop(key, None)
        if token is not None:
            await self._execute(self._release_sql, key, token)

    async def close(self) -> None:
        """Close the pool, unless it is borrowed (a later call connects again)."""
        pool, self._pool = self._pool, None
        if pool is not None and self._borrowed is None:
            await pool.close()
