"""The order domain: events and commands of the four services.

Names, channels and fields follow the reference contract (``contracts/order-service.v1.yaml``);
the compensation messages (``ReleaseInventory``, ``InventoryReleased``, ``RefundPayment``,
``PaymentRefunded``) and ``OrderCompleted`` are added here.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from eventwire import Command, Event
from pydantic import BaseModel, ConfigDict, Field

Currency = Literal["EUR", "USD", "GBP"]


class OrderLine(BaseModel):
    """One line of an order."""

    model_config = ConfigDict(frozen=True)

    sku: str = Field(min_length=1)
    quantity: int = Field(ge=1)
    unit_price: Decimal = Field(ge=0)


# -- orders ------------------------------------------------------------------------------


class OrderPlaced(Event, channel="orders", key="order_id", version=1):
    """A customer placed an order."""

    order_id: str
    customer_id: str
    lines: list[OrderLine] = Field(min_length=1)
    total: Decimal = Field(ge=0)
    currency: Currency = "EUR"
    placed_at: datetime


class OrderCompleted(Event, channel="orders", key="order_id", version=1):
    """An order was reserved, paid and shipped."""

    order_id: str


class OrderCancelled(Event, channel="orders", key="order_id", version=1):
    """An order was cancelled; whatever was done for it has been undone."""

    order_id: str
    reason: str


# -- inventory ---------------------------------------------------------------------------


class ReserveInventory(Command, channel="inventory.commands", key="order_id", version=1):
    """Reserve the stock of an order's lines."""

    order_id: str
    lines: list[OrderLine] = Field(min_length=1)


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
    total: Decimal = Decimal(0)
    currency: Currency = "EUR"


class InventoryReservationFailed(Event, channel="inventory", key="order_id", version=1):
    """Some line of an order could not be reserved."""

    order_id: str
    missing_skus: list[str]


class InventoryReleased(Event, channel="inventory", key="order_id", version=1):
    """The reservation of an order was given back."""

    order_id: str


# -- payments ----------------------------------------------------------------------------


class ChargePayment(Command, channel="payments.commands", key="order_id", version=1):
    """Charge the customer for an order."""

    order_id: str
    customer_id: str
    amount: Decimal = Field(ge=0)
    currency: Currency


class RefundPayment(Command, channel="payments.commands", key="order_id", version=1):
    """Refund what was charged for an order (nothing if nothing was)."""

    order_id: str


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


class PaymentRefunded(Event, channel="payments", key="order_id", version=1):
    """The charge of an order was refunded."""

    order_id: str


# -- shipping ----------------------------------------------------------------------------


class ShipOrder(Command, channel="shipping.commands", key="order_id", version=1):
    """Ship a paid order."""

    order_id: str
    reservation_id: str


class ItemShipped(Event, channel="shipping", key="order_id", version=1):
    """An order left the warehouse."""

    order_id: str
    carrier: str
    tracking_number: str
    shipped_at: datetime
