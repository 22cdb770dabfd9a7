"""OpenTelemetry tracing of publishes and handler attempts, as a middleware.

A producer span per message sent (``send <channel>``), a consumer span per handler attempt
(``process <channel>``), with the OpenTelemetry messaging attributes. The producer's context
travels in the CloudEvents distributed-tracing extension attributes (see `_tracecontext`);
the consumer span is its child, so a handler that publishes a follow-up continues the trace.
Each attempt is its own consumer span, a child of the producer: a retried event shows one
span per attempt, the failed ones carrying the error and a ``retry`` or ``dead_letter``
event. An unusable incoming ``traceparent`` is ignored: the attempt starts a new trace and
``eventwire.tracecontext.invalid`` counts it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from eventwire.middleware import CallNext, ConsumeContext, Middleware, PublishContext
from eventwire.observability import _attrs as a
from eventwire.observability import _tracecontext

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

__all__ = ["Tracing", "tracing_configured"]

log = logging.getLogger("eventwire.tracing")
_PROPAGATOR = TraceContextTextMapPropagator()
_SCOPE = "eventwire"


def tracing_configured() -> bool:
    """True once the application installed a global tracer provider that can record.

    The API's `NoOpTracerProvider` never records nor propagates: nothing to add for it.
    """
    provider = trace.get_tracer_provider()
    return not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)


class Tracing(Middleware):
    """Producer and consumer spans for one bus (added by `EventBus` itself; see the docs)."""

    def __init__(
        self,
        *,
        system: str,
        binding: str,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        self.system = system
        self.binding = binding
        self._tracer = trace.get_tracer(_SCOPE, tracer_provider=tracer_provider)
        meter = metrics.get_meter(_SCOPE, meter_provider=meter_provider)
        self._invalid = meter.create_counter(
            "eventwire.tracecontext.invalid",
            unit="{message}",
            description="Incoming trace context ignored (malformed or oversized)",
        )
        self._parent_name, self._state_name = _tracecontext.write_names(binding)

    async def publish(self, context: PublishContext, call_next: CallNext) -> None:
        span = self._tracer.start_span(f"send {context.channel}", kind=SpanKind.PRODUCER)
        span_context = span.get_span_context()
        if not span_context.is_valid:  # a no-op tracer: nothing to record or propagate
            await call_next()
            return
        envelope = context.envelope
        if span.is_recording():
            span.set_attributes(
                {
                    a.SYSTEM: self.system,
                    a.DESTINATION: context.channel,
                    a.OPERATION_TYPE: "send",
                    a.OPERATION_NAME: "send",
                    a.MESSAGE_ID: envelope.id,
                    a.EVENT_ID: envelope.id,
                    a.EVENT_TYPE: envelope.type,
                }
            )
            if envelope.correlationid is not None:
                span.set_attribute(a.CONVERSATION_ID, envelope.correlationid)
        headers = context.headers
        headers[self._parent_name] = _traceparent(span_context)
        if span_context.trace_state:
            headers[self._state_name] = span_context.trace_state.to_header()
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            await call_next()
        except Exception as exc:
            _failed(span, exc)
            raise
        finally:
            otel_context.detach(token)
            span.end()

    async def consume(self, context: ConsumeContext, call_next: CallNext) -> None:
        envelope = context.envelope
        parent = self._parent(envelope.headers, context.channel)
        span = self._tracer.start_span(
            f"process {context.channel}", context=parent, kind=SpanKind.CONSUMER
        )
        if not span.get_span_context().is_valid:  # a no-op tracer
            await call_next()
            return
        if span.is_recording():
            span.set_attributes(
                {
                    a.SYSTEM: self.system,
                    a.DESTINATION: context.channel,
                    a.OPERATION_TYPE: "process",
                    a.OPERATION_NAME: "process",
                    a.GROUP: context.group,
                    a.MESSAGE_ID: envelope.id,
                    a.EVENT_ID: envelope.id,
                    a.EVENT_TYPE: envelope.type,
                    a.ATTEMPT: context.attempt,
                }
            )
            if envelope.correlationid is not None:
                span.set_attribute(a.CONVERSATION_ID, envelope.correlationid)
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        try:
            await call_next()
        except Exception as exc:
            if span.is_recording():
                _failed(span, exc)
                _outcome(span, exc, context)
            raise
        finally:
            otel_context.detach(token)
            span.end()

    def _parent(self, headers: Mapping[str, str], channel: str) -> otel_context.Context:
        """The producer's context from the headers, or an empty one (a new trace)."""
        parent, state = _tracecontext.read(headers, self.binding)
        if parent is None:
            return otel_context.Context()
        reason = ""
        if len(parent) > _tracecontext.MAX_TRACEPARENT:
            reason = "oversized"
        else:
            carrier = {"traceparent": parent}
            if state is not None and len(state) <= _tracecontext.MAX_TRACESTATE:
                carrier["tracestate"] = state
            extracted = _PROPAGATOR.extract(carrier, context=otel_context.Context())
            if trace.get_current_span(extracted).get_span_context().is_valid:
                return extracted
            reason = "malformed"
        self._invalid.add(1, {a.SYSTEM: self.system, a.DESTINATION: channel, "reason": reason})
        log.warning(
            "eventwire: ignoring a %s traceparent on %s (%d characters); starting a new trace",
            reason,
            channel,
            len(parent),
        )
        return otel_context.Context()


def _traceparent(span_context: trace.SpanContext) -> str:
    """The W3C ``traceparent`` of `span_context` (version 00)."""
    return (
        f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-"
        f"{span_context.trace_flags:02x}"
    )


def _outcome(span: trace.Span, exc: BaseException, context: ConsumeContext) -> None:
    """A ``retry`` or ``dead_letter`` event saying what the pipeline does after `exc`."""
    outcome = context.outcome
    if outcome is None or outcome.action == "ack":
        return
    attributes: dict[str, str | int | float] = {
        a.ERROR_TYPE: type(exc).__qualname__,
        a.ATTEMPT: context.attempt,
    }
    if outcome.action == "retry":
        attributes["eventwire.retry.delay"] = outcome.delay
    else:
        attributes["eventwire.dead_letter.reason"] = outcome.reason
    span.add_event(outcome.action, attributes)


def _failed(span: trace.Span, exc: BaseException) -> None:
    if span.is_recording():
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__qualname__}: {exc}"))
        span.set_attribute(a.ERROR_TYPE, type(exc).__qualname__)
