"""Producers and consumers written outside eventwire, on every real broker.

- a FastStream 0.7 publisher -> an eventwire subscriber (``accept=PlainJSON()``);
- an eventwire publisher -> a FastStream subscriber with FastStream's default settings and
  the same pydantic model (not on Redis: see docs/migrating-from-faststream.md);
- the `cloudevents` SDK in structured mode -> an eventwire subscriber
  (``accept=CloudEventsJSON()``);
- a raw client publishing plain JSON -> an eventwire subscriber, whose idempotency store
  recognises the redelivery after a member went away between effect and ack.

Every invalid message goes to the dead-letter channel with reason ``invalid`` and a detail
naming the field; no handler ever sees it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from cloudevents.core.v1.event import CloudEvent
from eventwire import Claim, CloudEventsJSON, Delivery, Event, EventBus, PlainJSON
from eventwire.deadletter import DeadLetter
from eventwire.idempotency import MemoryIdempotencyStore
from eventwire_conformance.suite.test_idempotency import Ledger, RecordingStore

from tests.interop._sides import SIDES, Side, unique

pytestmark = [pytest.mark.broker, pytest.mark.anyio]

BROKERS = sorted(SIDES)


class OrderPlacedBase(Event):
    order_id: str
    total: int


def order_model(channel: str) -> type[OrderPlacedBase]:
    class OrderPlaced(OrderPlacedBase, channel=channel, key="order_id"):
        pass

    return OrderPlaced


async def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def dead_letters(bus: EventBus, channel: str, count: int) -> list[DeadLetter]:
    deadline = time.monotonic() + 30
    while True:
        found = await bus.dead_letters(channel)
        if len(found) >= count or time.monotonic() > deadline:
            assert len(found) == count, f"expected {count} dead letters, got {len(found)}"
            return found
        await asyncio.sleep(0.05)


@pytest.fixture(params=BROKERS)
def side(request: pytest.FixtureRequest) -> Side:
    return SIDES[request.param]


async def test_a_faststream_publisher_reaches_an_eventwire_subscriber(side: Side) -> None:
    channel = unique(side.name)
    model = order_model(channel)
    bus = EventBus(side.url, source="billing")
    handled: list[tuple[Any, Delivery]] = []

    @bus.subscribe(model, group=unique("grp"), accept=PlainJSON(source="faststream-shop"))
    async def bill(event: OrderPlacedBase, delivery: Delivery) -> None:
        handled.append((event, delivery))

    async with bus:
        await side.faststream_publish(
            channel, model(order_id="o-1", total=3), correlation_id="req-" + channel
        )
        # The same producer, a payload the model refuses (a string where an int belongs).
        await side.faststream_publish(channel, {"order_id": "o-2", "total": "lots"})  # type: ignore[arg-type]
        await wait_for(lambda: len(handled) == 1, "the FastStream event to be handled")
        [letter] = await dead_letters(bus, channel, 1)
    event, delivery = handled[0]
    assert event == model(order_id="o-1", total=3)
    assert delivery.envelope.correlationid == "req-" + channel
    assert delivery.envelope.source == "faststream-shop"
    assert delivery.envelope.type == model.__eventwire__.type
    if side.name == "rabbit":  # aiormq's random message_id (32 hex digits) on every publish
        assert len(delivery.envelope.id) == 32, delivery.envelope.id
    else:  # the broker position
        assert channel in delivery.envelope.id, delivery.envelope.id
    assert letter.reason == "invalid"
    assert "total" in letter.error and "not a valid OrderPlaced" in letter.error


@pytest.mark.parametrize("broker", [b for b in BROKERS if b != "redis"])
async def test_an_eventwire_publisher_reaches_a_faststream_subscriber(broker: str) -> None:
    side = SIDES[broker]
    channel = unique(side.name)
    model = order_model(channel)
    bus = EventBus(side.url, source="shop")
    sent = model(order_id="o-1", total=7)
    async with bus:
        if side.name == "rabbit":  # an exchange keeps nothing: bind the queue first
            async with side.faststream_consumer(channel, model) as got:
                await bus.publish(sent)
                received = await asyncio.wait_for(got.get(), 30)
        else:  # the topic / stream keeps it: FastStream reads from the start
            await bus.publish(sent)
            async with side.faststream_consumer(channel, model) as got:
                received = await asyncio.wait_for(got.get(), 30)
    assert received == sent


async def test_a_cloudevents_sdk_structured_producer_reaches_an_eventwire_subscriber(
    side: Side,
) -> None:
    channel = unique(side.name)
    model = order_model(channel)
    bus = EventBus(side.url, source="billing")
    handled: list[tuple[Any, Delivery]] = []

    @bus.subscribe(model, group=unique("grp"), accept=CloudEventsJSON())
    async def bill(event: OrderPlacedBase, delivery: Delivery) -> None:
        handled.append((event, delivery))

    async with bus:
        event = CloudEvent(
            attributes={
                "type": model.__eventwire__.type,
                "source": "/legacy/shop",
                "id": "ce-" + channel,
                "correlationid": "req-9",
            },
            data={"order_id": "o-1", "total": 4},
        )
        await side.structured_publish(channel, event)
        bad = {"specversion": "1.0", "id": "x", "type": model.__eventwire__.type}
        await side.structured_publish(channel, {**bad, "data": {"order_id": "o", "total": 1}})
        await wait_for(lambda: len(handled) == 1, "the structured CloudEvent to be handled")
        [letter] = await dead_letters(bus, channel, 1)
    got, delivery = handled[0]
    assert got == model(order_id="o-1", total=4)
    assert (delivery.envelope.id, delivery.envelope.source) == ("ce-" + channel, "/legacy/shop")
    assert delivery.envelope.correlationid == "req-9"
    assert letter.reason == "invalid"
    assert "missing required attribute(s) 'source'" in letter.error


async def test_a_raw_client_redelivery_is_recognised_by_the_idempotency_store(
    side: Side,
) -> None:
    channel = unique(side.name)
    model = order_model(channel)
    group = unique("grp")
    ledger = Ledger()
    store = RecordingStore(MemoryIdempotencyStore(), ledger)
    effects: list[str] = []
    first = EventBus(side.url, source="billing", idempotency_store=store, close_timeout=0.3)
    second = EventBus(side.url, source="billing", idempotency_store=store)
    for bus in (first, second):

        @bus.subscribe(model, group=group, idempotent=True, accept=PlainJSON())
        async def bill(event: OrderPlacedBase, delivery: Delivery) -> None:
            effects.append(delivery.envelope.id)

    headers = {"content-type": "application/json"}
    if side.name == "rabbit":  # a queue has no position: the producer's message id
        headers["message_id"] = "m-" + channel
    await first.start()
    try:
        ledger.stall = True
        await side.raw_publish(channel, {"order_id": "o-1", "total": 3}, headers)
        await wait_for(lambda: len(ledger.completed) == 1, "the first handling")
    finally:
        # The effect ran and was recorded, but the member goes away before it acks.
        await first.close()
    ledger.stall = False
    [event_id] = effects
    async with second:
        await wait_for(
            lambda: ledger.count(event_id, Claim.DONE) >= 1,
            "the broker to redeliver the unacked message to the next member",
        )
    assert effects == [event_id], "the redelivered message ran the effect again"
    if side.name == "rabbit":
        assert event_id == "m-" + channel
    else:  # the broker position: topic/partition/offset, stream/entry, stream/sequence
        assert channel in event_id, event_id


async def test_raw_client_bad_inputs_are_dead_lettered_naming_the_field(side: Side) -> None:
    channel = unique(side.name)
    model = order_model(channel)
    bus = EventBus(side.url, source="billing")
    handled: list[Any] = []
    accept = PlainJSON(type_field="kind")

    @bus.subscribe(model, group=unique("grp"), accept=accept)
    async def bill(event: OrderPlacedBase) -> None:
        handled.append(event)

    headers = {"content-type": "application/json", "message_id": "m-" + channel}
    async with bus:
        kind = model.__eventwire__.type
        await side.raw_publish(
            channel, {"kind": "OrderShipped", "order_id": "o", "total": 1}, headers
        )
        await side.raw_publish(channel, {"order_id": "o", "total": 1}, headers)
        await side.raw_publish(channel, {"kind": kind, "order_id": "o-1", "total": 2}, headers)
        await wait_for(lambda: len(handled) == 1, "the valid message to be handled")
        letters = await dead_letters(bus, channel, 2)
    assert handled == [model(order_id="o-1", total=2)]
    errors = sorted(letter.error for letter in letters)
    assert all(letter.reason == "invalid" for letter in letters)
    assert "field 'kind' is 'OrderShipped'" in errors[0]
    assert "no field 'kind'" in errors[1]
