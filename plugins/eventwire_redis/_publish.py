"""`Publisher`: XADDs of concurrent publishes, packed by hand and pipelined together.

Whatever is queued while a pipeline is on its way goes in the next one: one connection,
one round trip per batch of up to `PIPELINE_CHUNK` commands, and each caller learns the
outcome of its own commands. An event goes to shard ``crc32(key) % shards`` (no key:
round-robin); every ``XADD`` trims with ``MAXLEN ~ maxlen`` (or ``MINID ~`` for
``retention``). With ``replica_acks`` (1 through Sentinel), each round trip ends with
``WAIT replica_acks replica_timeout``: Redis replicates asynchronously, so a batch is
confirmed only once that many replicas have it, and a failover cannot lose it.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from eventwire.backend import WireMessage
from eventwire.backendkit import GroupCommit, shard_of
from eventwire.errors import BusClosedError, PublishError
from redis.exceptions import ResponseError

from eventwire_redis._connection import retrying
from eventwire_redis._topology import (
    ChannelKeys,
    PackedHead,
    pack_command,
    pack_entry,
    pack_head,
)

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from eventwire_redis._settings import RedisSettings

__all__ = ["PIPELINE_CHUNK", "Publisher"]

#: XADDs per pipeline round trip.
PIPELINE_CHUNK = 1000


class Publisher:
    """Sends the XADDs of every `publish` of one backend (see the module docstring)."""

    def __init__(self, client: Redis, settings: RedisSettings) -> None:
        self._client = client
        self._settings = settings
        self._round_robin: dict[str, int] = {}
        self._heads: dict[str, PackedHead] = {}
        self._commits: GroupCommit[list[bytes]] = GroupCommit(
            self._send, name="eventwire-redis:publish", size=len, limit=PIPELINE_CHUNK
        )

    async def publish(self, keys: ChannelKeys, messages: Sequence[WireMessage]) -> None:
        """Store `messages` on the shard streams of `keys`; returns once Redis has them."""
        await self._commits.submit(self._commands(keys, messages))

    async def close(self, patience: float) -> None:
        """Send what is queued (for up to `patience` seconds), then stop."""
        await self._commits.close(patience, BusClosedError("the redis backend was closed"))

    def _head(self, stream: str) -> PackedHead:
        """``XADD stream`` with its trimming, packed (once per stream unless the trimming
        moves with the clock)."""
        settings, name = self._settings, stream.encode()
        if settings.retention is not None:
            floor = max(0, int((time.time() - settings.retention) * 1000))
            return pack_head([b"XADD", name, b"MINID", b"~", str(floor).encode(), b"*"])
        head = self._heads.get(stream)
        if head is None:
            trim = [b"MAXLEN", b"~", str(settings.maxlen).encode()] if settings.maxlen else []
            head = self._heads[stream] = pack_head([b"XADD", name, *trim, b"*"])
        return head

    def _commands(self, keys: ChannelKeys, messages: Sequence[WireMessage]) -> list[bytes]:
        count = len(keys.streams)
        heads: dict[int, PackedHead] = {}
        commands: list[bytes] = []
        robin = self._round_robin.get(keys.base, 0)
        for message in messages:
            if message.key is not None:
                shard = shard_of(message.key, count) if count > 1 else 0
            else:
                shard, robin = robin, (robin + 1) % count
            head = heads.get(shard)
            if head is None:
                head = heads[shard] = self._head(keys.streams[shard])
            commands.append(pack_entry(head, message))
        self._round_robin[keys.base] = robin
        return commands

    async def _send(self, batch: list[list[bytes]]) -> list[Exception | None]:
        """One pipelined round trip for `batch`; per publish, the first error reply."""
        packed = [command for commands in batch for command in commands]
        settings = self._settings
        results = await retrying(lambda: self._execute(packed), "publish", settings)
        if settings.replica_acks and len(results) > len(packed):
            acks = results.pop()
            if not isinstance(acks, int) or acks < settings.replica_acks:
                raise PublishError(
                    f"redis at {settings.url}: {acks} of the {settings.replica_acks} replicas "
                    f"asked for (replica_acks) had the publish within "
                    f"replica_timeout={settings.replica_timeout:g}s; it is not confirmed"
                )
        outcomes: list[Exception | None] = []
        position = 0
        for commands in batch:
            mine = results[position : position + len(commands)]
            position += len(commands)
            outcomes.append(next((r for r in mine if isinstance(r, Exception)), None))
        return outcomes

    async def _execute(self, packed: list[bytes]) -> list[Any]:
        """Write the commands (already in RESP) on one pooled connection in chunks and
        read one reply per command; an error reply is returned in its place."""
        pool = self._client.connection_pool
        connection = await pool.get_connection()  # type: ignore[no-untyped-call]
        results: list[Any] = []
        settings = self._settings
        if settings.replica_acks:
            # on the same connection: WAIT covers the writes this connection made before it
            wait = [str(settings.replica_acks), str(int(settings.replica_timeout * 1000))]
            packed = [*packed, pack_command([b"WAIT", *(w.encode() for w in wait)])]
        try:
            for start in range(0, len(packed), PIPELINE_CHUNK):
                chunk = packed[start : start + PIPELINE_CHUNK]
                await connection.send_packed_command(b"".join(chunk), check_health=False)
                # one deadline for the chunk's replies: redis-py's own (`socket_timeout` for
                # each reply) costs a timeout context per reply
                async with asyncio.timeout(settings.socket_timeout):
                    for _ in chunk:
                        try:
                            results.append(await connection.read_response(timeout=math.inf))
                        except ResponseError as exc:
                            results.append(exc)
        except BaseException:
            await connection.disconnect()
            raise
        finally:
            await pool.release(connection)
        return results
