"""The payment service (choreography): charges the customer once stock is reserved."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from eventwire import Delivery, EventBus

from docs.examples.order_processing._logic import Ledger, Payments
from docs.examples.order_processing._runtime import main, publish_after
from docs.examples.order_processing.domain import (
    InventoryReserved,
    PaymentCharged,
    PaymentDeclined,
)


class PaymentService:
    """Wires `Payments` to ``InventoryReserved``. A duplicate event (same id) is skipped by
    ``idempotent=True``; a duplicate order (new id, same order) finds its charge in the
    ledger and repeats its outcome, so nobody is charged twice."""

    def __init__(self, url: str = "memory://", payments: Payments | None = None) -> None:
        self.bus = bus = EventBus(url, source="payment")
        self.payments = payments = payments or Payments()
        bus.declare(PaymentCharged, PaymentDeclined)

        @bus.subscribe(
            InventoryReserved,
            group="payment",
            idempotent=True,
            emits=[PaymentCharged, PaymentDeclined],
        )
        async def charge(event: InventoryReserved, delivery: Delivery) -> None:
            outcome = payments.charge(event.order_id, event.customer_id, event.total)
            if outcome["charged"]:
                await publish_after(
                    bus,
                    PaymentCharged(
                        order_id=event.order_id,
                        payment_id=outcome["payment_id"],
                        amount=event.total,
                        currency=event.currency,
                    ),
                    delivery,
                )
            else:
                await publish_after(
                    bus,
                    PaymentDeclined(order_id=event.order_id, reason=outcome["reason"]),
                    delivery,
                )


bus = PaymentService().bus  # the wiring, for `eventwire flow` and `eventwire asyncapi`


def _build(options: argparse.Namespace) -> tuple[EventBus, Sequence[Any]]:
    payments = Payments(
        Ledger(options.db),
        limit=options.limit,
        failure_rate=options.failure_rate,
        seed=options.seed,
    )
    return PaymentService(options.url, payments).bus, ()


if __name__ == "__main__":
    main("payment", _build)
