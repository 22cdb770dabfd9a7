"""`eventwire.testing.TestBus`: the real pipeline on a fresh broker, waiting for effects."""

from __future__ import annotations

import asyncio

import pytest
from eventwire import Delivery, Event, EventBus, NonRetryableError, RetryPolicy
from eventwire.errors import ConfigurationError
from eventwire.testing import NotSettledError, TestBus

pytestmark = pytest.mark.anyio


class OrderPlaced(Event, channel="tb-orders", key="order_id"):
    order_id: str
    total: int = 1


class StockReserved(Event, channel="tb-stock", key="order_id"):
    order_id: str


class OrderShipped(Event, channel="tb-shipping", key="order_id"):
    order_id: str
    carrier: str


def _services() -> tuple[EventBus, EventBus, dict[str, list[str]]]:
    """Two services in a chain: placed -> reserved (inventory) -> shipped (shipping)."""
    seen: dict[str, list[str]] = {"reserve": [], "ship": []}
    inventory = EventBus(source="inventory")
    shipping = EventBus(source="shipping")

    @inventory.subscribe(OrderPlaced, group="inventory")
    async def reserve(event: OrderPlaced, delivery: Delivery) -> None:
        await asyncio.sleep(0.01)  # the publisher must not see it return before this
        seen["reserve"].append(event.order_id)
        await inventory.publish(
            StockReserved(order_id=event.order_id),
            correlation_id=delivery.correlation_id,
            causation_id=delivery.id,
        )

    @shipping.subscribe(StockReserved, group="shipping")
    async def ship(event: StockReserved, delivery: Delivery) -> None:
        await asyncio.sleep(0.01)
        seen["ship"].append(event.order_id)
        await shipping.publish(
            OrderShipped(order_id=event.order_id, carrier="dhl"),
            correlation_id=delivery.correlation_id,
            causation_id=delivery.id,
        )

    return inventory, shipping, seen


async def test_publish_returns_after_the_event_and_everything_it_caused_settled() -> None:
    inventory, shipping, seen = _services()

    async with TestBus(inventory, shipping) as tb:
        placed = await tb.publish(OrderPlaced(order_id="o-1"), correlation_id="req-1")
        assert seen == {"reserve": ["o-1"], "ship": ["o-1"]}
        assert [p.type for p in tb.published] == [
            "OrderPlaced",
            "StockReserved",
            "OrderShipped",
        ]
        first, reserved, shipped = tb.published
        assert first.id == placed.id
        assert first.channel == "tb-orders"
        assert first.payload == {"order_id": "o-1", "total": 1}
        assert first.event == OrderPlaced(order_id="o-1")
        assert (reserved.source, shipped.source) == ("inventory", "shipping")
        assert reserved.causation_id == placed.id
        assert shipped.causation_id == reserved.id
        assert {p.correlation_id for p in tb.published} == {"req-1"}
        assert tb.assert_published(OrderShipped, order_id="o-1", carrier="dhl") is shipped


def test_the_same_bus_serves_test_after_test_each_on_a_fresh_broker() -> None:
    inventory, shipping, seen = _services()
    original = inventory.backend
    original_store = inventory.idempotency_store

    async def session(order_id: str) -> list[str]:
        async with TestBus(inventory, shipping) as tb:
            await tb.publish(OrderPlaced(order_id=order_id))
            return [p.event.order_id for p in tb.published_of(OrderShipped)]  # type: ignore[attr-defined]

    # each session in an event loop of its own, as in test after test: nothing may carry over
    assert asyncio.run(session("a")) == ["a"]
    assert asyncio.run(session("b")) == ["b"]  # nothing of the first session leaks in
    assert seen["ship"] == ["a", "b"]
    assert inventory.backend is original  # put back, never connected
    assert inventory.idempotency_store is original_store
    assert inventory.middlewares == []
    assert repr(inventory).endswith("state='new')")


async def test_a_bus_that_already_runs_is_refused() -> None:
    bus = EventBus(source="running")

    async with bus:
        with pytest.raises(ConfigurationError, match="already started"):
            async with TestBus(bus):
                pass


async def test_raise_handler_errors_raises_in_the_test_instead_of_retrying() -> None:
    bus = EventBus(source="failing")

    @bus.subscribe(OrderPlaced, group="billing", retry=RetryPolicy(max_attempts=5, backoff=5))
    async def bill(event: OrderPlaced) -> None:
        raise ValueError(f"cannot bill {event.order_id}")

    async with TestBus(bus, raise_handler_errors=True) as tb:
        with pytest.raises(ValueError, match="cannot bill o-9"):
            await tb.publish(OrderPlaced(order_id="o-9"))
        [call] = tb.calls(bill)
        assert (call.outcome, call.attempt, type(call.error)) == ("dead_letter", 1, ValueError)
        [letter] = await tb.dead_letters(OrderPlaced)
        assert letter.error_type == "ValueError"


