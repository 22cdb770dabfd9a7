"""Middlewares, tracing and metrics around batch handlers, through the real pipeline on
memory://: one `consume_batch` per handler call, one consumer span linked to every event's
producer span, handled / failed counted per event."""

from __future__ import annotations

import asyncio

import pytest
from eventwire import (
    BatchConsumeContext,
    BatchError,
    BatchPolicy,
    Event,
    EventBus,
    Middleware,
    NonRetryableError,
)
from eventwire.middleware import CallNext, ConsumeContext
from opentelemetry.trace import SpanKind, StatusCode

from tests.observability._otel import telemetry


class Shipped(Event, channel="obs-batch-shipments", key="order_id"):
    order_id: str


class Recorder(Middleware):
    def __init__(self) -> None:
        self.calls: list[tuple[list[str], list[int], dict[int, str]]] = []
        self.single = 0

    async def consume(self, context: ConsumeContext, call_next: CallNext) -> None:
        self.single += 1
        await call_next()

    async def consume_batch(self, context: BatchConsumeContext, call_next: CallNext) -> None:
        ids = [event.order_id for event in context.events]  # type: ignore[attr-defined]
        attempts = [d.attempt for d in context.deliveries]
        try:
            await call_next()
        finally:
            failed = {i: type(e).__name__ for i, e in (context.failed or {}).items()}
            self.calls.append((ids, attempts, failed))


@pytest.mark.anyio
async def test_middlewares_tracing_and_metrics_wrap_each_batch_call() -> None:
    t = telemetry()
    recorder = Recorder()
    producer = EventBus("memory://", source="shop", tracing=t.tracer_provider)
    consumer = EventBus(
        "memory://",
        source="shipping",
        tracing=t.tracer_provider,
        metrics=t.meter_provider,
        middlewares=[recorder],
    )
    seen: list[list[str]] = []
    done = asyncio.Event()

    @consumer.subscribe(Shipped, group="ship", batch=BatchPolicy(max_size=3, max_wait=0.2))
    async def ship(events: list[Shipped]) -> None:
        seen.append([e.order_id for e in events])
        if sum(map(len, seen)) >= 3:
            done.set()
        if any(e.order_id == "bad" for e in events):
            index = next(i for i, e in enumerate(events) if e.order_id == "bad")
            raise BatchError({index: NonRetryableError("no address")})

    async with producer, consumer:
        await producer.publish_many(
            [Shipped(order_id="a"), Shipped(order_id="bad"), Shipped(order_id="c")]
        )
        await asyncio.wait_for(done.wait(), 10)
        await asyncio.sleep(0.05)

    assert recorder.single == 0  # `consume` is for single-event handlers
    ((ids, attempts, failed),) = recorder.calls  # one handler call: one consume_batch
    assert sorted(ids) == ["a", "bad", "c"] and attempts == [1, 1, 1]
    assert failed == {ids.index("bad"): "NonRetryableError"}

    sends = [s for s in t.finished() if s.kind is SpanKind.PRODUCER]
    (process,) = [s for s in t.finished() if s.kind is SpanKind.CONSUMER]
    assert process.name == "process obs-batch-shipments"
    assert process.attributes is not None
    assert process.attributes["messaging.batch.message_count"] == 3
    assert process.attributes["eventwire.batch.failed_count"] == 1
    assert process.status.status_code is StatusCode.ERROR
    linked = {link.context.span_id for link in process.links}
    assert linked == {s.context.span_id for s in sends} and len(linked) == 3

    def total(name: str) -> int:
        return sum(int(v) for _, v in t.points(name))  # type: ignore[call-overload]

    assert total("eventwire.messages.handled") == 2
    assert total("eventwire.messages.failed") == 1
    assert total("eventwire.handler.in_flight") == 0
