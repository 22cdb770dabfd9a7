"""Startup and shutdown hooks, and what a closing bus still allows."""

from __future__ import annotations

import asyncio

import pytest
from eventwire import ConfigurationError, Event, EventBus

from ._helpers import memory_url, wait_for

pytestmark = pytest.mark.anyio


class Placed(Event, channel="life-orders", key="order_id"):
    order_id: str


class Billed(Event, channel="life-bills", key="order_id"):
    order_id: str


async def test_hooks_run_in_order_around_consuming() -> None:
    steps: list[str] = []
    bus = EventBus(memory_url(), source="life")

    @bus.on_startup
    async def connect_db() -> None:
        steps.append(f"startup db ready={bus.ready}")
        await bus.publish(Placed(order_id="from-startup"))  # connected: may publish

    @bus.on_startup
    def warm_cache() -> None:
        steps.append("startup cache")

    @bus.on_shutdown
    async def close_db() -> None:
        steps.append(f"shutdown db state={bus.state}")

    @bus.on_shutdown
    def drop_cache() -> None:
        steps.append("shutdown cache")

    @bus.subscribe(Placed, group="g", from_beginning=True)
    async def handle(event: Placed) -> None:
        steps.append(f"handled {event.order_id}")

    async with bus:
        assert bus.ready
        await wait_for(lambda: "handled from-startup" in steps)
    assert not bus.ready
    assert steps == [
        "startup db ready=False",
        "startup cache",
        "handled from-startup",
        "shutdown cache",
        "shutdown db state=draining",
    ]


async def test_a_failing_startup_hook_stops_the_start_and_skips_the_shutdown_hooks() -> None:
    steps: list[str] = []
    bus = EventBus(memory_url(), source="life")

    @bus.on_startup
    def fails() -> None:
        raise RuntimeError("database unreachable")

    @bus.on_shutdown
    def never() -> None:
        steps.append("shutdown")

    with pytest.raises(RuntimeError, match="database unreachable"):
        await bus.start()
    assert bus.state == "closed"
    assert steps == []


async def test_a_failing_shutdown_hook_still_closes_and_is_raised() -> None:
    bus = EventBus(memory_url(), source="life")
    later: list[str] = []

    @bus.on_shutdown
    def second() -> None:
        later.append("ran")

    @bus.on_shutdown
    def first() -> None:
        raise RuntimeError("flush failed")

    await bus.start()
    with pytest.raises(RuntimeError, match="flush failed"):
        await bus.close()
    assert bus.state == "closed"
    assert later == ["ran"]


def test_hooks_must_be_functions_without_arguments() -> None:
    bus = EventBus(memory_url())
    with pytest.raises(ConfigurationError, match="must take no arguments"):

        @bus.on_startup  # type: ignore[type-var]
        def needs(app: object) -> None: ...

    with pytest.raises(ConfigurationError, match="takes a function"):
        bus.on_shutdown(42)  # type: ignore[type-var]


async def test_a_handler_still_running_when_the_bus_closes_can_publish_its_follow_up() -> None:
    bus = EventBus(memory_url(), source="life")
    release: list[asyncio.Event] = []
    billed: list[str] = []

    @bus.subscribe(Placed, group="billing")
    async def bill(event: Placed) -> None:
        gate = asyncio.Event()
        release.append(gate)
        await gate.wait()
        await bus.publish(Billed(order_id=event.order_id))  # during the drain

    @bus.subscribe(Billed, group="audit", from_beginning=True)
    async def audit(event: Billed) -> None:
        billed.append(event.order_id)

    await bus.start()
    await bus.publish(Placed(order_id="o-1"))
    await wait_for(lambda: bool(release))
    closing = asyncio.create_task(bus.close())
    await wait_for(lambda: bus.state == "draining")
    release[0].set()
    await closing
    assert bus.state == "closed"
    async with bus:  # the follow-up was stored: a restart delivers it
        await wait_for(lambda: billed == ["o-1"])