async def test_without_raise_the_real_retry_policy_runs_and_calls_are_recorded() -> None:
    bus = EventBus(source="retrying")
    attempts: list[int] = []

    @bus.subscribe(OrderPlaced, group="billing", retry=RetryPolicy(max_attempts=3, backoff=0.01))
    async def bill(event: OrderPlaced, delivery: Delivery) -> None:
        attempts.append(delivery.attempt)
        if event.order_id == "bad":
            raise ValueError("no")
        if event.order_id == "reject":
            raise NonRetryableError("never", reason="rejected")

    async with TestBus(bus) as tb:
        await tb.publish(OrderPlaced(order_id="bad"))
        assert [c.outcome for c in tb.calls(bill)] == ["retry", "retry", "dead_letter"]
        await tb.publish(OrderPlaced(order_id="reject"))
        await tb.publish(OrderPlaced(order_id="ok"))
        assert [c.outcome for c in tb.calls(bill)][3:] == ["dead_letter", "ack"]
        assert tb.calls(bill)[-1].error is None
        reasons = [d.reason for d in await tb.dead_letters()]
        assert reasons == ["max-attempts", "rejected"]
    assert attempts == [1, 2, 3, 1, 1]


async def test_assert_published_explains_what_differs() -> None:
    bus = EventBus(source="shop")

    async with TestBus(bus) as tb:
        await tb.publish(OrderShipped(order_id="o-1", carrier="ups"))
        await tb.publish(OrderShipped(order_id="o-2", carrier="dhl"))
        with pytest.raises(AssertionError) as info:
            tb.assert_published(OrderShipped, order_id="o-1", carrier="dhl")
        text = str(info.value)
        assert "expected OrderShipped(order_id='o-1', carrier='dhl')" in text
        assert "#1: carrier: got 'ups', expected 'dhl'" in text
        assert "#2: order_id: got 'o-2', expected 'o-1'" in text
        with pytest.raises(AssertionError, match="no OrderPlaced was published; published: "):
            tb.assert_published(OrderPlaced)
        with pytest.raises(AssertionError, match="exactly 1 time"):
            tb.assert_published(OrderShipped, count=1)
        tb.assert_published(OrderShipped, count=2)
        with pytest.raises(AssertionError, match="expected no OrderShipped"):
            tb.assert_not_published(OrderShipped, carrier="ups")


async def test_a_stuck_handler_times_out_naming_what_is_pending() -> None:
    bus = EventBus(source="stuck", close_timeout=0.05)

    @bus.subscribe(OrderPlaced, group="slowpoke")
    async def wait_forever(event: OrderPlaced) -> None:
        await asyncio.sleep(3600)

    session = TestBus(bus, timeout=0.2)
    tb = await session.__aenter__()
    with pytest.raises(NotSettledError) as info:
        await tb.publish(OrderPlaced(order_id="o-5"))
    text = str(info.value)
    assert "tb-orders / group slowpoke: 1 message(s) unsettled" in text
    assert "wait_forever(OrderPlaced id=" in text
    assert "attempt 1) -> running" in text
    with pytest.raises(NotSettledError, match="slowpoke"):  # leaving it unsettled fails too
        await session.__aexit__(None, None, None)


async def test_injected_bad_input_is_dead_lettered_as_invalid() -> None:
    bus = EventBus(source="poison")
    handled: list[str] = []

    @bus.subscribe(OrderPlaced, group="strict")
    async def handle(event: OrderPlaced) -> None:
        handled.append(event.order_id)

    async with TestBus(bus) as tb:
        headers = {
            "ce_id": "x1",
            "ce_type": "OrderPlaced",
            "ce_source": "t",
            "ce_specversion": "1.0",
        }
        await tb.inject(OrderPlaced, b'{"order_id": 5', headers)
        await tb.inject("tb-orders", b"not even headers")
        letters = await tb.dead_letters(OrderPlaced)
        assert [d.reason for d in letters] == ["invalid", "invalid"]
        assert tb.calls(handle) == []
    assert handled == []


async def test_testbus_needs_buses_and_an_active_session() -> None:
    with pytest.raises(ConfigurationError, match="at least one EventBus"):
        TestBus()
    bus = EventBus(source="x")
    with pytest.raises(ConfigurationError, match="same bus twice"):
        TestBus(bus, bus)
    with pytest.raises(ConfigurationError, match="needs an active session"):
        await TestBus(bus).settled()


async def test_skip_backoff_keeps_the_attempts_but_not_the_waits() -> None:
    bus = EventBus(source="patient")

    @bus.subscribe(OrderPlaced, group="billing", retry=RetryPolicy(max_attempts=3, backoff=10))
    async def bill(event: OrderPlaced) -> None:
        raise ValueError("down")

    async with TestBus(bus, skip_backoff=True, timeout=5) as tb:
        await tb.publish(OrderPlaced(order_id="o-1"))
        assert [c.outcome for c in tb.calls(bill)] == ["retry", "retry", "dead_letter"]
