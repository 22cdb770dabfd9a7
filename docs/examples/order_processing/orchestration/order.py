"""The order service (orchestration): takes orders and runs the order saga for each."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from eventwire import EventBus
from eventwire.saga import SagaOrchestrator, SagaStore, SqliteSagaStore

from docs.examples.order_processing._runtime import main
from docs.examples.order_processing.domain import OrderPlaced
from docs.examples.order_processing.orchestration.saga import order_saga


class OrderService:
    """Publishes ``OrderPlaced``; its own orchestrator starts one saga per order (saga id =
    order id, so a duplicate ``OrderPlaced`` runs nothing twice)."""

    def __init__(
        self, url: str = "memory://", store: SagaStore | None = None, step_timeout: float = 30.0
    ) -> None:
        self.bus = EventBus(url, source="order")
        self.bus.declare(OrderPlaced)
        self.saga = order_saga(step_timeout)
        self.orchestrator = SagaOrchestrator(self.bus, [self.saga], store=store, group="order")

    async def place(self, order: OrderPlaced) -> None:
        """Publish `order`; its id is the saga id and the correlation id of what follows."""
        await self.bus.publish(order, correlation_id=order.order_id)

    async def status(self, order_id: str) -> str:
        """``running``, ``compensating``, ``completed``, ``failed`` or ``unknown``."""
        state = await self.orchestrator.load(order_id)
        return state.status if state is not None else "unknown"


bus = OrderService().bus  # the wiring, for `eventwire flow` and `eventwire asyncapi`


def _build(options: argparse.Namespace) -> tuple[EventBus, Sequence[Any]]:
    service = OrderService(options.url, SqliteSagaStore(options.saga_db))
    return service.bus, (service.orchestrator,)


if __name__ == "__main__":
    main("order", _build)
