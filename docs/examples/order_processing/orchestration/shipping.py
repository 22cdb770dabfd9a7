"""The shipping service (orchestration): ships an order on command."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from eventwire import Delivery, EventBus

from docs.examples.order_processing._logic import Ledger, Shipping
from docs.examples.order_processing._runtime import main, publish_after
from docs.examples.order_processing.domain import ItemShipped, ShipOrder


class ShippingService:
    """Answers ``ShipOrder`` with ``ItemShipped``."""

    def __init__(self, url: str = "memory://", shipping: Shipping | None = None) -> None:
        self.bus = bus = EventBus(url, source="shipping")
        self.shipping = parcels = shipping or Shipping()
        bus.declare(ItemShipped)

        @bus.subscribe(ShipOrder, group="shipping", idempotent=True, emits=[ItemShipped])
        async def ship(command: ShipOrder, delivery: Delivery) -> None:
            parcel = parcels.ship(command.order_id)
            await publish_after(
                bus,
                ItemShipped(
                    order_id=command.order_id,
                    carrier=parcel["carrier"],
                    tracking_number=parcel["tracking_number"],
                    shipped_at=datetime.now(UTC),
                ),
                delivery,
            )


bus = ShippingService().bus  # the wiring, for `eventwire flow` and `eventwire asyncapi`


def _build(options: argparse.Namespace) -> tuple[EventBus, Sequence[Any]]:
    return ShippingService(options.url, Shipping(Ledger(options.db))).bus, ()


if __name__ == "__main__":
    main("shipping", _build)
