"""All four services of one version in one process, on one broker URL (tests, benchmarks).

::

    async with build("orchestration", "memory://") as system:
        await system.place(make_order(1))
"""

from __future__ import annotations

import contextlib
import dataclasses
from datetime import UTC, datetime
from decimal import Decimal
from types import TracebackType
from typing import Any, Literal

from eventwire import EventBus
from eventwire.saga import SagaStore

from docs.examples.order_processing import choreography, orchestration
from docs.examples.order_processing._logic import Inventory, Payments, Shipping
from docs.examples.order_processing.choreography import inventory as c_inventory
from docs.examples.order_processing.choreography import order as c_order
from docs.examples.order_processing.choreography import payment as c_payment
from docs.examples.order_processing.choreography import shipping as c_shipping
from docs.examples.order_processing.domain import OrderLine, OrderPlaced
from docs.examples.order_processing.orchestration import inventory as o_inventory
from docs.examples.order_processing.orchestration import order as o_order
from docs.examples.order_processing.orchestration import payment as o_payment
from docs.examples.order_processing.orchestration import shipping as o_shipping

Mode = Literal["choreography", "orchestration"]
MODES: tuple[Mode, ...] = ("choreography", "orchestration")
__all__ = ["MODES", "Mode", "System", "build", "choreography", "make_order", "orchestration"]


def make_order(
    n: int,
    total: Decimal | str = "25.00",
    *,
    sku: str = "SKU-1042",
    quantity: int = 1,
    prefix: str = "ord",
) -> OrderPlaced:
    """Order number `n` of one line."""
    amount = Decimal(total)
    return OrderPlaced(
        order_id=f"{prefix}-{n:05d}",
        customer_id=f"cus-{n % 97:03d}",
        lines=[OrderLine(sku=sku, quantity=quantity, unit_price=amount / quantity)],
        total=amount,
        currency="EUR",
        placed_at=datetime.now(UTC),
    )


@dataclasses.dataclass
class System:
    """The four services of `mode`, and their business objects."""

    mode: Mode
    order: Any
    inventory: Inventory
    payments: Payments
    shipping: Shipping
    buses: list[EventBus]
    _stack: contextlib.AsyncExitStack = dataclasses.field(default_factory=contextlib.AsyncExitStack)

    async def place(self, order: OrderPlaced) -> None:
        """Place `order` through the order service."""
        await self.order.place(order)

    async def __aenter__(self) -> System:
        for bus in self.buses:
            await self._stack.enter_async_context(bus)
        if self.mode == "orchestration":
            await self._stack.enter_async_context(self.order.orchestrator)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.aclose()


def build(
    mode: Mode,
    url: str,
    *,
    payments: Payments | None = None,
    inventory: Inventory | None = None,
    saga_store: SagaStore | None = None,
    step_timeout: float = 30.0,
) -> System:
    """The services of `mode` on `url` (not started: ``async with`` the result)."""
    payments = payments or Payments()
    inventory = inventory or Inventory()
    shipping = Shipping()
    order: Any
    if mode == "choreography":
        order = c_order.OrderService(url)
        others = [
            c_inventory.InventoryService(url, inventory).bus,
            c_payment.PaymentService(url, payments).bus,
            c_shipping.ShippingService(url, shipping).bus,
        ]
    elif mode == "orchestration":
        order = o_order.OrderService(url, saga_store, step_timeout=step_timeout)
        others = [
            o_inventory.InventoryService(url, inventory).bus,
            o_payment.PaymentService(url, payments).bus,
            o_shipping.ShippingService(url, shipping).bus,
        ]
    else:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return System(mode, order, inventory, payments, shipping, [*others, order.bus])
