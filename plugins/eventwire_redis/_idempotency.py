"""`RedisIdempotencyStore`: handled event ids in Redis, shared by every process of a group.

Works with any backend: ``EventBus("kafka://...", idempotency_store=RedisIdempotencyStore(
"redis://cache:6379/0"))``. One key per claimed id, ``<prefix><group>:<event id>``:

- ``claim`` runs one Lua script: no key -> ``SET key busy:<token> PX lease`` and
  ``ACQUIRED`` (a fresh token per claim; a retried claim that finds its own token is
  ``ACQUIRED`` too); ``done`` -> ``DONE``; otherwise ``BUSY`` (another process or task is
  handling the same id right now). Atomic on the server, so two processes racing on one id
  never both acquire it; a crashed holder's claim expires after ``lease``.
- ``complete`` sets ``done`` with the TTL (the effect ran; remembered for ``ttl``).
- ``release`` deletes the key only while it still holds the token of *this* claim, so a
  release after the lease expired never frees somebody else's claim.
- ``claim_many`` and ``complete_many`` (`eventwire.idempotency.BatchIdempotencyStore`; a
  single ``claim`` or ``complete`` is one of a single key) send the script calls and ``SET``
  commands in one pipeline; a retried pipeline carries the same tokens, so a claim it
  already made is ``ACQUIRED``.

Commands are retried while the server is unreachable (up to ``reconnect_timeout``).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from eventwire.backendkit import map_errors
from eventwire.errors import BackendUnavailableError, ConfigurationError
from eventwire.idempotency import Claim

from eventwire_redis._settings import RedisConnection

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

__all__ = ["DEFAULT_PREFIX", "RedisIdempotencyStore"]

DEFAULT_PREFIX = "eventwire:idempotency:"

#: KEYS[1] = id key; ARGV[1] = claim value, ARGV[2] = lease ms.
_CLAIM = """
local value = redis.call('GET', KEYS[1])
if not value then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 'acquired'
end
if value == ARGV[1] then return 'acquired' end
if value == 'done' then return 'done' end
return 'busy'
"""

#: KEYS[1] = id key; ARGV[1] = our claim value. Deletes our claim only.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

_ANSWERS = {b"acquired": Claim.ACQUIRED, b"done": Claim.DONE, b"busy": Claim.BUSY}


class RedisIdempotencyStore:
    """An `eventwire.idempotency.IdempotencyStore` in Redis (atomic, with TTL, shared
    across processes).

    ``url_or_client``: a ``redis://`` / ``rediss://`` URL (with the redis backend's
    connection options as keyword arguments: ``password``, ``db``, ``connect_timeout``,
    ``ca_file`` ...), parsed `RedisConnection` settings, or a connected
    ``redis.asyncio.Redis`` client (which the store does not close). ``prefix`` namespaces the keys.
    """

    def __init__(
        self,
        url_or_client: str | Redis | RedisConnection,
        *,
        prefix: str = DEFAULT_PREFIX,
        **options: Any,
    ) -> None:
        if not isinstance(prefix, str):
            raise ConfigurationError(f"prefix must be a string, got {prefix!r}")
        self.prefix = prefix
        #: Our claims in progress: key -> token.
        self._claims: dict[str, str] = {}
        self._settings: RedisConnection | None = None
        self._client: Redis | None = None
        if isinstance(url_or_client, str):
            self._settings = RedisConnection.parse(url_or_client, options)
        elif options:
            raise ConfigurationError(
                "connection options are only taken with a URL; configure the client "
                f"instead (got {', '.join(sorted(options))})"
            )
        elif isinstance(url_or_client, RedisConnection):
            self._settings = url_or_client
        else:
            self._client = url_or_client
        self._scripts: tuple[AsyncScript, AsyncScript] | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        where = self._settings.url if self._settings is not None else "a redis client"
        return f"<RedisIdempotencyStore {where} prefix={self.prefix!r}>"

    async def _ready(self) -> tuple[Redis, AsyncScript, AsyncScript]:
        async with self._lock:
            if self._client is None:
                from eventwire_redis._connection import connect_client

                assert self._settings is not None
                _, client = await connect_client(self._settings, "idempotency store: ", (0, 0))
                self._client = client
            if self._scripts is None:
                register = self._client.register_script
                self._scripts = (register(_CLAIM), register(_RELEASE))
        return self._client, *self._scripts

    async def _retrying(self, call: Callable[[], Awaitable[Any]]) -> Any:
        from redis.exceptions import RedisError

        from eventwire_redis._connection import retrying

        secrets = self._settings.secrets() if self._settings is not None else ()
        mapping = {RedisError: BackendUnavailableError, OSError: BackendUnavailableError}
        with map_errors(f"idempotency store {self!r}", mapping, secrets=secrets):
            return await retrying(call, "idempotency store", self._settings)

    async def claim(self, key: str, lease: float) -> Claim:
        return (await self.claim_many([key], lease))[0]

    async def complete(self, key: str, ttl: float) -> None:
        await self.complete_many([key], ttl)

    async def claim_many(self, keys: Sequence[str], lease: float) -> list[Claim]:
        client, claim, _ = await self._ready()
        tokens = [f"busy:{uuid.uuid4().hex}" for _ in keys]
        lease_ms = max(1, int(lease * 1000))

        async def send() -> list[Any]:
            pipe = client.pipeline(transaction=False)
            for key, token in zip(keys, tokens, strict=True):
                await claim(keys=[self.prefix + key], args=[token, lease_ms], client=pipe)
            return await pipe.execute()

        states = []
        for key, token, answer in zip(keys, tokens, await self._retrying(send), strict=True):
            state = _ANSWERS[answer if isinstance(answer, bytes) else str(answer).encode()]
            if state is Claim.ACQUIRED:
                self._claims[key] = token
            states.append(state)
        return states

    async def complete_many(self, keys: Sequence[str], ttl: float) -> None:
        client, _, _ = await self._ready()
        ttl_ms = max(1, int(ttl * 1000))

        async def send() -> None:
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.set(self.prefix + key, b"done", px=ttl_ms)
            await pipe.execute()

        await self._retrying(send)
        for key in keys:
            self._claims.pop(key, None)

    async def release(self, key: str) -> None:
        _, _, release = await self._ready()
        token = self._claims.pop(key, None)
        if token is not None:
            name = self.prefix + key
            await self._retrying(lambda: release(keys=[name], args=[token]))

    async def close(self) -> None:
        """Disconnect (only a client the store connected itself)."""
        client, self._client, self._scripts = self._client, None, None
        if client is not None and self._settings is not None:  # connected by `_ready`
            await client.aclose()
