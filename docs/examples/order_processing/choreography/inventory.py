"""The inventory service (choreography): reserves stock for new orders, releases it when
payment is declined."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from eventwire import Delivery, EventBus

from docs.examples.order_processing._logic import Inventory, Ledger
from docs.examples.order_processing._runtime import main, publish_after
from docs.examples.order_processing.domain import (
    InventoryReleased,
    InventoryReservationFailed,
    InventoryReserved,
    OrderPlaced,
    PaymentDeclined,
)


class InventoryService:
    """Wires `Inventory` to the order and payment events."""

    def __init__(self, url: str = "memory://", inventory: Inventory | None = None) -> None:
        self.bus = bus = EventBus(url, source="inventory")
        self.inventory = stock = inventory or Inventory()
        bus.declare(InventoryReserved, InventoryReservationFailed, InventoryReleased)

        @bus.subscribe(
            OrderPlaced,
            group="inventory",
            idempotent=True,
            emits=[InventoryReserved, InventoryReservationFailed],
        )
        async def reserve(event: OrderPlaced, delivery: Delivery) -> None:
            outcome = stock.reserve(event.order_id, event.lines)
            if outcome["reserved"]:
                await publish_after(
                    bus,
                    InventoryReserved(
                        order_id=event.order_id,
                        reservation_id=outcome["reservation_id"],
                        customer_id=event.customer_id,
                        total=event.total,
                        currency=event.currency,
                    ),
                    delivery,
                )
            else:
                await publish_after(
                    bus,
                    InventoryReservationFailed(
                        order_id=event.order_id, missing_skus=outcome["missing"]
                    ),
                    delivery,
                )

        @bus.subscribe(
            PaymentDeclined, group="inventory", idempotent=True, emits=[InventoryReleased]
        )
        async def release(event: PaymentDeclined, delivery: Delivery) -> None:
            stock.release(event.order_id)
            await publish_after(bus, InventoryReleased(order_id=event.order_id), delivery)


bus = InventoryService().bus  # the wiring, for `eventwire flow` and `eventwire asyncapi`


def _build(options: argparse.Namespace) -> tuple[EventBus, Sequence[Any]]:
    return InventoryService(options.url, Inventory(Ledger(options.db))).bus, ()


if __name__ == "__main__":
    main("inventory", _build)
