"""What a member read and never handed to its handler is not counted as delivered.

A member stopped under backpressure (its handler busy, a batch read ahead) gives back what
it read: the next member gets those events as first deliveries. A backend that counts them
as delivered sends them to the dead-letter queue an attempt early (`docs/backend-authors.md`,
"delivery_count"). Kafka leaves them out of the delivery record it commits on close; Redis
sets their pending counts back (``XCLAIM ... RETRYCOUNT``); the embedded backends keep their
own counts. NATS JetStream and RabbitMQ quorum queues count every delivery on the server and
cannot take one back: there the next member sees them once more (NATS fetches no more than
the pipeline has room for; RabbitMQ's prefetch is `docs/backends/rabbit.md`'s business).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from eventwire.backend import Inbound, SubscriptionSpec, WireMessage
from eventwire.plugins import create_backend

from tests.backends._base import namer, wait_until
from tests.backends.test_conformance_matrix import TARGETS

pytestmark = pytest.mark.anyio

#: The delivery count of an event given up once, by backend.
GIVEN_UP_COUNT = {"kafka": 1, "redis": 1, "nats": 2, "rabbit": 2, "memory": 1, "sqlite": 1}
BACKENDS = [
    *(pytest.param(name, marks=pytest.mark.broker) for name in sorted(TARGETS)),
    "memory",
    "sqlite",
]


@pytest.mark.parametrize("name", BACKENDS)
async def test_what_a_stop_keeps_from_the_handler_is_not_counted_as_delivered(
    name: str, tmp_path: Path
) -> None:
    if name in TARGETS:
        url = TARGETS[name]
        unique = namer(name, url)
        channel, group = unique("given-up"), unique("grp")
    else:  # a broker of the test's own
        url = {"memory": "memory://given-up", "sqlite": f"sqlite://{tmp_path / 'a.db'}"}[name]
        channel, group = "orders", "g"
    first, second = create_backend(url), create_backend(url)
    await first.connect()
    await second.connect()
    taken: list[bytes] = []
    blocked = asyncio.Event()

    async def backpressure(inbound: Inbound) -> None:
        # like the pipeline with max_in_flight=1: takes one, then blocks the backend
        if taken:
            blocked.set()
            await asyncio.Event().wait()
        taken.append(inbound.message.body)

    got: list[tuple[bytes, int]] = []

    async def record(inbound: Inbound) -> None:
        got.append((inbound.message.body, inbound.delivery_count))
        await inbound.ack()

    try:
        spec = SubscriptionSpec(channel, group, from_beginning=True)
        subscription = await first.subscribe(spec, backpressure)
        await first.publish(channel, [WireMessage(b"%d" % i, {}, "k") for i in range(5)])
        await wait_until(blocked.is_set, "the handler blocked on the second event")
        await subscription.stop()  # the blocked call is cancelled; four were never handled
        await first.close()
        await second.subscribe(spec, record)
        await wait_until(lambda: len(got) >= 5, "every event delivered again")
    finally:
        await second.close()
    again = GIVEN_UP_COUNT[name]
    assert got == [(b"0", 2), (b"1", again), (b"2", again), (b"3", again), (b"4", again)]
