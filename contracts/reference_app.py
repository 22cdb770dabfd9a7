"""The order service of the reference domain: orders, inventory, payments, shipping.

The order service runs the order saga: it publishes ``OrderPlaced`` / ``OrderCancelled``,
sends the commands ``ReserveInventory``, ``ChargePayment`` and ``ShipOrder`` to the services
that own them, and reacts to their events. Its contract is ``contracts/order-service.v1.yaml``::

    eventwire asyncapi generate contracts/reference_app.py:bus -o order-service.yaml
    eventwire contracts diff contracts/order-service.v1.yaml order-service.yaml --mode full
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from eventwire import Command, Event, EventBus
from pydantic import BaseModel, ConfigDict, Field

Currency = Literal["EUR", "USD", "GBP"]


class OrderLine(BaseModel):
    """One line of an order."""

    model_config = ConfigDict(frozen=True)

    sku: str = Field(min_length=1, examples=["SKU-1042"])
    quantity: int = Field(ge=1, examples=[2])
    unit_price: Decimal = Field(ge=0, examples=["19.90"])


# -- orders ------------------------------------------------------------------------------------


class OrderPlaced(Event, channel="orders", key="order_id", version=1):
    """A customer placed an order."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "order_id": "ord-7f3a",
                    "customer_id": "cus-118",
                    "lines": [{"sku": "SKU-1042", "quantity": 2, "unit_price": "19.90"}],
                    "total": "39.80",
                    "currency": "EUR",
                    "placed_at": "2024-05-01T12:00:00Z",
                }
            ]
        }
    )

    order_id: str
    customer_id: str
    lines: list[OrderLine] = Field(min_length=1)
    total: Decimal = Field(ge=0)
    currency: Currency = "EUR"
    placed_at: datetime = Field(strict=True)  # an RFC 3339 string, never a number


class OrderCancelled(Event, channel="orders", key="order_id", version=1):
    """An order was cancelled; nothing more happens to it."""

    order_id: str
    reason: Literal["out-of-stock", "payment-declined", "customer-request"]


# -- inventory ---------------------------------------------------------------------------------


class ReserveInventory(Command, channel="inventory.commands", key="order_id", version=1):
    """Reserve the stock of an order's lines."""

    order_id: str
    lines: list[OrderLine] = Field(min_length=1)


class InventoryReserved(Event, channel="inventory", key="order_id", version=1):
    """The stock of every line of an order is reserved."""

    order_id: str
    reservation_id: str


class InventoryReservationFailed(Event, channel="inventory", key="order_id", version=1):
    """Some line of an order could not be reserved."""

    order_id: str
    missing_skus: list[str]


# -- payments ----------------------------------------------------------------------------------


class ChargePayment(Command, channel="payments.commands", key="order_id", version=1):
    """Charge the customer for an order."""

    order_id: str
    customer_id: str
    amount: Decimal = Field(ge=0)
    currency: Currency


class PaymentCharged(Event, channel="payments", key="order_id", version=1):
    """The customer was charged for an order."""

    order_id: str
    payment_id: str
    amount: Decimal = Field(ge=0)
    currency: Currency


class PaymentDeclined(Event, channel="payments", key="order_id", version=1):
    """The payment provider declined the charge."""

    order_id: str
    reason: str


# -- shipping ----------------------------------------------------------------------------------


class ShipOrder(Command, channel="shipping.commands", key="order_id", version=1):
    """Ship a paid order."""

    order_id: str
    reservation_id: str


class ItemShipped(Event, channel="shipping", key="order_id", version=1):
    """An order left the warehouse."""

    order_id: str
    carrier: str
    tracking_number: str
    shipped_at: datetime = Field(strict=True)


# -- the order service -------------------------------------------------------------------------

bus = EventBus("memory://", source="order-service")
bus.declare(OrderPlaced, OrderCancelled, ReserveInventory, ChargePayment, ShipOrder)


@bus.subscribe(InventoryReserved, group="order-service")
async def on_inventory_reserved(event: InventoryReserved) -> None:
    """Reserved: charge the customer."""


@bus.subscribe(InventoryReservationFailed, group="order-service")
async def on_reservation_failed(event: InventoryReservationFailed) -> None:
    """Out of stock: cancel the order."""


@bus.subscribe(PaymentCharged, group="order-service", idempotent=True)
async def on_payment_charged(event: PaymentCharged) -> None:
    """Paid: ship the order."""


@bus.subscribe(PaymentDeclined, group="order-service")
async def on_payment_declined(event: PaymentDeclined) -> None:
    """Declined: cancel the order."""


@bus.subscribe(ItemShipped, group="order-service")
async def on_item_shipped(event: ItemShipped) -> None:
    """Shipped: the saga is complete."""
