"""`RedisBackend`: the `eventwire.backend.Backend` protocol over Redis Streams."""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from eventwire.backend import MessageHandler, SubscriptionSpec, WireMessage
from eventwire.backendkit import BaseBackend, Memo, quietly
from eventwire.deadletter import DLQ_SUFFIX
from eventwire.errors import BackendUnavailableError, PublishError
from redis.exceptions import RedisError, ResponseError

from eventwire_redis._connection import connect_client, retrying
from eventwire_redis._group import group_info
from eventwire_redis._idempotency import DEFAULT_PREFIX, RedisIdempotencyStore
from eventwire_redis._info import CAPABILITIES
from eventwire_redis._leases import Scripts
from eventwire_redis._publish import Publisher
from eventwire_redis._settings import RedisSettings
from eventwire_redis._subscription import RedisSubscription
from eventwire_redis._topology import ChannelKeys, decode_entry

if TYPE_CHECKING:
    from faststream.redis import RedisBroker
    from redis.asyncio import Redis

__all__ = ["RedisBackend"]

log = logging.getLogger("eventwire.redis")

T = TypeVar("T")


class RedisBackend(BaseBackend[RedisSettings]):
    """Redis Streams: ``redis://[[user]:password@]host[:port][/db][?options]``, ``rediss://``
    (the package docstring and ``docs/backends/redis.md`` say how)."""

    name = "redis"
    binding = "kafka"
    capabilities = CAPABILITIES
    error_map = {RedisError: BackendUnavailableError}

    def __init__(self, url: str, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(RedisSettings.parse(url, options))
        self.capabilities = dataclasses.replace(
            CAPABILITIES, max_message_bytes=self.settings.max_message_bytes
        )
        self._broker: RedisBroker | None = None
        self._client: Redis | None = None
        self._scripts: Scripts | None = None
        self._publisher: Publisher | None = None
        self._channels: Memo[str, ChannelKeys] = Memo()
        #: Events retention trimmed before a group settled them (each one also logged).
        self.trimmed_entries = 0

    def shared_idempotency_store(self) -> RedisIdempotencyStore:
        """A `RedisIdempotencyStore` on this server (the bus's default store), its keys
        under the backend's ``prefix`` too (an ACL that grants the prefix covers them)."""
        return RedisIdempotencyStore(self.settings, prefix=self.settings.prefix + DEFAULT_PREFIX)

    @property
    def client(self) -> Redis:
        """The redis-py client (connected)."""
        self.check_connected()
        assert self._client is not None
        return self._client

    @property
    def scripts(self) -> Scripts:
        """The Lua scripts, registered on `client` (connected)."""
        self.check_connected()
        assert self._scripts is not None
        return self._scripts

    # -- connection -------------------------------------------------------------------------

    async def _connect(self) -> None:
        broker, client = await connect_client(self.settings)
        await self._learn_limit(client)
        self._broker, self._client, self._scripts = broker, client, Scripts(client)
        self._publisher = Publisher(client, self.settings)

    async def _learn_limit(self, client: Redis) -> None:
        """Lower ``max_message_bytes`` to the server's ``proto-max-bulk-len`` if smaller."""
        try:
            reply = await client.config_get("proto-max-bulk-len")
            server = int(reply.get("proto-max-bulk-len") or 0)
        except (ResponseError, ValueError, TypeError):
            return  # CONFIG may be renamed or denied by ACL: keep the configured limit
        if 0 < server < self.settings.max_message_bytes:
            self.capabilities = dataclasses.replace(self.capabilities, max_message_bytes=server)

    async def _close(self) -> None:
        await self._disconnect(self.settings.reconnect_timeout)

    async def _abort(self) -> None:
        """Crash: drop the connections; no ack, no lease release (members' leases expire
        after ``lease_ttl`` and survivors take the shards and their pending entries)."""
        if self._client is not None:
            await quietly(self._client.connection_pool.disconnect(), "redis disconnect")
        await self._disconnect(0)

    async def _disconnect(self, patience: float) -> None:
        if self._publisher is not None:
            await self._publisher.close(patience)
        broker, client = self._broker, self._client
        self._broker = self._client = self._scripts = self._publisher = None
        if broker is not None:
            await quietly(broker.stop(), "redis disconnect")
        elif client is not None:
            await quietly(client.aclose(), "redis disconnect")

    async def _run(self, action: str, work: Callable[[], Awaitable[T]]) -> T:
        """`work()`, retried while the server is unreachable (up to ``reconnect_timeout``),
        its errors mapped by `map_errors`."""
        with self.map_errors(action):
            return await retrying(work, action, self.settings)

    # -- channels ---------------------------------------------------------------------------

    async def channel_keys(self, channel: str) -> ChannelKeys:
        """The keys of `channel`; the first use fixes its shard count on the server (the
        calls made meanwhile wait for the same answer)."""
        return await self._channels.get(channel, lambda: self._resolve(channel))

    async def _resolve(self, channel: str) -> ChannelKeys:
        client = self.client
        # A dead-letter channel is one stream: listed in exact order, and its volume is
        # small. Other channels are sharded for per-key order with several members.
        wanted = 1 if channel.endswith(DLQ_SUFFIX) else self.settings.shards
        meta = f"{self.settings.prefix}{channel}:meta"

        async def resolve() -> Any:
            pipe = client.pipeline(transaction=False)
            pipe.hsetnx(meta, "shards", wanted)
            pipe.hget(meta, "shards")
            return (await pipe.execute())[1]

        shards = int(await retrying(resolve, f"set up channel {channel!r}", self.settings))
        if shards != wanted:
            log.info(
                "eventwire: channel %s has %d shards on the server (shards=%d is only used "
                "for new channels)",
                channel,
                shards,
                wanted,
            )
        return ChannelKeys(self.settings.prefix, channel, shards)

    async def _on_streams(
        self, channel: str, action: str, command: Callable[[Any, str], object]
    ) -> list[Any]:
        """One pipelined `command` (pipeline, stream) per shard stream of `channel` as the
        server has it, retried and mapped; ``[]`` if the channel is new (nothing is created)."""
        client, prefix = self.client, self.settings.prefix

        async def run() -> list[Any]:
            stored = await client.hget(f"{prefix}{channel}:meta", "shards")
            if stored is None:
                return []
            pipe = client.pipeline(transaction=False)
            for stream in ChannelKeys(prefix, channel, int(stored)).streams:
                command(pipe, stream)
            return list(await pipe.execute())

        return await self._run(action, run)

    # -- publishing -------------------------------------------------------------------------

    async def publish(self, channel: str, messages: Sequence[WireMessage]) -> None:
        self.check_publish(channel, messages)
        if not messages:
            return
        with self.map_errors(
            f"publish {len(messages)} message(s) to {channel!r}", into=PublishError
        ):
            keys = await self.channel_keys(channel)
            assert self._publisher is not None
            await self._publisher.publish(keys, messages)

    # -- consuming --------------------------------------------------------------------------

    async def subscribe(self, spec: SubscriptionSpec, handler: MessageHandler) -> RedisSubscription:
        self.check_subscribe(spec)
        with self.map_errors(f"join group {spec.group!r} on {spec.channel!r}"):
            keys = await self.channel_keys(spec.channel)
            subscription = RedisSubscription(spec, handler, backend=self, keys=keys)
            return await self.started(subscription)

    async def delete_group(self, channel: str, group: str) -> None:
        """Destroy `group`'s consumer group on every shard stream of `channel`, with its
        membership, lease and generation keys."""
        self.check_channel(channel)
        client = self.client

        async def destroy() -> None:
            keys = await self.channel_keys(channel)
            pipe = client.pipeline(transaction=False)
            for stream in keys.streams:
                pipe.xgroup_destroy(stream, group)
            pipe.delete(
                keys.members(group),
                keys.gen(group),
                *(keys.lease(group, n) for n in range(len(keys.streams))),
            )
            await pipe.execute(raise_on_error=False)

        await self._run(f"delete group {group!r} of {channel!r}", destroy)

    async def lag(self, channel: str, group: str) -> int | None:
        """Entries of `channel`'s shard streams that `group` has not acked: ``XINFO GROUPS``
        ``lag`` (never read, capped at what retention kept) plus ``pending`` (read, not
        acked), summed over the shards (`eventwire.backend.LagReporter`); ``None`` if no
        shard has the group."""
        self.check_channel(channel)
        client = self.client

        async def read() -> int | None:
            keys = await self.channel_keys(channel)
            pipe = client.pipeline(transaction=False)
            for stream in keys.streams:
                pipe.xlen(stream)
                pipe.xinfo_groups(stream)
            replies = await pipe.execute(raise_on_error=False)
            total: int | None = None
            shards = zip(keys.streams, replies[::2], replies[1::2], strict=True)
            for stream, length, groups in shards:
                info = None if isinstance(groups, Exception) else group_info(groups, group)
                if info is None:  # no such stream or group yet
                    continue
                unread = info.get("lag")
                if unread is None:  # Redis cannot tell (entries deleted in the middle)
                    last = info.get("last-delivered-id")
                    last = last.decode() if isinstance(last, bytes) else str(last)
                    unread = len(await client.xrange(stream, min=f"({last}", max="+") or ())
                total = (total or 0) + min(int(unread), int(length)) + int(info["pending"])
            return total

        return await self._run(f"lag of group {group!r} on {channel!r}", read)

    async def delete_channel(self, channel: str) -> bool:
        """Delete every key of `channel` (streams, meta, members, leases, counters);
        ``False`` if it had none. The dead-letter channel is deleted by its own name."""
        self.check_channel(channel)
        self._channels.forget(channel)
        client = self.client
        pattern = re.sub(r"([*?\[\]\\])", r"\\\1", f"{self.settings.prefix}{channel}") + ":*"

        async def delete() -> int:
            keys = [key async for key in client.scan_iter(match=pattern, count=500)]
            return int(await client.delete(*keys)) if keys else 0

        return bool(await self._run(f"delete {channel!r}", delete))

    async def purge_channel(self, channel: str) -> int:
        """Trim every shard stream of `channel` to nothing (`eventwire.backend.ChannelPurger`):
        ``XTRIM MAXLEN 0`` keeps the streams, their consumer groups and the channel's meta;
        returns how many entries were removed."""
        self.check_channel(channel)
        trims = await self._on_streams(
            channel, f"purge {channel!r}", lambda p, s: p.xtrim(s, maxlen=0, approximate=False)
        )
        return sum(int(n) for n in trims)

    async def browse(self, channel: str, limit: int = 1000) -> list[WireMessage]:
        self.check_channel(channel)
        if limit <= 0:
            return []
        replies = await self._on_streams(
            channel, f"browse {channel!r}", lambda p, s: p.xrange(s, count=limit)
        )
        entries = sorted(
            (e for reply in replies for e in reply),
            key=lambda e: tuple(int(n) for n in e[0].split(b"-")),  # (ms, sequence)
        )
        return [decode_entry(fields) for _, fields in entries[:limit]]
