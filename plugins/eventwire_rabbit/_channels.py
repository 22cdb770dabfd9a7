"""AMQP channels: closing one quietly, and a channel whose round trips are bounded."""

from __future__ import annotations

import functools
from typing import Any

import aiormq
from eventwire.backendkit import quietly

__all__ = ["Bounded", "close_channel"]


async def close_channel(channel: aiormq.abc.AbstractChannel | None) -> None:
    """Close `channel` if it is open, ignoring trouble (it is going away either way)."""
    if channel is not None and not channel.is_closed:
        await quietly(channel.close(), "rabbit channel close")


#: The round trips of a declaration channel that `Bounded` gives a timeout.
_ROUND_TRIPS = frozenset(
    {
        "basic_cancel",
        "basic_consume",
        "basic_get",
        "basic_qos",
        "exchange_bind",
        "exchange_declare",
        "exchange_delete",
        "exchange_unbind",
        "queue_bind",
        "queue_declare",
        "queue_delete",
        "queue_purge",
        "queue_unbind",
    }
)


class Bounded:
    """`channel` with `timeout` on every declaration and query (aiormq takes a timeout per
    call and waits for ever without one): a broker that stops answering fails the call
    with `TimeoutError` instead of hanging it. Everything else is the channel's own."""

    def __init__(self, channel: aiormq.abc.AbstractChannel, timeout: float) -> None:
        self._channel = channel
        self._timeout = timeout

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._channel, name)
        if name in _ROUND_TRIPS:
            return functools.partial(attr, timeout=self._timeout)
        return attr
