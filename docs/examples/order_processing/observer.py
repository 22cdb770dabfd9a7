"""Watches the order flow from the outside: how each order ended, charges, releases."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable

from eventwire import EventBus

from docs.examples.order_processing.domain import (
    InventoryReleased,
    OrderCancelled,
    OrderCompleted,
    PaymentCharged,
)


class Observer:
    """Its own consumer group on the outcome channels (start it before placing orders)."""

    def __init__(self, url: str, group: str = "observer") -> None:
        self.bus = EventBus(url, source="observer")
        self.completed: set[str] = set()
        self.cancelled: dict[str, str] = {}
        self.payment_ids: dict[str, set[str]] = defaultdict(set)
        self.released: set[str] = set()
        self.finished_at: dict[str, float] = {}

        @self.bus.subscribe(OrderCompleted, group=group)
        async def completed(event: OrderCompleted) -> None:
            self.completed.add(event.order_id)
            self.finished_at.setdefault(event.order_id, time.perf_counter())

        @self.bus.subscribe(OrderCancelled, group=group)
        async def cancelled(event: OrderCancelled) -> None:
            self.cancelled[event.order_id] = event.reason
            self.finished_at.setdefault(event.order_id, time.perf_counter())

        @self.bus.subscribe(PaymentCharged, group=group)
        async def charged(event: PaymentCharged) -> None:
            self.payment_ids[event.order_id].add(event.payment_id)

        @self.bus.subscribe(InventoryReleased, group=group)
        async def released(event: InventoryReleased) -> None:
            self.released.add(event.order_id)

    def finished(self, ids: set[str]) -> bool:
        return ids <= (self.completed | set(self.cancelled))


async def wait_for(
    condition: Callable[[], bool], timeout: float = 10.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout}s")
        await asyncio.sleep(0.01)
