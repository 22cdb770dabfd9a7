"""An inventory service and its broken twins, for `eventwire contracts test`.

`correct` honours `inventory.yaml`; each other bus has exactly one planted bug:

- `crashes_on_gbp`: the handler raises on a rare but valid enum member (currency GBP);
- `omits_field`: on the pickup branch it publishes a failure without the required ``reason``;
- `undeclared_channel`: it also publishes an audit event to a channel the contract lacks;
- `forgets_follow_up`: for pickup orders it publishes nothing, though ``x-eventwire-emits``
  promises InventoryReserved or InventoryReservationFailed;
- `lets_invalid_through`: its model takes any currency, so a message outside the contract's
  enum reaches the handler instead of the dead-letter channel.
"""

from __future__ import annotations

from typing import Literal

from eventwire import Delivery, Event, EventBus
from pydantic import Field


class OrderPlaced(Event, channel="orders", key="order_id"):
    """A customer placed an order."""

    order_id: str
    currency: Literal["EUR", "USD", "GBP"]
    shipping: Literal["standard", "express", "pickup"]
    quantity: int = Field(ge=1, le=50)


class LaxOrderPlaced(Event, channel="orders", key="order_id", type="OrderPlaced"):
    """OrderPlaced as a careless consumer models it: any currency."""

    order_id: str
    currency: str
    shipping: Literal["standard", "express", "pickup"]
    quantity: int = Field(ge=1, le=50)


class InventoryReserved(Event, channel="inventory", key="order_id"):
    """The stock of an order is reserved."""

    order_id: str
    reservation_id: str


class InventoryReservationFailed(Event, channel="inventory", key="order_id"):
    """The stock of an order could not be reserved."""

    order_id: str
    reason: str


class HalfReservationFailed(
    Event, channel="inventory", key="order_id", type="InventoryReservationFailed"
):
    """InventoryReservationFailed without its required reason."""

    order_id: str


class StockAudited(Event, channel="audit", key="order_id"):
    """Not in the contract."""

    order_id: str


def build(bug: str | None = None) -> EventBus:
    """The inventory service, with `bug` planted (None: the correct one)."""
    bus = EventBus("memory://", source="inventory")
    bus.declare(InventoryReserved, InventoryReservationFailed)
    model = LaxOrderPlaced if bug == "lets_invalid_through" else OrderPlaced

    @bus.subscribe(model, group="inventory", emits=[InventoryReserved, InventoryReservationFailed])
    async def reserve(event: OrderPlaced, delivery: Delivery) -> None:
        if bug == "crashes_on_gbp" and event.currency == "GBP":
            raise KeyError("no exchange rate for GBP")
        correlation = delivery.correlation_id
        if event.shipping == "pickup":
            if bug == "forgets_follow_up":
                return
            failed = (
                HalfReservationFailed(order_id=event.order_id)
                if bug == "omits_field"
                else InventoryReservationFailed(order_id=event.order_id, reason="no pickup point")
            )
            await bus.publish(failed, correlation_id=correlation, causation_id=delivery.id)
            return
        if bug == "undeclared_channel":
            await bus.publish(
                StockAudited(order_id=event.order_id),
                correlation_id=correlation,
                causation_id=delivery.id,
            )
        reserved = InventoryReserved(order_id=event.order_id, reservation_id=f"r-{event.order_id}")
        await bus.publish(reserved, correlation_id=correlation, causation_id=delivery.id)

    return bus


correct = build()
crashes_on_gbp = build("crashes_on_gbp")
omits_field = build("omits_field")
undeclared_channel = build("undeclared_channel")
forgets_follow_up = build("forgets_follow_up")
lets_invalid_through = build("lets_invalid_through")
