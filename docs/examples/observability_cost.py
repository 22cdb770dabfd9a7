"""What tracing and metrics cost on the drain, measured in one process, set-ups interleaved.

``eventwire bench`` takes its providers from the process (one set-up per run), so on a
shared, noisy machine its ratios move with the load between runs. This measures the same
drain (a pre-filled channel consumed by a fresh bus: ``idempotent=True``, concurrency 8,
pydantic validation, ack after handling) with the providers passed to the bus, the
set-ups taking turns round after round, and prints the median of the per-round ratios,
of the throughput and of the CPU time this process spent per event (steadier than the
throughput when other processes compete for the cores; on a network broker it leaves out
the broker's own work)::

    python -m docs.examples.observability_cost --url memory:// --events 5000 --rounds 7
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from eventwire import Event, EventBus
from eventwire.backend import ChannelDeleter
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

#: set-up -> (tracing, metrics) options of the consuming bus
SETUPS: dict[str, Callable[[], tuple[Any, Any]]] = {
    "off": lambda: (False, False),
    "api-noop": lambda: (trace.NoOpTracerProvider(), metrics.NoOpMeterProvider()),
    "sdk-unexported": lambda: (TracerProvider(sampler=ALWAYS_OFF), MeterProvider()),
    "sdk-recording": lambda: (
        TracerProvider(),
        MeterProvider(metric_readers=[InMemoryMetricReader()]),
    ),
}


class Tick(Event, type="CostTick"):
    seq: int
    key: str
    pad: str


async def drain(url: str, events: int, tracing: Any, meters: Any) -> tuple[float, float]:
    """Events per second, and CPU seconds of this process per event, of one drain of
    `events` pre-filled events."""
    channel = f"cost-{uuid.uuid4().hex[:10]}"

    class ChannelTick(Tick, channel=channel, key="key", type="CostTick"):
        pass

    publisher = EventBus(url, source="cost", tracing=tracing, metrics=meters)
    consumer = EventBus(url, source="cost", tracing=tracing, metrics=meters)
    done = asyncio.Event()
    seen = 0

    @consumer.subscribe(
        ChannelTick, group="cost", concurrency=8, idempotent=True, from_beginning=True
    )
    async def handle(event: ChannelTick) -> None:
        nonlocal seen
        seen += 1
        if seen == events:
            done.set()

    async with publisher:
        await publisher.publish_many(
            [ChannelTick(seq=n, key=f"k{n % 16}", pad="x" * 64) for n in range(events)]
        )
        start, cpu = time.perf_counter(), time.process_time()
        async with consumer:
            await asyncio.wait_for(done.wait(), 600)
            elapsed = time.perf_counter() - start
            used = time.process_time() - cpu
        if isinstance(publisher.backend, ChannelDeleter):  # leave nothing on the broker
            await publisher.backend.delete_channel(channel)
    return events / elapsed, used / events


async def measure(
    url: str, events: int, rounds: int, setups: Sequence[str]
) -> dict[str, list[tuple[float, float]]]:
    rates: dict[str, list[tuple[float, float]]] = {name: [] for name in setups}
    for r in range(rounds):
        order = list(setups[r % len(setups) :]) + list(setups[: r % len(setups)])
        for name in order:
            tracing, meters = SETUPS[name]()
            rates[name].append(await drain(url, events, tracing, meters))
    return rates


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", default="memory://")
    p.add_argument("--events", type=int, default=5000)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--setups", default=",".join(SETUPS))
    options = p.parse_args(argv)
    setups = options.setups.split(",")
    if "off" not in setups:
        setups.insert(0, "off")  # the reference of every ratio
    rates = asyncio.run(measure(options.url, options.events, options.rounds, setups))
    print(f"drain of {options.events} events on {options.url}, {options.rounds} rounds")
    print("| set-up | drain (msg/s) | ÷ off | CPU per event (µs) | off's CPU ÷ this |")
    print("|---|---:|---:|---:|---:|")
    for name in setups:
        pairs = list(zip(rates[name], rates["off"], strict=True))
        speed = statistics.median(x[0] / o[0] for x, o in pairs)
        cpu = statistics.median(o[1] / x[1] for x, o in pairs)
        print(
            f"| {name} | {statistics.median(x[0] for x in rates[name]):,.0f} | {speed:.2f} | "
            f"{statistics.median(x[1] for x in rates[name]) * 1e6:.1f} | {cpu:.2f} |"
        )


if __name__ == "__main__":
    main()
