"""Filling dead-letter channels through the real pipeline (for the gateway tests)."""

from __future__ import annotations

from typing import Any

from eventwire import EventBus, NonRetryableError, RetryPolicy

from tests.gateway._domain import Domain
from tests.gateway.conftest import until


class Refunds:
    """A service whose handlers fail on purpose until `healed`; it counts what it handled."""

    def __init__(self, url: str, domain: Domain) -> None:
        self.healed = False
        self.handled: list[str] = []
        self.bus = EventBus(url, source="refunds")

        @self.bus.subscribe(
            domain.OrderCancelled,
            group="refunds",
            from_beginning=True,
            retry=RetryPolicy(max_attempts=1),
        )
        async def refund(event: Any) -> None:
            if self.healed:
                self.handled.append(event.order_id)
                return
            if event.reason == "customer-request":
                raise NonRetryableError("refund desk closed", reason="rejected")
            raise ValueError(f"no stock record for {event.order_id}")


async def fill(url: str, domain: Domain, refunds: Refunds, *, rejected: int, failed: int) -> None:
    """Publish so that `rejected` + `failed` letters land in ``<orders>.dlq``; wait for them."""
    async with EventBus(url, source="shop") as shop:
        for i in range(rejected):
            await shop.publish(domain.OrderCancelled(order_id=f"r-{i}", reason="customer-request"))
        for i in range(failed):
            await shop.publish(domain.OrderCancelled(order_id=f"f-{i}", reason="out-of-stock"))

        async def complete() -> bool:
            return len(await shop.dead_letters(domain.orders)) >= rejected + failed

        await until(complete, timeout=30)
