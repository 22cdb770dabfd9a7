"""The consume pipeline driven directly: a fake backend and hand-made inbound messages.

No broker and no bus: each test builds a `Consumer`, hands it `Inbound` objects as a backend
would, and looks at what it acked, dead-lettered and handed to the handler.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from eventwire import Delivery, Event, RetryPolicy
from eventwire.backend import Capabilities, WireMessage
from eventwire.codec import encode
from eventwire.deadletter import DeadLetter
from eventwire.envelope import Envelope
from eventwire.idempotency import MemoryIdempotencyStore
from eventwire.pipeline import Consumer, Route

pytestmark = pytest.mark.anyio


class Placed(Event, channel="orders", key="order_id"):
    order_id: str
    n: int = 0


class Other(Event, channel="orders", key="order_id"):
    order_id: str


class FakeBackend:
    """Records dead letters; the pipeline only publishes to ``<channel>.dlq``."""

    name = "fake"
    binding = "kafka"
    capabilities = Capabilities()
    url = "fake://"

    def __init__(self) -> None:
        self.published: list[tuple[str, WireMessage]] = []

    async def publish(self, channel: str, messages: Sequence[WireMessage]) -> None:
        self.published.extend((channel, m) for m in messages)

    def dead_letters(self) -> list[DeadLetter]:
        return [DeadLetter.from_wire(m) for c, m in self.published if c == "orders.dlq"]


class FakeInbound:
    def __init__(self, event: Event, delivery_count: int = 1, *, fail_acks: int = 0) -> None:
        envelope = Envelope.new(type=type(event).__eventwire__.type, source="test")
        wire = encode(event, envelope, "kafka")
        self.message = WireMessage(wire.body, wire.headers, event.message_key())
        self.delivery_count = delivery_count
        self.acks = 0
        self.fail_acks = fail_acks

    async def ack(self) -> None:
        if self.fail_acks:
            self.fail_acks -= 1
            raise ConnectionError("broker away")
        self.acks += 1


def consumer(
    handler: Any,
    *,
    retry: RetryPolicy | None = None,
    concurrency: int = 4,
    max_in_flight: int = 16,
    backend: FakeBackend | None = None,
) -> tuple[Consumer, FakeBackend]:
    backend = backend or FakeBackend()
    route = Route.for_handler(
        Placed,
        handler,
        retry=retry or RetryPolicy(max_attempts=3, backoff=0.001, jitter=0),
        dead_letter=True,
        idempotent=False,
    )
    made = Consumer(
        backend=backend,  # type: ignore[arg-type]  # the pipeline only publishes dead letters
        channel="orders",
        group="g",
        routes={Placed.__eventwire__.type: route},
        concurrency=concurrency,
        max_in_flight=max_in_flight,
        store=MemoryIdempotencyStore(),
    )
    return made, backend


async def settled(*inbounds: FakeInbound) -> None:
    for _ in range(2000):
        if all(i.acks for i in inbounds):
            return
        await asyncio.sleep(0.001)
    raise AssertionError("not every inbound was acked")


async def test_same_key_in_order_other_keys_in_parallel() -> None:
    log: list[str] = []
    gate = asyncio.Event()

    async def handle(event: Placed) -> None:
        log.append(f"start {event.order_id}{event.n}")
        if event.order_id == "a" and event.n == 0:
            await gate.wait()  # a0 blocks: a1 must wait, b0 must not
        log.append(f"end {event.order_id}{event.n}")

    pipe, _ = consumer(handle)
    a0, a1 = FakeInbound(Placed(order_id="a")), FakeInbound(Placed(order_id="a", n=1))
    b0 = FakeInbound(Placed(order_id="b"))
    for inbound in (a0, a1, b0):
        await pipe.on_message(inbound)
    await settled(b0)
    assert "start a1" not in log and a0.acks == a1.acks == 0
    gate.set()
    await settled(a0, a1)
    assert log.index("end a0") < log.index("start a1")


async def test_a_failing_handler_is_retried_in_place_then_dead_lettered() -> None:
    attempts: list[int] = []

    async def handle(event: Placed, delivery: Delivery) -> None:
        attempts.append(delivery.attempt)
        raise ValueError("boom")

    pipe, backend = consumer(handle)
    inbound = FakeInbound(Placed(order_id="a"))
    await pipe.on_message(inbound)
    await settled(inbound)
    assert attempts == [1, 2, 3]
    (letter,) = backend.dead_letters()
    assert (letter.reason, letter.attempts, letter.group) == ("max-attempts", 3, "g")


async def test_delivery_count_is_the_first_attempt_number() -> None:
    attempts: list[int] = []

    async def handle(event: Placed, delivery: Delivery) -> None:
        attempts.append(delivery.attempt)

    pipe, backend = consumer(handle)
    inbound = FakeInbound(Placed(order_id="a"), delivery_count=2)
    await pipe.on_message(inbound)
    await settled(inbound)
    assert attempts == [2] and backend.published == []


async def test_an_over_counted_delivery_goes_to_the_dead_letters_without_running() -> None:
    ran: list[Placed] = []

    async def handle(event: Placed) -> None:
        ran.append(event)

    pipe, backend = consumer(handle)
    inbound = FakeInbound(Placed(order_id="a"), delivery_count=4)  # max_attempts is 3
    await pipe.on_message(inbound)
    await settled(inbound)
    assert ran == []
    (letter,) = backend.dead_letters()
    assert (letter.reason, letter.attempts) == ("max-deliveries", 3)


async def test_undecodable_and_foreign_messages() -> None:
    async def handle(event: Placed) -> None:
        raise AssertionError("not for this handler")

    pipe, backend = consumer(handle)
    broken = FakeInbound(Placed(order_id="a"))
    broken.message = WireMessage(b"{", {"ce_id": "x"}, "a")
    foreign = FakeInbound(Other(order_id="b"))  # another type on the channel
    await pipe.on_message(broken)
    await pipe.on_message(foreign)
    await settled(broken, foreign)
    (letter,) = backend.dead_letters()
    assert letter.reason == "invalid"


async def test_backpressure_blocks_the_backend_at_max_in_flight() -> None:
    gate = asyncio.Event()

    async def handle(event: Placed) -> None:
        await gate.wait()

    pipe, _ = consumer(handle, max_in_flight=2)
    first, second, third = (FakeInbound(Placed(order_id=k)) for k in "abc")
    await pipe.on_message(first)
    await pipe.on_message(second)
    blocked = asyncio.create_task(pipe.on_message(third))
    await asyncio.sleep(0.05)
    assert not blocked.done() and pipe.in_flight == 2
    gate.set()
    await asyncio.wait_for(blocked, 5)
    await settled(first, second, third)


async def test_a_failed_ack_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("eventwire.pipeline.SETTLE_RETRY", 0.001)

    async def handle(event: Placed) -> None:
        pass

    pipe, _ = consumer(handle)
    inbound = FakeInbound(Placed(order_id="a"), fail_acks=2)
    await pipe.on_message(inbound)
    await settled(inbound)
    assert inbound.acks == 1


async def test_deliveries_arriving_while_draining_stay_unsettled() -> None:
    gate = asyncio.Event()
    handled: list[str] = []

    async def handle(event: Placed) -> None:
        handled.append(event.order_id)
        await gate.wait()

    pipe, _ = consumer(handle)
    running, queued, late = (FakeInbound(Placed(order_id=k)) for k in ("a", "a", "b"))
    await pipe.on_message(running)
    await pipe.on_message(queued)  # behind a, same key
    await asyncio.sleep(0.01)
    drain = asyncio.create_task(pipe.drain(5))
    await asyncio.sleep(0.01)
    await pipe.on_message(late)  # arrives while closing: not handled, not acked
    gate.set()
    await drain
    assert handled == ["a"]
    assert (running.acks, queued.acks, late.acks) == (1, 0, 0)
