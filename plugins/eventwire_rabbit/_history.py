"""Reading a channel's history stream without consuming it (``browse``, ``from_beginning``).

RabbitMQ 3.10 cannot tell an AMQP 0-9-1 client where a stream ends, so a reader first
appends a *marker* (a message with the ``eventwire-marker`` header, sent to the stream alone
through the default exchange) and reads until it meets that marker. Markers are skipped by
every reader and never reach a group (they are not routed through the channel exchange).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import aiormq
from aiormq.abc import DeliveredMessage
from pamqp.commands import Basic

from eventwire_rabbit._channels import close_channel
from eventwire_rabbit._wire import MARKER_HEADER

__all__ = ["Visitor", "scan"]

#: Called with each message; returns True to stop early.
Visitor = Callable[[DeliveredMessage], Awaitable[bool]]
_PREFETCH = 500


async def scan(
    amqp: aiormq.abc.AbstractConnection,
    publisher: aiormq.abc.AbstractChannel,
    stream: str,
    start: int | str,
    visit: Visitor,
    *,
    timeout: float,
) -> int | None:
    """Visit the messages of `stream` from offset `start` ("first" or a number) up to now.

    Returns the offset just after the last one read, or ``None`` if `visit` stopped early.
    Raises `aiormq.exceptions.ChannelNotFoundEntity` when the stream does not exist.
    """
    channel = await amqp.channel()
    inbox: asyncio.Queue[DeliveredMessage] = asyncio.Queue()

    async def collect(message: DeliveredMessage) -> None:
        inbox.put_nowait(message)

    try:
        await channel.basic_qos(prefetch_count=_PREFETCH)
        await channel.basic_consume(stream, collect, arguments={"x-stream-offset": start})
        marker = uuid.uuid4().hex
        await publisher.basic_publish(
            b"",
            exchange="",
            routing_key=stream,
            properties=Basic.Properties(delivery_mode=2, headers={MARKER_HEADER: marker}),
        )
        unacked = 0
        while True:
            message = await asyncio.wait_for(inbox.get(), timeout)
            headers = message.header.properties.headers or {}
            tag = message.delivery.delivery_tag  # type: ignore[union-attr]
            unacked += 1
            if unacked >= _PREFETCH // 2:
                await channel.basic_ack(tag, multiple=True)  # type: ignore[arg-type]
                unacked = 0
            found = headers.get(MARKER_HEADER)
            if found is not None:
                if found == marker:
                    offset = headers.get("x-stream-offset")
                    return int(offset) + 1 if isinstance(offset, int) else None
                continue
            if await visit(message):
                return None
    finally:
        await close_channel(channel)
