"""The payment service (orchestration): charges and refunds on command."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from eventwire import Delivery, EventBus

from docs.examples.order_processing._logic import Ledger, Payments
from docs.examples.order_processing._runtime import main, publish_after
from docs.examples.order_processing.domain import (
    ChargePayment,
    PaymentCharged,
    PaymentDeclined,
    PaymentRefunded,
    RefundPayment,
)


class PaymentService:
    """Answers ``ChargePayment`` and ``RefundPayment``; charges each order at most once."""

    def __init__(self, url: str = "memory://", payments: Payments | None = None) -> None:
        self.bus = bus = EventBus(url, source="payment")
        self.payments = payments = payments or Payments()
        bus.declare(PaymentCharged, PaymentDeclined, PaymentRefunded)

        @bus.subscribe(
            ChargePayment, group="payment", idempotent=True, emits=[PaymentCharged, PaymentDeclined]
        )
        async def charge(command: ChargePayment, delivery: Delivery) -> None:
            outcome = payments.charge(command.order_id, command.customer_id, command.amount)
            if outcome["charged"]:
                await publish_after(
                    bus,
                    PaymentCharged(
                        order_id=command.order_id,
                        payment_id=outcome["payment_id"],
                        amount=command.amount,
                        currency=command.currency,
                    ),
                    delivery,
                )
            else:
                await publish_after(
                    bus,
                    PaymentDeclined(order_id=command.order_id, reason=outcome["reason"]),
                    delivery,
                )

        @bus.subscribe(RefundPayment, group="payment", idempotent=True, emits=[PaymentRefunded])
        async def refund(command: RefundPayment, delivery: Delivery) -> None:
            payments.refund(command.order_id)  # nothing charged: nothing to refund
            await publish_after(bus, PaymentRefunded(order_id=command.order_id), delivery)


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
