"""Handing a publish's records to the producer: one ``send`` each for a few, filled record
batches per partition for many (pipelined publish)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from aiokafka.partitioner import DefaultPartitioner
from eventwire.backend import WireMessage

__all__ = ["send"]

#: `send` fills record batches itself from this many messages on (pipelined publish).
_BATCH_FROM = 16


async def send(
    producer: Any,
    partitioner: DefaultPartitioner,
    channel: str,
    messages: Sequence[WireMessage],
    futures: list[asyncio.Future[Any]],
) -> None:
    """Hand `messages` to `producer` and await every record's acknowledgement; the send
    futures are put in `futures` as they are made (the caller retrieves what is left of
    them if this fails)."""
    if len(messages) >= _BATCH_FROM:
        await _send_batches(producer, partitioner, channel, messages, futures)
    else:
        for message in messages:
            key, headers = _key_headers(message)
            futures.append(await producer.send(channel, message.body, key=key, headers=headers))
    for future in futures:
        await future


async def _send_batches(
    producer: Any,
    choose: DefaultPartitioner,
    channel: str,
    messages: Sequence[WireMessage],
    futures: list[asyncio.Future[Any]],
) -> None:
    """Pipelined publish of many messages: fill one record batch per partition (the
    partition of a key is the same murmur2 hash ``send`` uses) and hand over full
    batches; about twice as fast per message as one ``send`` call each."""
    partitions = sorted(await producer.partitions_for(channel))
    open_batches: dict[int, Any] = {}
    for message in messages:
        key, headers = _key_headers(message)
        partition = choose(key, partitions, partitions)
        batch = open_batches.get(partition)
        if batch is None:
            batch = open_batches[partition] = producer.create_batch()
        if batch.append(key=key, value=message.body, timestamp=None, headers=headers) is None:
            futures.append(await producer.send_batch(batch, channel, partition=partition))
            batch = open_batches[partition] = producer.create_batch()
            batch.append(key=key, value=message.body, timestamp=None, headers=headers)
    for partition, batch in open_batches.items():
        batch.close()
        futures.append(await producer.send_batch(batch, channel, partition=partition))


def _key_headers(message: WireMessage) -> tuple[bytes | None, list[tuple[str, bytes]]]:
    """The record key and headers of `message`."""
    key = message.key.encode() if message.key is not None else None
    return key, [(k, v.encode()) for k, v in message.headers.items()]
