"""Connecting to Redis (FastStream's broker, or redis-py's Sentinel client), the server
version check, and which errors mean "the server is not reachable right now"."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from eventwire import backendkit
from eventwire.backendkit import connect_failure, quietly
from eventwire.errors import BackendUnavailableError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from eventwire_redis._settings import RedisConnection

if TYPE_CHECKING:
    from faststream.redis import RedisBroker
    from redis.asyncio import Redis

__all__ = ["MIN_SERVER", "RETRYABLE", "connect_client", "retrying"]

T = TypeVar("T")

#: Oldest server with everything the backend uses (XAUTOCLAIM returning deleted ids,
#: XGROUP CREATE ... ENTRIESREAD, the lag field of XINFO GROUPS).
MIN_SERVER = (7, 0)


def _options(settings: RedisConnection) -> dict[str, Any]:
    """The redis-py connection options both ways of connecting pass on."""
    return {
        "db": settings.db,
        "socket_connect_timeout": settings.connect_timeout,
        "socket_timeout": settings.socket_timeout,
        "socket_keepalive": True,
        "username": settings.username or None,
        "password": settings.password or None,
        "client_name": settings.client_name or None,
    }


def make_broker(settings: RedisConnection) -> RedisBroker:
    """A FastStream `RedisBroker` holding the connection settings (nothing else of it runs).

    Credentials go in as keyword arguments, never in its URL, so FastStream's own
    description of the server (e.g. an AsyncAPI document) carries none.
    """
    from faststream.redis import RedisBroker
    from faststream.security import BaseSecurity

    tls = BaseSecurity(ssl_context=settings.tls_context(), use_ssl=True) if settings.tls else None
    # RESP2 (``protocol=2``): the reply shapes the backend parses are the classic ones,
    # whatever redis-py's default protocol is.
    return RedisBroker(
        backendkit.server_url("redis", [(settings.host, settings.port)], f"/{settings.db}")
        + "?protocol=2",
        host=settings.host,
        port=settings.port,
        retry_on_error=[],
        specification_url=settings.url,
        protocol=settings.scheme,
        security=tls,
        **_options(settings),
    )


def sentinel_client(settings: RedisConnection) -> Redis:
    """A redis-py client of the master the sentinels of `settings` name: its connections
    ask the sentinels for the master, again after a failover (redis-py's Sentinel)."""
    from redis.asyncio import Redis
    from redis.asyncio.sentinel import Sentinel

    options = _options(settings)
    timeouts = {name: options[name] for name in ("socket_connect_timeout", "socket_timeout")}
    sentinel = Sentinel(list(settings.sentinels), sentinel_kwargs=timeouts, protocol=2, **options)  # type: ignore[no-untyped-call]
    client: Redis = sentinel.master_for(settings.service, redis_class=Redis)
    return client


async def connect_client(
    settings: RedisConnection, what: str = "", minimum: tuple[int, int] = MIN_SERVER
) -> tuple[RedisBroker | None, Redis]:
    """A connected FastStream broker and its redis-py client (through Sentinel: the client
    alone), checked with ``INFO server`` (within ``connect_timeout``) to run Redis `minimum`
    or newer; else `BackendUnavailableError` saying why, prefixed with `what`."""
    broker = None if settings.sentinels else make_broker(settings)
    client: Redis | None = None
    try:
        client = sentinel_client(settings) if broker is None else await broker.connect()
        async with asyncio.timeout(settings.connect_timeout + 1):
            info = await client.info("server")
    except Exception as exc:  # also e.g. an unreadable TLS certificate file
        if client is not None:
            await quietly(client.aclose(), "redis disconnect")
        who = f"user {settings.username!r}" if settings.username else "the default user"
        numbered = (
            f"has no database {settings.db}; databases are numbered from 0 to the server's "
            "'databases' setting minus one (16 by default)"
        )
        timed_out = "Timeout" in type(exc).__name__ or isinstance(exc, TimeoutError)
        error = connect_failure(
            TimeoutError() if timed_out else exc,
            f"redis at {settings.url}",
            settings,
            cause=exc if timed_out else None,
            login=("wrongpass", "noauth", "authenticationerror", "auth"),
            login_advice=f"check the password of {who} in the URL or the username/password options",
            refusals={"DB index is out of range": numbered, "invalid DB index": numbered},
        )
        raise BackendUnavailableError(f"{what}{error}") from exc
    version = tuple(int(p) for p in str(info.get("redis_version", "0.0")).split(".")[:2])
    if version < minimum:
        await quietly(client.aclose(), "redis disconnect")
        raise BackendUnavailableError(
            f"{what}redis at {settings.url} runs {info.get('redis_version')}; eventwire needs "
            f"Redis {'.'.join(map(str, minimum))} or newer (XAUTOCLAIM, consumer group lag)"
        )
    return broker, client


#: Errors that mean "the server is not reachable right now": retried, never fatal.
RETRYABLE: tuple[type[Exception], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    OSError,  # TimeoutError and ConnectionError too
)


async def retrying(
    call: Callable[[], Awaitable[T]], what: str, settings: RedisConnection | None
) -> T:
    """Run `call`, retrying while the server is unreachable; after the `settings`'
    ``reconnect_timeout`` (30 s without settings) the last error is raised (the caller maps
    it with ``map_errors``)."""
    limit = settings.reconnect_timeout if settings is not None else 30.0
    scrub = settings.scrub if settings is not None else str
    return await backendkit.retrying(call, f"redis {what}", limit, RETRYABLE, scrub)
