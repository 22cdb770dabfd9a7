"""Measure both versions: messages per order and end-to-end latency per order.

    python -m docs.examples.order_processing.measure --url memory:// --orders 200

Orders are placed one at a time (the next when the previous one ended), so the latency is
that of one order through an idle system. Every tenth order is over the payment limit
and gets compensated. Messages are counted on the broker: every message of every channel
the services use (events, commands and saga lifecycle events).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from decimal import Decimal

from docs.examples.order_processing._logic import Payments
from docs.examples.order_processing.observer import Observer
from docs.examples.order_processing.system import MODES, Mode, build, make_order

CHANNELS = (
    "orders",
    "inventory",
    "inventory.commands",
    "payments",
    "payments.commands",
    "shipping",
    "shipping.commands",
    "sagas.order",
)


async def measure(mode: Mode, url: str, orders: int) -> dict[str, float]:
    system = build(mode, url, payments=Payments(limit=Decimal(500)))
    seen = Observer(url, group=f"measure-{uuid.uuid4().hex[:6]}")
    latencies: list[float] = []
    prefix = uuid.uuid4().hex[:6]
    async with seen.bus, system:
        for n in range(orders):
            order = make_order(n, "900.00" if n % 10 == 0 else "40.00", prefix=prefix)
            started = time.perf_counter()
            await system.place(order)
            while not seen.finished({order.order_id}):
                await asyncio.sleep(0)
            latencies.append(seen.finished_at[order.order_id] - started)
        backend = system.order.bus.backend
        total = 0
        for channel in CHANNELS:
            total += sum(
                1
                for m in await backend.browse(channel, 1_000_000)
                if (m.key or "").startswith(prefix)
            )
    latencies.sort()
    return {
        "messages_per_order": total / orders,
        "p50_ms": statistics.median(latencies) * 1000,
        "p95_ms": latencies[int(len(latencies) * 0.95) - 1] * 1000,
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--url", default="memory://")
    p.add_argument("--orders", type=int, default=200)
    options = p.parse_args()
    for mode in MODES:
        url = options.url
        if url.startswith("memory://"):
            url = f"memory://measure-{mode}"
        result = asyncio.run(measure(mode, url, options.orders))
        print(
            f"{mode:14} messages/order {result['messages_per_order']:.2f}  "
            f"latency p50 {result['p50_ms']:.2f} ms  p95 {result['p95_ms']:.2f} ms"
        )


if __name__ == "__main__":
    main()
