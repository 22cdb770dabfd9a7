"""Raw nats-py JetStream: awaited PubAck / ``publish_async``; a durable pull consumer that
acks every message.

"Per-message acknowledgement" on JetStream is ``msg.ack()`` of each message (AckExplicit):
the consumer fetches up to 100 messages, handles each and acks it.
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

__all__ = ["NatsRawRunner", "create_stream", "stream_name", "sweep"]


def stream_name(channel: str) -> str:
    """A JetStream stream name for `channel` (no dots allowed there)."""
    return channel.replace(".", "_")


async def _connect(url: str) -> Any:
    import nats

    return await nats.connect(url, connect_timeout=5, max_reconnect_attempts=0)


async def create_stream(js: Any, channel: str) -> None:
    """Create a file-backed stream for subject `channel` unless it exists."""
    from nats.js.errors import BadRequestError

    with contextlib.suppress(BadRequestError):
        await js.add_stream(name=stream_name(channel), subjects=[channel])


async def sweep(url: str, marker: str) -> list[str]:
    """Delete every stream whose name or subjects contain `marker`; returns their names."""
    nc = await _connect(url)
    try:
        js = nc.jetstream()
        names = []
        wanted = (marker, stream_name(marker))
        for info in await js.streams_info():
            subjects = info.config.subjects or []
            text = " ".join([info.config.name or "", *subjects])
            if any(w in text for w in wanted):
                names.append(info.config.name)
                await js.delete_stream(info.config.name)
        return sorted(names)
    finally:
        await nc.close()


class NatsRawRunner:
    kind = "raw"

    def __init__(self, config: BenchConfig, payloads: PayloadFactory) -> None:
        self._config = config
        self._payloads = payloads
        self._nc: Any = None
        self._js: Any = None
        self.label = (
            f"nats-py {version('nats-py')}: JetStream file stream, publish awaits PubAck "
            "(publish_async for batches), durable pull consumer, AckExplicit, ack per message"
        )

    async def start(self) -> None:
        self._nc = await _connect(self._config.url)
        self._js = self._nc.jetstream()

    async def close(self) -> None:
        if self._nc is not None:
            nc, self._nc = self._nc, None
            await nc.close()

    async def prepare(self, channel: str, group: str, figure: str) -> None:
        await create_stream(self._js, channel)

    async def publish_one(self, channel: str, seq: int) -> None:
        await self._js.publish(channel, self._payloads.body(seq))

    async def publish_batch(self, channel: str, seqs: Sequence[int]) -> None:
        body = self._payloads.body
        for seq in seqs:
            await self._js.publish_async(channel, body(seq))
        await self._js.publish_async_completed()

    @asynccontextmanager
    async def consume(self, channel: str, group: str, tracker: Tracker) -> AsyncIterator[None]:
        from nats.errors import TimeoutError as NatsTimeout

        await create_stream(self._js, channel)
        sub = await self._js.pull_subscribe(channel, durable=group, stream=stream_name(channel))

        async def loop(stopping: asyncio.Event) -> None:
            hit = tracker.hit
            while not stopping.is_set():
                try:
                    messages = await sub.fetch(100, timeout=0.5)
                except NatsTimeout:
                    continue
                for msg in messages:
                    data = json.loads(msg.data)
                    hit(data["seq"], data["sent_ns"])
                    await msg.ack()

        consumer_loop = ConsumerLoop(loop, tracker)
        try:
            yield
        finally:
            await consumer_loop.stop()
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
