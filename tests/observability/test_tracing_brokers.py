"""One trace across two services on real brokers: a handler that publishes a follow-up."""

from __future__ import annotations

import asyncio
import itertools
import os
import uuid

import pytest
from eventwire import Delivery, Event, EventBus
from opentelemetry.trace import SpanKind

from tests.observability._otel import telemetry

pytestmark = pytest.mark.broker

URLS = {
    "redis": (os.environ.get("EVENTWIRE_REDIS_URL") or "redis://127.0.0.1:6379/0", "redis"),
    "rabbit": (
        os.environ.get("EVENTWIRE_RABBIT_URL") or "amqp://guest:guest@127.0.0.1:5672/",
        "rabbitmq",
    ),
    "nats": (os.environ.get("EVENTWIRE_NATS_URL") or "nats://127.0.0.1:4222", "nats"),
    "kafka": (os.environ.get("EVENTWIRE_KAFKA_URL") or "kafka://127.0.0.1:9092", "kafka"),
}
HEADER = {
    "kafka": "ce_traceparent",
    "redis": "ce_traceparent",
    "rabbit": "cloudEvents:traceparent",
    "nats": "ce-traceparent",
}
RUN = uuid.uuid4().hex[:8]


class Placed(Event, channel=f"obs-placed-{RUN}", key="order_id"):
    order_id: str


class Shipped(Event, channel=f"obs-shipped-{RUN}", key="order_id"):
    order_id: str


@pytest.mark.parametrize("backend", sorted(URLS))
@pytest.mark.anyio
async def test_one_trace_across_two_services(backend: str) -> None:
    url, system = URLS[backend]
    t = telemetry()
    orders = EventBus(url, source="orders", tracing=t.tracer_provider, metrics=False)
    shipping = EventBus(url, source="shipping", tracing=t.tracer_provider, metrics=False)
    done = asyncio.Event()
    seen: dict[str, str] = {}

    @shipping.subscribe(Placed, group=f"shipping-{backend}", from_beginning=True)
    async def ship(event: Placed, delivery: Delivery) -> None:
        await shipping.publish(
            Shipped(order_id=event.order_id), correlation_id=delivery.correlation_id
        )

    @orders.subscribe(Shipped, group=f"orders-{backend}", from_beginning=True)
    async def shipped(event: Shipped, delivery: Delivery) -> None:
        seen.update(delivery.headers)
        done.set()

    async with orders, shipping:
        await orders.publish(Placed(order_id=f"o-{backend}"), correlation_id="c-7")
        await asyncio.wait_for(done.wait(), 30)
    spans = {s.name: s for s in t.finished()}
    send_p, proc_p = (
        spans[f"send {Placed.__eventwire__.channel}"],
        spans[f"process {Placed.__eventwire__.channel}"],
    )
    send_s, proc_s = (
        spans[f"send {Shipped.__eventwire__.channel}"],
        spans[f"process {Shipped.__eventwire__.channel}"],
    )
    assert len({s.context.trace_id for s in spans.values()}) == 1
    assert send_p.parent is None
    chain = [send_p, proc_p, send_s, proc_s]
    for parent, child in itertools.pairwise(chain):
        assert child.parent is not None and child.parent.span_id == parent.context.span_id
    assert [s.kind for s in chain] == [SpanKind.PRODUCER, SpanKind.CONSUMER] * 2
    for span in chain:
        assert span.attributes is not None
        assert span.attributes["messaging.system"] == system
        assert span.attributes["messaging.message.conversation_id"] == "c-7"
    assert proc_s.attributes["messaging.consumer.group.name"] == f"orders-{backend}"  # type: ignore[index]
    # Carried as the CloudEvents distributed-tracing extension attribute of the binding.
    assert seen[HEADER[backend]].split("-")[2] == f"{send_s.context.span_id:016x}"
