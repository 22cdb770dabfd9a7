"""`resend_unconfirmed`: a publish that sends again what the broker did not confirm.

A broker that confirms each message (RabbitMQ's publisher confirms, JetStream's PubAcks)
leaves a publisher with a remainder after a lost connection: the messages whose confirm
never came. Sending that remainder again, until a deadline, is what makes ``publish``
return only once every message is stored (G15) while the broker restarts (G16); the
consumers' deduplication by event id (or the broker's, by message id) absorbs a message
stored twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

__all__ = ["resend_unconfirmed"]

T = TypeVar("T")


async def resend_unconfirmed(
    send: Callable[[list[T], float], Awaitable[list[T]]],
    items: Sequence[T],
    *,
    timeout: float,
    give_up: Callable[[list[T]], BaseException],
    before_resend: Callable[[list[T]], object] = lambda _: None,
    pause: float = 0.1,
) -> None:
    """Send `items`, then the unconfirmed ones again, until all are confirmed.

    :param send: sends a round and returns the items whose confirm did not come (it raises
        for a message the broker refused: that one must not be sent again); it gets the
        round's items and the deadline (a `time.monotonic` reading) to bound its waits.
    :param timeout: seconds from now until the last round; then `give_up` is raised.
    :param give_up: the error (a `eventwire.errors.PublishError`) for what stays unconfirmed.
    :param before_resend: called with the remainder before each pause (to log it).
    :param pause: seconds between rounds.
    """
    deadline = time.monotonic() + timeout
    todo = list(items)
    while todo:
        todo = await send(todo, deadline)
        if not todo:
            return
        if time.monotonic() >= deadline:
            raise give_up(todo)
        before_resend(todo)
        await asyncio.sleep(pause)
