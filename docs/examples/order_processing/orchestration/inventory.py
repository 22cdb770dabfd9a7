"""The inventory service (orchestration): reserves and releases stock on command."""

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
    ReleaseInventory,
    ReserveInventory,
)


class InventoryService:
    """Answers ``ReserveInventory`` and ``ReleaseInventory`` with the saga's correlation id."""

    def __init__(self, url: str = "memory://", inventory: Inventory | None = None) -> None:
        self.bus = bus = EventBus(url, source="inventory")
        self.inventory = stock = inventory or Inventory()
        bus.declare(InventoryReserved, InventoryReservationFailed, InventoryReleased)

        @bus.subscribe(
            ReserveInventory,
            group="inventory",
            idempotent=True,
            emits=[InventoryReserved, InventoryReservationFailed],
        )
        async def reserve(command: ReserveInventory, delivery: Delivery) -> None:
            outcome = stock.reserve(command.order_id, command.lines)
            if outcome["reserved"]:
                await publish_after(
                    bus,
                    InventoryReserved(
                        order_id=command.order_id, reservation_id=outcome["reservation_id"]
                    ),
                    delivery,
                )
            else:
                await publish_after(
                    bus,
                    InventoryReservationFailed(
                        order_id=command.order_id, missing_skus=outcome["missing"]
                    ),
                    delivery,
                )

        @bus.subscribe(
            ReleaseInventory, group="inventory", idempotent=True, emits=[InventoryReleased]
        )
        async def release(command: ReleaseInventory, delivery: Delivery) -> None:
            stock.release(command.order_id)  # nothing reserved: nothing to give back
            await publish_after(bus, InventoryReleased(order_id=command.order_id), delivery)


bus = InventoryService().bus  # the wiring, for `eventwire flow` and `eventwire asyncapi`


def _build(options: argparse.Namespace) -> tuple[EventBus, Sequence[Any]]:
    return InventoryService(options.url, Inventory(Ledger(options.db))).bus, ()


if __name__ == "__main__":
    main("inventory", _build)
