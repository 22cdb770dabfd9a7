"""The order saga: reserve stock, charge, ship; undo in reverse order on failure."""

from __future__ import annotations

from eventwire.saga import Saga, SagaContext, Step

from docs.examples.order_processing.domain import (
    ChargePayment,
    InventoryReleased,
    InventoryReservationFailed,
    InventoryReserved,
    ItemShipped,
    OrderCancelled,
    OrderCompleted,
    OrderPlaced,
    PaymentCharged,
    PaymentDeclined,
    PaymentRefunded,
    RefundPayment,
    ReleaseInventory,
    ReserveInventory,
    ShipOrder,
)


def _charge(ctx: SagaContext) -> ChargePayment:
    data = ctx.data
    return ChargePayment(
        order_id=data["order_id"],
        customer_id=data["customer_id"],
        amount=data["total"],
        currency=data["currency"],
    )


def _cancelled(ctx: SagaContext) -> OrderCancelled:
    return OrderCancelled(order_id=ctx.data["order_id"], reason=ctx.reason)


def _completed(ctx: SagaContext) -> OrderCompleted:
    return OrderCompleted(order_id=ctx.data["order_id"])


def order_saga(step_timeout: float = 30.0) -> Saga:
    """The saga definition (`step_timeout`: seconds each service has to answer)."""
    return Saga(
        "order",
        started_by=OrderPlaced,
        saga_id=lambda event: event.order_id,
        steps=[
            Step(
                "reserve",
                ReserveInventory,
                completed_by=[InventoryReserved],
                failed_by=[InventoryReservationFailed],
                compensation=ReleaseInventory,
                compensated_by=[InventoryReleased],
            ),
            Step(
                "charge",
                ChargePayment,
                build=_charge,
                completed_by=[PaymentCharged],
                failed_by=[PaymentDeclined],
                compensation=RefundPayment,
                compensated_by=[PaymentRefunded],
            ),
            Step("ship", ShipOrder, completed_by=[ItemShipped]),  # last: nothing after it fails
        ],
        on_completed=_completed,
        on_failed=_cancelled,
        step_timeout=step_timeout,
    )
