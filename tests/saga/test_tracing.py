"""A saga's steps and compensations in the trace of the event that started it."""

from __future__ import annotations

import pytest
from eventwire import EventBus
from eventwire.saga import SagaOrchestrator
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from tests.observability._otel import Telemetry, telemetry

from ._domain import FAST, BFailed, Go, Outcomes, Participants, make_saga, memory_url, wait_for

pytestmark = pytest.mark.anyio


async def _run(t: Telemetry, sid: str, timeout: float, setup: str) -> None:
    url = memory_url()
    bus = EventBus(url, source="orchestrator", tracing=t.tracer_provider, metrics=False)
    orch = SagaOrchestrator(bus, [make_saga(timeout)], retry=FAST)
    parts, seen = Participants(url), Outcomes(url, orch.sagas["abc"])
    parts.bus.tracing = t.tracer_provider
    seen.bus.tracing = False
    if setup == "declined":
        parts.replies["DoB"] = lambda s: BFailed(sid=s)
    else:  # b never answers: the orchestrator's clock times it out and compensates
        parts.replies["DoB"] = None
    shop = EventBus(url, source="shop", tracing=t.tracer_provider, metrics=False)
    async with shop, parts.bus, seen.bus, orch.bus, orch:
        await shop.publish(Go(sid=sid), correlation_id="checkout-1")
        await wait_for(lambda: sid in seen.finished)
        await wait_for(lambda: "UndoA" in parts.names(sid))
        await wait_for(
            lambda: any(s.name == "process t.a" and _type(s) == "AUndone" for s in t.finished())
        )


def _type(span: ReadableSpan) -> object:
    return (span.attributes or {}).get("cloudevents.event_type", "").rsplit(".", 1)[-1]  # type: ignore[union-attr]


def _parent(spans: list[ReadableSpan], span: ReadableSpan) -> ReadableSpan:
    assert span.parent is not None, f"{span.name} is a root span"
    (found,) = [s for s in spans if s.context.span_id == span.parent.span_id]
    return found


def _one(spans: list[ReadableSpan], name: str, event_type: str | None = None) -> ReadableSpan:
    found = [s for s in spans if s.name == name and (event_type is None or _type(s) == event_type)]
    assert len(found) == 1, (
        f"{len(found)} spans {name} {event_type or ''}: {[s.name for s in spans]}"
    )
    return found[0]


async def test_steps_and_compensation_after_a_declined_step_are_in_the_order_trace() -> None:
    t = telemetry()
    await _run(t, "s-declined", 5.0, "declined")
    spans = t.finished()
    assert len({s.context.trace_id for s in spans}) == 1, "more than one trace"
    root = _one(spans, "send t.start")
    assert root.parent is None
    saga = [s for s in spans if s.name.startswith("saga abc ")]
    assert all(s.kind == SpanKind.INTERNAL for s in saga)
    by_name = {s.name: s for s in saga}
    assert {"saga abc a", "saga abc b", "saga abc compensate a"} <= set(by_name)
    # the first step hangs below the starting event's processing
    assert _parent(spans, by_name["saga abc a"]) is _one(spans, "process t.start")
    # the compensation hangs below the processing of the reply that declined
    declined = _parent(spans, by_name["saga abc compensate a"])
    assert (declined.name, _type(declined)) == ("process t.b", "BFailed")
    # and the compensating command is sent inside it, then processed by the participant
    undo_send = [
        s
        for s in spans
        if s.name == "send t.a.commands" and _parent(spans, s) is by_name["saga abc compensate a"]
    ]
    assert len(undo_send) == 1
    attrs = by_name["saga abc compensate a"].attributes or {}
    assert attrs["eventwire.saga.name"] == "abc" and attrs["eventwire.saga.step"] == "a"
    assert attrs["eventwire.saga.operation"] == "compensation"
    assert attrs["eventwire.saga.id"] == "s-declined"


async def test_a_compensation_fired_by_a_timeout_joins_the_trace_that_started_the_saga() -> None:
    t = telemetry()
    await _run(t, "s-timeout", 0.3, "timeout")
    spans = t.finished()
    assert len({s.context.trace_id for s in spans}) == 1, "the timeout started a new trace"
    started = _one(spans, "process t.start")
    # no span was current when the clock fired: the saga's stored origin is the parent
    assert _parent(spans, _one(spans, "saga abc compensate b")) is started
    assert _parent(spans, _one(spans, "saga abc compensate a")) is started
