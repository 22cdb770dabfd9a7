"""Publish and consume on the embedded broker: retries, dead letters, idempotency."""

import asyncio
from decimal import Decimal

from eventwire import Delivery, Event, EventBus, RetryPolicy


class OrderPlaced(Event, channel="orders", key="order_id", version=1):
    order_id: str
    customer_id: str
    total: Decimal


bus = EventBus("memory://", source="order-service")  # or kafka://, amqp://, redis://, nats://
reserved: list[str] = []


@bus.subscribe(
    OrderPlaced,
    group="inventory",
    concurrency=8,  # different orders in parallel, one order's events in publish order
    retry=RetryPolicy(max_attempts=5, backoff=0.01, max_backoff=1),
    idempotent=True,  # a redelivered or duplicated event runs once per group (see below)
)
async def reserve_stock(event: OrderPlaced, delivery: Delivery) -> None:
    if event.total < 0:
        raise ValueError("negative total")  # retried, then dead-lettered to orders.dlq
    reserved.append(event.order_id)


async def main() -> None:
    async with bus:
        await bus.publish(
            OrderPlaced(order_id="o-1", customer_id="c-1", total=Decimal("9.90")),
            correlation_id="req-42",
        )
        await bus.publish(OrderPlaced(order_id="o-2", customer_id="c-1", total=Decimal(-1)))
        while not reserved or not await bus.dead_letters("orders"):
            await asyncio.sleep(0.01)
        (letter,) = await bus.dead_letters("orders")
        print("reserved:", reserved)
        print(
            "dead letter:", letter.reason, letter.error_type, "after", letter.attempts, "attempts"
        )


asyncio.run(main())
