"""Raw redis-py: XADD (pipelined for batches); XREADGROUP + XACK of every handled entry.

"Per-message acknowledgement" on Redis Streams is ``XACK`` of each entry id: the consumer
handles every entry of an ``XREADGROUP COUNT 100`` reply, then acknowledges their ids (one
``XACK`` call carrying the ids), so an unhandled entry stays in the pending list.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from importlib.metadata import version
from typing import Any

from eventwire_conformance.bench.model import (
    BenchConfig,
    ConsumerLoop,
    PayloadFactory,
    Tracker,
)

__all__ = ["RedisRawRunner", "create_group", "sweep"]


def _client(url: str) -> Any:
    """A redis-py client for `url`, read as the redis backend reads it (its TLS and
    credential options included)."""
    import redis.asyncio
    from eventwire_redis import RedisSettings

    settings = RedisSettings.parse(url)
    tls: dict[str, Any] = {}
    if settings.tls:
        tls = {
            "ssl": True,
            "ssl_ca_certs": settings.ca_file,
            "ssl_certfile": settings.cert_file,
            "ssl_keyfile": settings.key_file,
            "ssl_password": settings.key_password,
            "ssl_cert_reqs": "required" if settings.tls_verify else "none",
            "ssl_check_hostname": settings.tls_verify,
        }
    return redis.asyncio.Redis(
        host=settings.host,
        port=settings.port,
        db=settings.db,
        username=settings.username,
        password=settings.password,
        socket_connect_timeout=5,
        **tls,
    )


async def create_group(client: Any, stream: str, group: str) -> None:
    """Create `group` on `stream` (and the stream) reading from the start, unless it exists."""
    from redis.exceptions import ResponseError

    try:
        await client.xgroup_create(stream, group, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


async def sweep(url: str, marker: str) -> list[str]:
    """Delete every key whose name contains `marker`; returns their names."""
    client = _client(url)
    try:
        keys = [k.decode() async for k in client.scan_iter(match=f"*{marker}*", count=1000)]
        if keys:
            await client.delete(*keys)
        return sorted(keys)
    finally:
        await client.aclose()


class RedisRawRunner:
    kind = "raw"

    def __init__(self, config: BenchConfig, payloads: PayloadFactory) -> None:
        self._config = config
        self._payloads = payloads
        self._client: Any = None
        from redis.utils import HIREDIS_AVAILABLE

        parser = "hiredis parser" if HIREDIS_AVAILABLE else "pure-Python parser"
        self.label = (
            f"redis-py {version('redis')} ({parser}, as every row here): XADD, consumer group "
            "read from id 0, XACK of every handled entry after each XREADGROUP COUNT 100"
        )

    async def start(self) -> None:
        self._client = _client(self._config.url)
        await self._client.ping()

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def prepare(self, channel: str, group: str, figure: str) -> None:
        await create_group(self._client, channel, group)

    async def publish_one(self, channel: str, seq: int) -> None:
        fields = {"key": self._payloads.key(seq), "data": self._payloads.body(seq)}
        await self._client.xadd(channel, fields)

    async def publish_batch(self, channel: str, seqs: Sequence[int]) -> None:
        body, key = self._payloads.body, self._payloads.key
        async with self._client.pipeline(transaction=False) as pipe:
            for seq in seqs:
                pipe.xadd(channel, {"key": key(seq), "data": body(seq)})
            await pipe.execute()

    @asynccontextmanager
    async def consume(self, channel: str, group: str, tracker: Tracker) -> AsyncIterator[None]:
        client = _client(self._config.url)
        await create_group(client, channel, group)

        async def loop(stopping: asyncio.Event) -> None:
            hit = tracker.hit
            while not stopping.is_set():
                reply = await client.xreadgroup(
                    group, "bench-consumer", {channel: ">"}, count=100, block=200
                )
                for _stream, entries in reply or ():
                    ids = []
                    for entry_id, fields in entries:
                        data = json.loads(fields[b"data"])
                        hit(data["seq"], data["sent_ns"])
                        ids.append(entry_id)
                    if ids:
                        await client.xack(channel, group, *ids)

        consumer_loop = ConsumerLoop(loop, tracker)
        try:
            yield
        finally:
            await consumer_loop.stop()
            with contextlib.suppress(Exception):
                await client.aclose()
