"""`RedisBackend`: the `eventwire.backend.Backend` protocol over Redis Streams."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from eventwire._naming import check_name
from eventwire.backend import Capabilities, MessageHandler, SubscriptionSpec, WireMessage
from eventwire.deadletter import DLQ_SUFFIX
from eventwire.errors import (
    BackendUnavailableError,
    BusClosedError,
    ConfigurationError,
    MessageTooLargeError,
    PublishError,
)
from redis.exceptions import AuthenticationError, ResponseError

from eventwire_redis._consumer import RETRYABLE, Outage, RedisSubscription, Scripts, finish
from eventwire_redis._info import CAPABILITIES
from eventwire_redis._options import RedisSettings, parse_settings
from eventwire_redis._topology import (
    ChannelKeys,
    encode_entry,
    entry_size,
    pack_command,
    shard_of,
)

if TYPE_CHECKING:
    from faststream.redis import RedisBroker
    from redis.asyncio import Redis

__all__ = ["RedisBackend", "make_broker"]

log = logging.getLogger("eventwire.redis")

T = TypeVar("T")
#: XADDs per pipeline round trip in `RedisBackend.publish`.
PIPELINE_CHUNK = 1000
#: Oldest server with everything the backend uses (XAUTOCLAIM returning deleted ids,
#: XGROUP CREATE ... ENTRIESREAD, the lag field of XINFO GROUPS).
MIN_SERVER = (7, 0)


def make_broker(settings: RedisSettings) -> RedisBroker:
    """A FastStream `RedisBroker` holding the connection settings (nothing else of it runs).

    Credentials go in as keyword arguments, never in its URL, so FastStream's own
    description of the server (e.g. an AsyncAPI document) carries none.
    """
    from faststream.redis import RedisBroker
    from faststream.security import BaseSecurity

    kwargs: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "db": settings.db,
        "socket_connect_timeout": settings.connect_timeout,
        "socket_timeout": settings.socket_timeout,
        "socket_keepalive": True,
        "retry_on_error": [],
        "specification_url": settings.url,
        "protocol": settings.scheme,
    }
    if settings.username:
        kwargs["username"] = settings.username
    if settings.password:
        kwargs["password"] = settings.password
    if settings.client_name:
        kwargs["client_name"] = settings.client_name
    if settings.tls:
        kwargs["security"] = BaseSecurity(ssl_context=settings.ssl_context(), use_ssl=True)
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    # RESP2 (``protocol=2``): the reply shapes the backend parses are the classic ones,
    # whatever redis-py's default protocol is.
    return RedisBroker(f"redis://{host}:{settings.port}/{settings.db}?protocol=2", **kwargs)


def describe_connect_error(settings: RedisSettings, exc: BaseException) -> str:
    """A clear, credential-free account of why connecting failed, and what to do."""
    url = settings.url
    text = settings.scrub(str(exc)) or type(exc).__name__
    if (
        isinstance(exc, AuthenticationError)
        or "WRONGPASS" in text
        or "NOAUTH" in text
        or ("AUTH" in text and "password" in text)
    ):
        who = f"user {settings.username!r}" if settings.username else "the default user"
        return (
            f"redis at {url} refused the credentials of {who} ({text}); check the user and "
            "password in the URL or the username/password options"
        )
    if "DB index is out of range" in text or "invalid DB index" in text:
        return (
            f"redis at {url} has no database {settings.db} ({text}); databases are numbered "
            "from 0 to the server's 'databases' setting minus one (16 by default)"
        )
    if isinstance(exc, TimeoutError | asyncio.TimeoutError) or "Timeout" in type(exc).__name__:
        return (
            f"redis at {url} did not answer within connect_timeout={settings.connect_timeout}s"
            f" ({text}); check the host, port and firewall, or raise connect_timeout"
        )
    return (
        f"cannot connect to redis at {url} ({type(exc).__name__}: {text}); check that the "
        "server runs and the host and port are right"
    )


class _Writer:
    """Sends the XADDs of concurrent `publish` calls together: whatever is queued while a
    pipeline is on its way goes in the next one. One connection, one round trip per batch,
    and each caller learns the outcome of its own commands."""

    def __init__(
        self,
        client: Redis,
        retrying: Callable[[Callable[[], Awaitable[Any]], str], Awaitable[Any]],
    ) -> None:
        self._client = client
        self._retrying = retrying
        self._queue: list[tuple[list[bytes], asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    async def send(self, commands: list[bytes]) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((commands, future))
        self._wake.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="eventwire-redis:publish")
        await future

    async def close(self, patience: float) -> None:
        """Send what is queued (for up to `patience` seconds), then stop."""
        self._closing = True
        self._wake.set()
        task = self._task
        if task is not None and not task.done():
            try:
                async with asyncio.timeout(patience):
                    await asyncio.shield(task)
            except TimeoutError:
                await finish([task])
        for _, future in self._queue:
            if not future.done():
                future.set_exception(BusClosedError("the redis backend was closed"))
        self._queue = []

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            while self._queue:
                batch: list[tuple[list[bytes], asyncio.Future[None]]] = []
                size = 0
                while self._queue and (
                    not batch or size + len(self._queue[0][0]) <= PIPELINE_CHUNK
                ):
                    item = self._queue.pop(0)
                    batch.append(item)
                    size += len(item[0])
                await self._send(batch)
            if self._closing:
                return
            await self._wake.wait()

    async def _send(self, batch: list[tuple[list[bytes], asyncio.Future[None]]]) -> None:
        packed = [command for item, _ in batch for command in item]
        try:
            results = await self._retrying(lambda: self._execute(packed), "publish")
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        position = 0
        for item, future in batch:
            mine = results[position : position + len(item)]
            position += len(item)
            error = next((r for r in mine if isinstance(r, Exception)), None)
            if future.done():
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(None)

    async def _execute(self, packed: list[bytes]) -> list[Any]:
        """Write the commands (already in RESP) on one pooled connection in chunks and
        read one reply per command; an error reply is returned in its place."""
        pool = self._client.connection_pool
        connection = await pool.get_connection()  # type: ignore[no-untyped-call]
        results: list[Any] = []
        try:
            for start in range(0, len(packed), PIPELINE_CHUNK):
                chunk = packed[start : start + PIPELINE_CHUNK]
                await connection.send_packed_command(b"".join(chunk), check_health=False)
                for _ in chunk:
                    try:
                        results.append(await connection.read_response())
                    except ResponseError as exc:
                        results.append(exc)
        except BaseException:
            await connection.disconnect()
            raise
        finally:
            await pool.release(connection)
        return results


class RedisBackend:
    """Redis Streams: ``redis://[[user]:password@]host[:port][/db][?options]``, ``rediss://``.

    See the package docstring for how each guarantee is achieved and the options.
    """

    name = "redis"
    binding = "kafka"

    def __init__(self, url: str, options: Mapping[str, Any] | None = None) -> None:
        self.settings = parse_settings(url, options)
        self.capabilities: Capabilities = dataclasses.replace(
            CAPABILITIES, max_message_bytes=self.settings.max_message_bytes
        )
        self._broker: RedisBroker | None = None
        self._client: Redis | None = None
        self._scripts: Scripts | None = None
        self._state = "new"
        self._channels: dict[str, ChannelKeys] = {}
        self._round_robin: dict[str, int] = {}
        self._subscriptions: list[RedisSubscription] = []
        self._writer: _Writer | None = None
        self._resolving: dict[str, asyncio.Future[ChannelKeys]] = {}
        #: Events retention trimmed before a group settled them (each one also logged).
        self.trimmed_entries = 0

    def __repr__(self) -> str:
        return f"<RedisBackend {self.url} {self._state}>"

    @property
    def url(self) -> str:
        return self.settings.url

    @property
    def client(self) -> Redis:
        """The redis-py client (connected)."""
        return self._connected()

    def _connected(self) -> Redis:
        if self._client is None:
            if self._state == "new":
                raise BusClosedError(f"the {self.url} backend is not connected; call connect()")
            raise BusClosedError(f"the {self.url} backend is closed; create a new backend")
        return self._client

    # -- connection -------------------------------------------------------------------------

    async def connect(self) -> None:
        if self._state == "connected":
            return
        if self._state != "new":
            raise BusClosedError(f"the {self.url} backend is closed; create a new backend")
        settings = self.settings
        try:
            broker = make_broker(settings)
            client: Redis = await broker.connect()
        except Exception as exc:  # e.g. an unreadable TLS certificate file
            raise BackendUnavailableError(describe_connect_error(settings, exc)) from None
        try:
            async with asyncio.timeout(settings.connect_timeout + 1):
                info = await client.info("server")
        except Exception as exc:
            await _quietly(client.aclose())
            raise BackendUnavailableError(describe_connect_error(settings, exc)) from None
        version = tuple(int(p) for p in str(info.get("redis_version", "0.0")).split(".")[:2])
        if version < MIN_SERVER:
            await _quietly(client.aclose())
            raise BackendUnavailableError(
                f"redis at {self.url} runs {info.get('redis_version')}; the redis backend "
                f"needs Redis {'.'.join(map(str, MIN_SERVER))} or newer (XAUTOCLAIM, "
                "consumer group lag)"
            )
        await self._learn_limit(client)
        self._broker, self._client, self._scripts = broker, client, Scripts(client)
        self._writer = _Writer(client, self._retrying)
        self._state = "connected"

    async def _learn_limit(self, client: Redis) -> None:
        """Lower ``max_message_bytes`` to the server's ``proto-max-bulk-len`` if smaller."""
        try:
            reply = await client.config_get("proto-max-bulk-len")
            server = int(reply.get("proto-max-bulk-len") or 0)
        except (ResponseError, ValueError, TypeError):
            return  # CONFIG may be renamed or denied by ACL: keep the configured limit
        if 0 < server < self.settings.max_message_bytes:
            self.capabilities = dataclasses.replace(self.capabilities, max_message_bytes=server)

    async def close(self) -> None:
        """Stop every member (last acks sent, shards given back), then disconnect."""
        if self._state == "closed":
            return
        subscriptions, self._subscriptions = self._subscriptions, []
        await asyncio.gather(*(s.close() for s in subscriptions), return_exceptions=True)
        await self._disconnect()

    async def abort(self) -> None:
        """Crash: drop the connections; no ack, no lease release (members' leases expire
        after ``lease_ttl`` and survivors take the shards and their pending entries)."""
        if self._state == "closed":
            return
        subscriptions, self._subscriptions = self._subscriptions, []
        tasks = [t for s in subscriptions for t in s.abort()]
        client = self._client
        if client is not None:
            await _quietly(client.connection_pool.disconnect())
        await finish(tasks)
        await self._disconnect(aborted=True)

    async def _disconnect(self, *, aborted: bool = False) -> None:
        self._state = "closed"
        if self._writer is not None:
            await self._writer.close(0 if aborted else self.settings.reconnect_timeout)
            self._writer = None
        broker, client = self._broker, self._client
        self._broker = self._client = self._scripts = None
        if broker is not None:
            await _quietly(broker.stop())
        elif client is not None:
            await _quietly(client.aclose())

    # -- channels ---------------------------------------------------------------------------

    async def channel_keys(self, channel: str) -> ChannelKeys:
        """The keys of `channel`; the first use fixes its shard count on the server."""
        keys = self._channels.get(channel)
        if keys is not None:
            return keys
        pending = self._resolving.get(channel)
        if pending is not None:  # another call is asking the server already
            return await asyncio.shield(pending)
        future: asyncio.Future[ChannelKeys] = asyncio.get_running_loop().create_future()
        self._resolving[channel] = future
        try:
            keys = await self._resolve(channel)
        except BaseException as exc:
            if isinstance(exc, Exception):
                future.set_exception(exc)
                future.exception()  # marked as retrieved; waiters re-raise it
            else:
                future.cancel()
            raise
        finally:
            del self._resolving[channel]
        future.set_result(keys)
        return keys

    async def _resolve(self, channel: str) -> ChannelKeys:
        check_name("channel", channel)
        client = self._connected()
        # A dead-letter channel is one stream: listed in exact order, and its volume is
        # small. Other channels are sharded for per-key order with several members.
        wanted = 1 if channel.endswith(DLQ_SUFFIX) else self.settings.shards
        meta = f"{self.settings.prefix}{channel}:meta"

        async def resolve() -> Any:
            pipe = client.pipeline(transaction=False)
            pipe.hsetnx(meta, "shards", wanted)
            pipe.hget(meta, "shards")
            return (await pipe.execute())[1]

        stored = await self._retrying(resolve, f"set up channel {channel!r}")
        shards = int(stored)
        if shards != wanted:
            log.info(
                "eventwire: channel %s has %d shards on the server (shards=%d is only used "
                "for new channels)",
                channel,
                shards,
                wanted,
            )
        keys = ChannelKeys(self.settings.prefix, channel, shards)
        self._channels[channel] = keys
        return keys

    async def _retrying(self, call: Callable[[], Awaitable[T]], what: str) -> T:
        """Run `call`, retrying while the server is unreachable, up to reconnect_timeout."""
        deadline = time.monotonic() + self.settings.reconnect_timeout
        outage: Outage | None = None
        while True:
            try:
                result = await call()
            except RETRYABLE as exc:
                outage = outage or Outage(what, self.settings.scrub)
                delay = outage.failed(exc)
                if time.monotonic() + delay > deadline:
                    raise BackendUnavailableError(
                        f"could not {what}: redis at {self.url} was unreachable for "
                        f"reconnect_timeout={self.settings.reconnect_timeout}s "
                        f"({self.settings.scrub(str(exc))})"
                    ) from None
                await asyncio.sleep(delay)
                continue
            if outage is not None:
                outage.ok()
            return result

    # -- publishing -------------------------------------------------------------------------

    def _xadd_prefix(self, stream: str) -> list[bytes]:
        settings = self.settings
        name = stream.encode()
        if settings.retention is not None:
            floor = max(0, int((time.time() - settings.retention) * 1000))
            return [b"XADD", name, b"MINID", b"~", str(floor).encode(), b"*"]
        if settings.maxlen:
            return [b"XADD", name, b"MAXLEN", b"~", str(settings.maxlen).encode(), b"*"]
        return [b"XADD", name, b"*"]

    async def publish(self, channel: str, messages: Sequence[WireMessage]) -> None:
        self._connected()
        if not messages:
            return
        limit = self.capabilities.max_message_bytes or 0
        for index, message in enumerate(messages):
            size = entry_size(message)
            if limit and size > limit:
                raise MessageTooLargeError(
                    f"message {index} for channel {channel!r} is {size} bytes (body, key and "
                    f"headers), over the redis backend's limit of {limit} bytes "
                    "(max_message_bytes); nothing was sent. Publish a reference to the data "
                    "instead, or raise max_message_bytes"
                )
        keys = await self.channel_keys(channel)
        commands = self._commands(channel, keys, messages)
        assert self._writer is not None
        try:
            await self._writer.send(commands)
        except BackendUnavailableError as exc:
            raise PublishError(
                f"{exc}; the {len(messages)} message(s) to {channel!r} may not have been stored"
            ) from None
        except ResponseError as exc:
            raise PublishError(
                f"redis at {self.url} refused a publish to {channel!r}: "
                f"{self.settings.scrub(str(exc))}; some of the {len(messages)} message(s) "
                "may have been stored"
            ) from None

    def _commands(
        self, channel: str, keys: ChannelKeys, messages: Sequence[WireMessage]
    ) -> list[bytes]:
        streams = keys.streams
        count = len(streams)
        heads: dict[int, list[bytes]] = {}
        commands: list[bytes] = []
        robin = self._round_robin.get(channel, 0)
        for message in messages:
            if message.key is not None:
                shard = shard_of(message.key, count) if count > 1 else 0
            else:
                shard = robin
                robin = (robin + 1) % count
            head = heads.get(shard)
            if head is None:
                head = heads[shard] = self._xadd_prefix(streams[shard])
            commands.append(pack_command(head, encode_entry(message)))
        self._round_robin[channel] = robin
        return commands

    # -- consuming --------------------------------------------------------------------------

    async def subscribe(self, spec: SubscriptionSpec, handler: MessageHandler) -> RedisSubscription:
        client = self._connected()
        assert self._scripts is not None
        check_name("group", spec.group)
        if spec.max_in_flight < 1:
            raise ConfigurationError(
                f"max_in_flight={spec.max_in_flight} for {spec.channel}/{spec.group} must be >= 1"
            )
        keys = await self.channel_keys(spec.channel)
        subscription = RedisSubscription(
            client=client,
            scripts=self._scripts,
            settings=self.settings,
            keys=keys,
            spec=spec,
            handler=handler,
            report_trimmed=self._count_trimmed,
        )
        try:
            await subscription.start()
        except RETRYABLE as exc:
            subscription.abort()
            raise BackendUnavailableError(
                f"could not join group {spec.group!r} on {spec.channel!r}: redis at {self.url} "
                f"is unreachable ({self.settings.scrub(str(exc))})"
            ) from None
        except ResponseError as exc:
            subscription.abort()
            raise BackendUnavailableError(
                f"redis at {self.url} refused to set up group {spec.group!r} on "
                f"{spec.channel!r}: {self.settings.scrub(str(exc))}"
            ) from None
        self._subscriptions.append(subscription)
        return subscription

    def _count_trimmed(self, count: int) -> None:
        self.trimmed_entries += count

    async def delete_group(self, channel: str, group: str) -> None:
        """Destroy `group`'s consumer group on every shard stream of `channel`, with its
        membership, lease and generation keys."""
        client = self._connected()
        keys = await self.channel_keys(channel)

        async def destroy() -> None:
            pipe = client.pipeline(transaction=False)
            for stream in keys.streams:
                pipe.xgroup_destroy(stream, group)
            pipe.delete(
                keys.members(group),
                keys.gen(group),
                *(keys.lease(group, n) for n in range(len(keys.streams))),
            )
            await pipe.execute(raise_on_error=False)

        await self._retrying(destroy, f"delete group {group!r}")

    async def browse(self, channel: str, limit: int = 1000) -> list[WireMessage]:
        from eventwire_redis._topology import decode_entry

        client = self._connected()
        check_name("channel", channel)
        if limit <= 0:
            return []
        keys = self._channels.get(channel)
        if keys is None:
            meta = f"{self.settings.prefix}{channel}:meta"
            stored = await self._retrying(lambda: client.hget(meta, "shards"), "browse")
            if stored is None:
                return []
            keys = ChannelKeys(self.settings.prefix, channel, int(stored))

        async def read() -> list[Any]:
            pipe = client.pipeline(transaction=False)
            for stream in keys.streams:
                pipe.xrange(stream, count=limit)
            return list(await pipe.execute())

        entries = [entry for reply in await self._retrying(read, "browse") for entry in reply]
        entries.sort(key=lambda entry: _id_order(entry[0]))
        return [decode_entry(fields) for _, fields in entries[:limit]]


def _id_order(entry_id: bytes) -> tuple[int, int]:
    ms, _, seq = entry_id.partition(b"-")
    return int(ms), int(seq or 0)


async def _quietly(awaitable: Awaitable[Any]) -> None:
    try:
        async with asyncio.timeout(5):
            await awaitable
    except Exception:
        log.debug("eventwire: error while disconnecting from redis", exc_info=True)
