"""`Publisher`: the channel with publisher confirms, and publishing through it.

A publish waits for the broker's confirms; what a lost connection left unconfirmed is sent
again until ``publish_timeout``. A channel that leaves a publish unanswered (no confirm, no
error) is given up: the next publish opens a new one, the old one closes in the background.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import cast

import aiormq
from eventwire.errors import MessageTooLargeError, PublishError

from eventwire_rabbit._channels import close_channel
from eventwire_rabbit._wire import Outgoing

__all__ = ["Publisher"]

log = logging.getLogger("eventwire.rabbit")

#: The current AMQP connection, waiting at most the given seconds while it reconnects.
Amqp = Callable[[float | None], Awaitable[aiormq.abc.AbstractConnection]]


class Publisher:
    """Confirmed publishing on one backend's connection."""

    def __init__(self, amqp: Amqp, connected: Callable[[], bool], timeout: float) -> None:
        self._amqp = amqp
        self._connected = connected
        self._timeout = timeout
        self._channel: aiormq.Channel | None = None
        self._lock = asyncio.Lock()
        #: Closing channels that stopped answering (kept until closed).
        self._dropping: set[asyncio.Task[None]] = set()

    def forget(self) -> None:
        """The connection is gone: the next publish opens a new channel."""
        self._channel = None

    async def channel(self, deadline: float) -> aiormq.Channel:
        """The channel with publisher confirms, opened again after a reconnection."""
        channel = self._channel
        if channel is not None and not channel.is_closed:
            return channel
        async with self._lock:
            channel = self._channel
            if channel is None or channel.is_closed:
                amqp = await self._amqp(max(0.0, deadline - time.monotonic()))
                async with asyncio.timeout(max(0.05, deadline - time.monotonic())):
                    opened = await amqp.channel(publisher_confirms=True)
                channel = self._channel = cast(aiormq.Channel, opened)
            return channel

    def _drop(self, channel: aiormq.Channel) -> None:
        if self._channel is channel:
            self._channel = None
        task = asyncio.ensure_future(close_channel(channel))
        self._dropping.add(task)
        task.add_done_callback(self._dropping.discard)

    async def send(self, exchange: str, messages: Sequence[Outgoing]) -> None:
        """Publish `messages` to `exchange` and wait for the broker's confirms."""
        timeout = self._timeout
        deadline = time.monotonic() + timeout
        todo = list(messages)
        while todo:
            try:
                publisher = await self.channel(deadline)
            except TimeoutError as exc:
                raise PublishError(
                    f"RabbitMQ opened no publisher channel for {exchange!r} within {timeout:g}s "
                    "(option publish_timeout); nothing was sent"
                ) from exc
            try:
                async with asyncio.timeout(max(0.05, deadline - time.monotonic())):
                    results = await asyncio.gather(
                        *(
                            publisher.basic_publish(
                                body,
                                exchange=exchange,
                                routing_key=key,
                                properties=props,
                                wait=False,
                            )
                            for body, key, props in todo
                        ),
                        return_exceptions=True,
                    )
            except BaseException as exc:  # timed out, or the caller stopped waiting
                self._drop(publisher)
                if not isinstance(exc, TimeoutError):
                    raise
                raise self._unconfirmed(exchange, len(todo)) from exc
            todo = [m for m, r in zip(todo, results, strict=True) if _resend(exchange, r)]
            if todo:
                if not self._connected():
                    raise PublishError(
                        f"the backend closed before RabbitMQ confirmed {len(todo)} message(s) "
                        f"for {exchange!r}; they may not be stored"
                    )
                if time.monotonic() > deadline:
                    raise self._unconfirmed(exchange, len(todo))
                log.warning(
                    "eventwire: %d publish(es) to %s not confirmed (connection lost); "
                    "sending again",
                    len(todo),
                    exchange,
                )
                await asyncio.sleep(0.1)

    def _unconfirmed(self, exchange: str, count: int) -> PublishError:
        return PublishError(
            f"RabbitMQ did not confirm {count} message(s) for {exchange!r} within "
            f"{self._timeout:g}s (option publish_timeout); they may not be stored"
        )


def _resend(exchange: str, result: object) -> bool:
    """Whether a publish whose outcome is `result` must be sent again (the connection was
    lost); a refusal raises."""
    if not isinstance(result, BaseException):
        return False
    if isinstance(result, aiormq.exceptions.DeliveryError):
        raise PublishError(
            f"RabbitMQ refused a message for {exchange!r} (publisher confirm nack: a "
            "queue is full or unavailable); it was not stored"
        ) from result
    if isinstance(result, aiormq.exceptions.ChannelPreconditionFailed) or (
        "max size" in str(result)
    ):
        raise MessageTooLargeError(
            f"RabbitMQ refused a message for {exchange!r}: {result}"
        ) from result
    if isinstance(result, asyncio.CancelledError):
        raise result
    return True
