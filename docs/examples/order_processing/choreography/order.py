"""The order service (choreography): takes orders, follows their fate from the others' events."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from eventwire import Delivery, EventBus

from docs.examples.order_processing._runtime import main, publish_after
from docs.examples.order_processing.domain import (
    InventoryReservationFailed,
    ItemShipped,
    OrderCancelled,
    OrderCompleted,
    OrderPlaced,
    PaymentDeclined,
)


class OrderService:
    """Places orders and records how each one ended (``placed``, ``completed``, ``cancelled``)."""

    def __init__(self, url: str = "memory://") -> None:
        self.bus = bus = EventBus(url, source="order")
        self.status: dict[str, str] = {}
        bus.declare(OrderPlaced, OrderCompleted, OrderCancelled)

        @bus.subscribe(ItemShipped, group="order", idempotent=True)
        async def complete(event: ItemShipped, delivery: Delivery) -> None:
            await self._finish(OrderCompleted(order_id=event.order_id), delivery)

        @bus.subscribe(InventoryReservationFailed, group="order", idempotent=True)
        async def out_of_stock(event: InventoryReservationFailed, delivery: Delivery) -> None:
            await self._finish(
                OrderCancelled(order_id=event.order_id, reason="out-of-stock"), delivery
            )

        @bus.subscribe(PaymentDeclined, group="order", idempotent=True)
        async def declined(event: PaymentDeclined, delivery: Delivery) -> None:
            await self._finish(
                OrderCancelled(order_id=event.order_id, reason="payment-declined"), delivery
            )

    async def place(self, order: OrderPlaced) -> None:
        """Publish `order`; its id is the correlation id of everything that follows."""
        self.status.setdefault(order.order_id, "placed")
        await self.bus.publish(order, correlation_id=order.order_id)

    async def _finish(self, event: OrderCompleted | OrderCancelled, cause: Delivery) -> None:
        if self.status.get(event.order_id) in ("completed", "cancelled"):
            return
        await publish_after(self.bus, event, cause)
        done = "completed" if isinstance(event, OrderCompleted) else "cancelled"
        self.status[event.order_id] = done


bus = OrderService().bus  # the wiring, for `eventwire flow` and `eventwire asyncapi`


def _build(options: argparse.Namespace) -> tuple[EventBus, Sequence[Any]]:
    return OrderService(options.url).bus, ()


if __name__ == "__main__":
    main("order", _build)
