"""Reading and purging a channel's stream outside any group (``browse``, ``purge_channel``)."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from eventwire.backend import WireMessage
from eventwire.errors import BackendUnavailableError

from eventwire_nats._topology import stream_name
from eventwire_nats._wire import decode_headers

__all__ = ["purge_stream", "read_stream"]


async def read_stream(
    js: Any, nc: Any, stream: str, limit: int, timeout: float
) -> list[WireMessage]:
    """Up to `limit` messages of `stream` from its start, read with an ephemeral consumer
    that acks nothing."""
    from nats.js import api

    info = await js.add_consumer(
        stream,
        api.ConsumerConfig(
            deliver_policy=api.DeliverPolicy.ALL,
            ack_policy=api.AckPolicy.NONE,
            inactive_threshold=30.0,
            mem_storage=True,
            num_replicas=1,
        ),
    )
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    out: list[WireMessage] = []
    subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{info.name}"
    try:
        while len(out) < limit:
            want = min(limit - len(out), 1000)
            request = json.dumps({"batch": want, "no_wait": True}).encode()
            await nc.publish(subject, request, reply=inbox)
            for _ in range(want):
                try:
                    msg = await sub.next_msg(timeout=timeout)
                except TimeoutError:
                    return out
                if not msg.reply and (msg.headers or {}).get("Status"):
                    return out  # no more messages
                out.append(WireMessage(msg.data, *decode_headers(msg.headers)))
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
        with contextlib.suppress(Exception):
            await js.delete_consumer(stream, info.name)
    return out


async def purge_stream(nc: Any, channel: str, timeout: float) -> int:
    """JetStream's ``STREAM.PURGE`` of `channel`'s stream: how many messages it removed
    (``0`` if there is no stream)."""
    subject = f"$JS.API.STREAM.PURGE.{stream_name(channel)}"
    reply = await nc.request(subject, b"{}", timeout=timeout)
    answer = json.loads(reply.data)
    error = answer.get("error")
    if error is None:
        return int(answer.get("purged", 0))
    if error.get("code") == 404:
        return 0
    raise BackendUnavailableError(
        f"purge {channel!r} failed: JetStream answered {error.get('description')!r}"
    )
