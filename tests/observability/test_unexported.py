"""Providers that can never record or export: the trace context still travels, and
nothing else is done per message (what keeps the instrumentation cheap)."""

from __future__ import annotations

import logging

import pytest
from eventwire import Delivery, Event, EventBus
from eventwire.observability.metrics import Metrics
from eventwire.observability.tracing import Propagation, Tracing
from eventwire.testing import TestBus
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

from tests.observability._otel import telemetry
from tests.observability.test_tracing import BAD_TRACEPARENTS, _valid_headers

FOREIGN = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class Asked(Event, channel="obs-unexported-asked", key="n"):
    n: str


class Answered(Event, channel="obs-unexported-answered", key="n"):
    n: str


def _bus(**options: object) -> tuple[EventBus, list[str]]:
    bus = EventBus("memory://", source="unexported", **options)  # type: ignore[arg-type]
    seen: list[str] = []

    @bus.subscribe(Asked, group="answers")
    async def answer(event: Asked, delivery: Delivery) -> None:
        context = trace.get_current_span().get_span_context()
        seen.append(f"{context.trace_id:032x}" if context.is_valid else "none")
        await bus.publish(Answered(n=event.n))

    return bus, seen


@pytest.mark.anyio
async def test_a_never_sampling_provider_passes_the_context_on_and_records_nothing() -> None:
    provider = TracerProvider(sampler=ALWAYS_OFF)
    bus, seen = _bus(tracing=provider, metrics=False)
    async with TestBus(bus, raise_handler_errors=True) as tb:
        assert [type(m) for m in bus._observers] == [Propagation]
        await tb.inject(
            Asked, '{"n": "1"}', _valid_headers(FOREIGN) | {"ce_type": Asked.__eventwire__.type}
        )
        await tb.publish(Asked(n="2"))
    # the handler ran in the incoming trace; its follow-up carries that trace id, new span
    assert seen[0] == "0af7651916cd43dd8448eb211c80319c"
    answers = [m.envelope for m in tb.published if m.envelope.type == Answered.__eventwire__.type]
    first = answers[0].headers["ce_traceparent"].split("-")
    assert first[1] == "0af7651916cd43dd8448eb211c80319c"
    assert first[2] != "b7ad6b7169203331" and first[3] == "00"  # a new span id, not sampled
    # a publish outside any trace starts one (as the SDK's root span would), not sampled
    asked = [m.envelope for m in tb.published if m.envelope.type == Asked.__eventwire__.type]
    version, trace_id, span_id, flags = asked[-1].headers["ce_traceparent"].split("-")
    assert (version, flags) == ("00", "00") and len(trace_id) == 32 and len(span_id) == 16
    assert seen[1] == trace_id  # and the handler of that event continues it


@pytest.mark.parametrize("value", BAD_TRACEPARENTS.values(), ids=BAD_TRACEPARENTS.keys())
@pytest.mark.anyio
async def test_a_never_sampling_provider_still_ignores_and_counts_bad_traceparents(
    value: str, caplog: pytest.LogCaptureFixture
) -> None:
    t = telemetry()
    bus, seen = _bus(tracing=TracerProvider(sampler=ALWAYS_OFF), metrics=t.meter_provider)
    with caplog.at_level(logging.WARNING, logger="eventwire.tracing"):
        async with TestBus(bus, raise_handler_errors=True) as tb:
            await tb.inject(
                Asked, '{"n": "3"}', _valid_headers(value) | {"ce_type": Asked.__eventwire__.type}
            )
    assert seen == ["none"]  # handled, outside any trace
    (point,) = t.points("eventwire.tracecontext.invalid")
    assert point[1] == 1 and point[0]["reason"] in ("malformed", "oversized")


@pytest.mark.anyio
async def test_a_sampling_provider_still_gets_spans() -> None:
    t = telemetry()
    bus, _ = _bus(tracing=t.tracer_provider, metrics=False)
    async with TestBus(bus) as tb:
        assert [type(m) for m in bus._observers] == [Tracing]
        await tb.publish(Asked(n="4"))
    assert {s.name for s in t.finished()} >= {
        "send obs-unexported-asked",
        "process obs-unexported-asked",
    }


@pytest.mark.anyio
async def test_a_meter_provider_without_readers_is_not_measured_into() -> None:
    bus, _ = _bus(tracing=False, metrics=MeterProvider())
    async with TestBus(bus):
        assert not any(isinstance(m, Metrics) for m in bus._observers)
    reader = InMemoryMetricReader()
    bus, _ = _bus(tracing=False, metrics=MeterProvider(metric_readers=[reader]))
    async with TestBus(bus) as tb:
        assert any(isinstance(m, Metrics) for m in bus._observers)
        await tb.publish(Asked(n="5"))
    names = {
        m.name
        for r in (reader.get_metrics_data() or ()).resource_metrics  # type: ignore[union-attr]
        for s in r.scope_metrics
        for m in s.metrics
    }
    assert {"eventwire.messages.published", "eventwire.messages.handled"} <= names
