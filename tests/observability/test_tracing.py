"""Traces of publishes and handler attempts, through the real pipeline on memory://."""

from __future__ import annotations

import asyncio
import logging
from typing import cast

import pytest
from eventwire import Event, EventBus, NonRetryableError, RetryPolicy
from eventwire.testing import TestBus
from opentelemetry.trace import SpanKind, StatusCode

from tests.observability._otel import Telemetry, telemetry


class OrderPlaced(Event, channel="obs-trace-orders", key="order_id"):
    order_id: str


class OrderShipped(Event, channel="obs-trace-shipments", key="order_id"):
    order_id: str


def _services(t: Telemetry) -> tuple[EventBus, EventBus]:
    orders = EventBus(
        "memory://", source="orders", tracing=t.tracer_provider, metrics=t.meter_provider
    )
    shipping = EventBus(
        "memory://", source="shipping", tracing=t.tracer_provider, metrics=t.meter_provider
    )

    @shipping.subscribe(OrderPlaced, group="shipping")
    async def ship(event: OrderPlaced) -> None:
        await shipping.publish(OrderShipped(order_id=event.order_id))

    return orders, shipping


@pytest.mark.anyio
async def test_one_trace_across_a_handler_that_publishes_a_follow_up() -> None:
    t = telemetry()
    orders, shipping = _services(t)
    async with TestBus(orders, shipping) as tb:
        placed = await tb.publish(OrderPlaced(order_id="o-1"), correlation_id="corr-1")
    spans = {s.name: s for s in t.finished()}
    assert set(spans) == {
        "send obs-trace-orders",
        "process obs-trace-orders",
        "send obs-trace-shipments",
    }
    send, process, follow = (
        spans["send obs-trace-orders"],
        spans["process obs-trace-orders"],
        spans["send obs-trace-shipments"],
    )
    trace_ids = {s.context.trace_id for s in spans.values()}
    assert len(trace_ids) == 1
    assert send.parent is None
    assert process.parent is not None and process.parent.span_id == send.context.span_id
    assert follow.parent is not None and follow.parent.span_id == process.context.span_id
    assert (send.kind, process.kind, follow.kind) == (
        SpanKind.PRODUCER,
        SpanKind.CONSUMER,
        SpanKind.PRODUCER,
    )
    assert send.attributes is not None and process.attributes is not None
    assert dict(send.attributes) == {
        "messaging.system": "eventwire",
        "messaging.destination.name": "obs-trace-orders",
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
        "messaging.message.id": placed.id,
        "messaging.message.conversation_id": "corr-1",
        "cloudevents.event_id": placed.id,
        "cloudevents.event_type": placed.type,
    }
    assert dict(process.attributes) == {
        "messaging.system": "eventwire",
        "messaging.destination.name": "obs-trace-orders",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.consumer.group.name": "shipping",
        "messaging.message.id": placed.id,
        "messaging.message.conversation_id": "corr-1",
        "cloudevents.event_id": placed.id,
        "cloudevents.event_type": placed.type,
        "eventwire.delivery.attempt": 1,
    }
    # The context travelled as the CloudEvents distributed-tracing extension attribute.
    sent = tb.published[0]
    ctx = send.context
    assert sent.headers["ce_traceparent"].startswith(f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-")


@pytest.mark.anyio
async def test_retries_and_dead_lettering_are_span_events_with_the_error() -> None:
    t = telemetry()
    bus = EventBus("memory://", source="flaky", tracing=t.tracer_provider, metrics=False)
    calls = 0

    @bus.subscribe(OrderPlaced, group="flaky", retry=RetryPolicy(max_attempts=2, backoff=0))
    async def fail(event: OrderPlaced) -> None:
        nonlocal calls
        calls += 1
        raise ValueError(f"boom {calls}")

    async with TestBus(bus, skip_backoff=True) as tb:
        await tb.publish(OrderPlaced(order_id="o-2"))
    attempts = sorted(
        (s for s in t.finished() if s.kind == SpanKind.CONSUMER),
        key=lambda s: cast(int, (s.attributes or {})["eventwire.delivery.attempt"]),
    )
    assert [s.attributes["eventwire.delivery.attempt"] for s in attempts] == [1, 2]  # type: ignore[index]
    for span in attempts:
        assert span.status.status_code is StatusCode.ERROR
        assert span.attributes["error.type"] == "ValueError"  # type: ignore[index]
        assert span.events[0].name == "exception"
    first, second = attempts
    assert first.events[0].attributes["exception.message"] == "boom 1"  # type: ignore[index]
    assert [e.name for e in first.events] == ["exception", "retry"]
    assert [e.name for e in second.events] == ["exception", "dead_letter"]
    assert second.events[1].attributes["eventwire.dead_letter.reason"] == "max-attempts"  # type: ignore[index]
    assert len({s.context.trace_id for s in t.finished()}) == 1


@pytest.mark.anyio
async def test_non_retryable_error_dead_letters_with_its_reason() -> None:
    t = telemetry()
    bus = EventBus("memory://", source="strict", tracing=t.tracer_provider, metrics=False)

    @bus.subscribe(OrderPlaced, group="strict")
    async def refuse(event: OrderPlaced) -> None:
        raise NonRetryableError("no such sku", reason="unknown-sku")

    async with TestBus(bus) as tb:
        await tb.publish(OrderPlaced(order_id="o-3"))
    (span,) = [s for s in t.finished() if s.kind == SpanKind.CONSUMER]
    assert [e.name for e in span.events] == ["exception", "dead_letter"]
    assert span.events[1].attributes["eventwire.dead_letter.reason"] == "unknown-sku"  # type: ignore[index]


def _valid_headers(traceparent: str) -> dict[str, str]:
    return {
        "ce_id": "e-1",
        "ce_type": OrderPlaced.__eventwire__.type,
        "ce_source": "elsewhere",
        "ce_specversion": "1.0",
        "content-type": "application/json",
        "ce_traceparent": traceparent,
    }


BAD_TRACEPARENTS = {
    "malformed": "00-not-a-trace-01",
    "all-zero trace id": "00-00000000000000000000000000000000-0000000000000001-01",
    "version ff": "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "foreign format (B3)": "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1",
    "oversized": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-" + "x" * 5000,
}


@pytest.mark.parametrize("value", BAD_TRACEPARENTS.values(), ids=BAD_TRACEPARENTS.keys())
@pytest.mark.anyio
async def test_an_unusable_traceparent_starts_a_new_trace_and_is_counted(
    value: str, caplog: pytest.LogCaptureFixture
) -> None:
    t = telemetry()
    bus = EventBus("memory://", source="inbox", tracing=t.tracer_provider, metrics=t.meter_provider)
    handled: list[str] = []

    @bus.subscribe(OrderPlaced, group="inbox")
    async def handle(event: OrderPlaced) -> None:
        handled.append(event.order_id)

    with caplog.at_level(logging.WARNING, logger="eventwire.tracing"):
        async with TestBus(bus, raise_handler_errors=True) as tb:
            await tb.inject(OrderPlaced, '{"order_id": "o-4"}', _valid_headers(value))
    assert handled == ["o-4"]  # never a failure of the handler
    (span,) = t.finished()
    assert span.parent is None and span.context.is_valid  # a new root span
    (point,) = t.points("eventwire.tracecontext.invalid")
    assert point[1] == 1
    assert point[0]["reason"] in ("malformed", "oversized")
    assert "traceparent" in caplog.text


@pytest.mark.anyio
async def test_a_foreign_producers_valid_traceparent_is_continued() -> None:
    t = telemetry()
    bus = EventBus("memory://", source="inbox", tracing=t.tracer_provider, metrics=False)

    @bus.subscribe(OrderPlaced, group="inbox")
    async def handle(event: OrderPlaced) -> None:
        pass

    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    async with TestBus(bus, raise_handler_errors=True) as tb:
        await tb.inject(OrderPlaced, '{"order_id": "o-5"}', _valid_headers(parent))
    (span,) = t.finished()
    assert f"{span.context.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
    assert span.parent is not None and f"{span.parent.span_id:016x}" == "b7ad6b7169203331"


@pytest.mark.anyio
async def test_tracing_false_records_nothing_and_sends_no_traceparent() -> None:
    t = telemetry()
    orders, _shipping = _services(t)
    orders.tracing = False
    async with TestBus(orders) as tb:
        await tb.publish(OrderPlaced(order_id="o-6"))
    assert t.finished() == []
    assert "ce_traceparent" not in tb.published[0].headers


def test_tracing_must_be_a_bool_or_a_provider() -> None:
    from eventwire.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="tracing must be True, False or an OpenTelemetry"):
        EventBus("memory://", tracing="yes")  # type: ignore[arg-type]


