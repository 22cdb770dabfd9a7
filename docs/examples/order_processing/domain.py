"""The order domain: events and commands of the four services.

The messages of the reference contract (``contracts/order-service.v1.yaml``) come from
``contracts/reference_app.py``. Added here: the compensation messages (``ReleaseInventory``,
``InventoryReleased``, ``RefundPayment``, ``PaymentRefunded``) and ``OrderCompleted``; and two
evolutions of contract messages: ``InventoryReserved`` carries what payment needs (a "fat"
event, new optional fields: a compatible change) and ``OrderCancelled.reason`` is free text,
because a saga can also fail on a timeout, which the contract's three reasons do not name.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from eventwire import Command, Event
from pydantic import Field

from contracts.reference_app import (
    ChargePayment,
    InventoryReservationFailed,
    ItemShipped,
    OrderLine,
    OrderPlaced,
    PaymentCharged,
    PaymentDeclined,
    ReserveInventory,
    ShipOrder,
)

Currency = Literal["EUR", "USD", "GBP"]

__all__ = [
    "ChargePayment",
    "Currency",
    "InventoryReleased",
    "InventoryReservationFailed",
    "InventoryReserved",
    "ItemShipped",
    "OrderCancelled",
    "OrderCompleted",
    "OrderLine",
    "OrderPlaced",
    "PaymentCharged",
    "PaymentDeclined",
    "PaymentRefunded",
    "RefundPayment",
    "ReleaseInventory",
    "ReserveInventory",
    "ShipOrder",
]


# -- orders ------------------------------------------------------------------------------


class OrderCompleted(Event, channel="orders", key="order_id", version=1):
    """An order was reserved, paid and shipped."""

    order_id: str


class OrderCancelled(Event, channel="orders", key="order_id", version=1):
    """An order was cancelled; whatever was done for it has been undone."""

    order_id: str
    reason: str


# -- inventory ---------------------------------------------------------------------------


class ReleaseInventory(Command, channel="inventory.commands", key="order_id", version=1):
    """Give back what was reserved for an order (nothing if nothing was)."""

    order_id: str


class InventoryReserved(Event, channel="inventory", key="order_id", version=1):
    """The stock of every line of an order is reserved.

    It carries what payment needs (a "fat" event), so that the choreographed payment
    service can react to it without asking the order service.
    """

    order_id: str
    reservation_id: str
    customer_id: str = ""
    total: Decimal = Field(default=Decimal(0), ge=0)
    currency: Currency = "EUR"


class InventoryReleased(Event, channel="inventory", key="order_id", version=1):
    """The reservation of an order was given back."""

    order_id: str


# -- payments ----------------------------------------------------------------------------


class RefundPayment(Command, channel="payments.commands", key="order_id", version=1):
    """Refund what was charged for an order (nothing if nothing was)."""

    order_id: str


class PaymentRefunded(Event, channel="payments", key="order_id", version=1):
    """The charge of an order was refunded."""

    order_id: str


# -- shipping ----------------------------------------------------------------------------
