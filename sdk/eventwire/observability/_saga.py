"""Saga transitions as spans, in the trace of the message that started the saga.

Each message a saga sends (a step's command, a compensation, a lifecycle event, the final
event) is sent inside an ``INTERNAL`` span ``saga <name> <step>``, ``saga <name> compensate
<step>``, ``saga <name> <lifecycle event type>`` or ``saga <name> completed|failed``, so its
``send`` span and everything downstream hang below it. The span's parent is the current
span when there is one (the ``process`` span of the starting event or of the reply that
moved the saga on); otherwise (a timeout fired by the orchestrator's clock, sends resumed
after a restart) it is the span that started the saga, whose ``traceparent`` the saga
state keeps.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from eventwire.observability.tracing import _traceparent, tracing_configured

__all__ = ["SagaTracer", "saga_tracer"]

_PROPAGATOR = TraceContextTextMapPropagator()

NAME = "eventwire.saga.name"
ID = "eventwire.saga.id"
OPERATION = "eventwire.saga.operation"
STEP = "eventwire.saga.step"


def saga_tracer(tracing: Any) -> SagaTracer | None:
    """The tracer of a bus whose ``tracing`` option is `tracing`, if it traces."""
    if tracing is False or (tracing is True and not tracing_configured()):
        return None
    provider = None if tracing is True else tracing
    return SagaTracer(trace.get_tracer("eventwire", tracer_provider=provider))


class SagaTracer:
    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer

    @staticmethod
    def origin() -> str:
        """The ``traceparent`` of the current span ("" outside a valid one)."""
        context = trace.get_current_span().get_span_context()
        return _traceparent(context) if context.is_valid else ""

    @contextlib.contextmanager
    def transition(
        self, saga: str, saga_id: str, entry: Mapping[str, str], origin: str
    ) -> Iterator[None]:
        """A span around sending the message of outbox `entry`."""
        parent: otel_context.Context | None = None
        if not trace.get_current_span().get_span_context().is_valid and origin:
            parent = _PROPAGATOR.extract({"traceparent": origin}, context=otel_context.Context())
        op = entry["op"]
        if op == "command":
            what = entry["step"]
        elif op == "compensation":
            what = f"compensate {entry['step']}"
        else:  # a lifecycle event (its type) or the final one (its outcome)
            what = entry.get("type") or entry.get("outcome") or op
        name = f"saga {saga} {what}"
        attributes = {NAME: saga, ID: saga_id, OPERATION: op}
        if "step" in entry:
            attributes[STEP] = entry["step"]
        with self._tracer.start_as_current_span(
            name, context=parent, kind=SpanKind.INTERNAL, attributes=attributes
        ):
            yield
