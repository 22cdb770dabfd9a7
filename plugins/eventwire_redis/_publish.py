"""`Publisher`: XADDs of concurrent publishes, packed by hand and pipelined together.

Whatever is queued while a pipeline is on its way goes in the next one: one connection,
one round trip per batch of up to `PIPELINE_CHUNK` commands, and each caller learns the
outcome of its own commands. An event goes to shard ``crc32(key) % shards`` (no key:
round-robin); every ``XADD`` trims with ``MAXLEN ~ maxlen`` (or ``MINID ~`` for
``retention``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from eventwire.backend import WireMessage
from eventwire.errors import BusClosedError
from redis.exceptions import ResponseError

from eventwire_redis._connection import retrying
from eventwire_redis._topology import ChannelKeys, encode_entry, pack_command, shard_of

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from eventwire_redis._settings import RedisSettings

__all__ = ["PIPELINE_CHUNK", "Publisher"]

#: XADDs per pipeline round trip.
PIPELINE_CHUNK = 1000

_Item = tuple[list[bytes], "asyncio.Future[None]"]


class Publisher:
    """Sends the XADDs of every `publish` of one backend (see the module docstring)."""

    def __init__(self, client: Redis, settings: RedisSettings) -> None:
        self._client = client
        self._settings = settings
        self._queue: list[_Item] = []
        self._task: asyncio.Task[None] | None = None
        self._round_robin: dict[str, int] = {}

    async def publish(self, keys: ChannelKeys, messages: Sequence[WireMessage]) -> None:
        """Store `messages` on the shard streams of `keys`; returns once Redis has them."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((self._commands(keys, messages), future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="eventwire-redis:publish")
        await future

    async def close(self, patience: float) -> None:
        """Send what is queued (for up to `patience` seconds), then stop."""
        task = self._task
        if task is not None and not task.done():
            try:
                async with asyncio.timeout(patience):
                    await asyncio.shield(task)
            except TimeoutError:
                task.cancel()
                await asyncio.wait([task], timeout=5)
        for _, future in self._queue:
            if not future.done():
                future.set_exception(BusClosedError("the redis backend was closed"))
        self._queue = []

    def _head(self, stream: str) -> list[bytes]:
        settings, name = self._settings, stream.encode()
        if settings.retention is not None:
            floor = max(0, int((time.time() - settings.retention) * 1000))
            return [b"XADD", name, b"MINID", b"~", str(floor).encode(), b"*"]
        if settings.maxlen:
            return [b"XADD", name, b"MAXLEN", b"~", str(settings.maxlen).encode(), b"*"]
        return [b"XADD", name, b"*"]

    def _commands(self, keys: ChannelKeys, messages: Sequence[WireMessage]) -> list[bytes]:
        count = len(keys.streams)
        heads: dict[int, list[bytes]] = {}
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
            commands.append(pack_command(head, encode_entry(message)))
        self._round_robin[keys.base] = robin
        return commands

    async def _run(self) -> None:
        while self._queue:
            batch: list[_Item] = []
            size = 0
            while self._queue and (not batch or size + len(self._queue[0][0]) <= PIPELINE_CHUNK):
                batch.append(self._queue.pop(0))
                size += len(batch[-1][0])
            await self._send(batch)

    async def _send(self, batch: list[_Item]) -> None:
        packed = [command for commands, _ in batch for command in commands]
        settings = self._settings
        try:
            results = await retrying(
                lambda: self._execute(packed), "publish", settings.reconnect_timeout, settings.scrub
            )
        except Exception as exc:
            results = [exc] * len(packed)
        position = 0
        for commands, future in batch:
            mine = results[position : position + len(commands)]
            position += len(commands)
            error = next((r for r in mine if isinstance(r, Exception)), None)
            if not future.done():
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