_AUTO = """
import asyncio
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from eventwire import Event, EventBus
from eventwire.testing import TestBus

class Ping(Event, channel="obs-auto-ping"):
    n: int

exporter = InMemorySpanExporter()
bus = EventBus("memory://", source="auto", tracing={tracing})

@bus.subscribe(Ping, group="auto")
async def on_ping(event: Ping) -> None:
    pass

async def main() -> None:
    async with TestBus(bus) as tb:
        await tb.publish(Ping(n=1))
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)  # configured after the bus was created: still seen
    async with TestBus(bus) as tb:
        await tb.publish(Ping(n=2))
    print(sorted(s.name for s in exporter.get_finished_spans()))

asyncio.run(main())
"""


@pytest.mark.parametrize(
    ("tracing", "expected"),
    [("True", "['process obs-auto-ping', 'send obs-auto-ping']"), ("False", "[]")],
)
@pytest.mark.anyio
async def test_on_by_itself_once_a_global_tracer_provider_is_configured(
    tracing: str, expected: str
) -> None:
    import sys

    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _AUTO.format(tracing=tracing),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert out.decode().strip() == expected


def test_the_messaging_system_is_what_the_backend_declares_or_its_name() -> None:
    from types import SimpleNamespace

    from eventwire.observability._attrs import messaging_system
    from eventwire_memory import MemoryBackend
    from eventwire_rabbit import RabbitBackend
    from eventwire_sqlite import SqliteBackend

    assert messaging_system(RabbitBackend("amqp://127.0.0.1:5672/")) == "rabbitmq"
    assert messaging_system(MemoryBackend()) == "eventwire"
    assert messaging_system(SqliteBackend("sqlite:///tmp/eventwire-otel.db")) == "sqlite"
    # an outside backend on the bare protocol, without the attribute
    assert messaging_system(SimpleNamespace(name="postgres")) == "postgres"
