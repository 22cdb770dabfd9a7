"""OpenTelemetry tracing of publishes and handler attempts, as a middleware.

A producer span per message sent (``send <channel>``), a consumer span per handler attempt
(``process <channel>``), with the OpenTelemetry messaging attributes. The producer's context
travels in the CloudEvents distributed-tracing extension attributes (see `_tracecontext`);
the consumer span is its child, so a handler that publishes a follow-up continues the trace.
Each attempt is its own consumer span, a child of the producer: a retried event shows one
span per attempt, the failed ones carrying the error and a ``retry`` or ``dead_letter``
event. A call of a batch handler is one consumer span linked to the producer span of each
of its events (``messaging.batch.message_count`` events). An unusable incoming
``traceparent`` is ignored: the attempt starts a new trace and
``eventwire.tracecontext.invalid`` counts it.

With a tracer provider that never samples (the SDK's ``ALWAYS_OFF`` sampler) no span could
ever be recorded: `Propagation` then only passes the trace context on, as the SDK would,
without creating spans.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)

from eventwire._random import random_bits
from eventwire.middleware import (
    BatchConsumeContext,
    CallNext,
    ConsumeContext,
    Middleware,
    PublishContext,
)
from eventwire.observability import _attrs as a
from eventwire.observability import _tracecontext

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

__all__ = ["Propagation", "Tracing", "never_samples", "parse", "tracing_configured"]

log = logging.getLogger("eventwire.tracing")
_SCOPE = "eventwire"
#: W3C Trace Context: version, trace id, parent id, flags; versions after 00 may append.
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
_FLAGS = {"00": TraceFlags(0), "01": TraceFlags(1)}


def tracing_configured() -> bool:
    """True once the application installed a global tracer provider that can record.

    The API's `NoOpTracerProvider` never records nor propagates: nothing to add for it.
    """
    provider = trace.get_tracer_provider()
    return not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def never_samples(provider: Any) -> bool:
    """Whether `provider` (default: the global one) samples nothing, ever: the SDK's
    ``ALWAYS_OFF`` sampler. Its spans would all be non-recording."""
    if provider is None:
        provider = trace.get_tracer_provider()
    sampler = getattr(provider, "sampler", None)
    describe = getattr(sampler, "get_description", None)
    return callable(describe) and describe() == "AlwaysOffSampler"


def parse(parent: str, state: str | None) -> SpanContext | None:
    """The remote span context of a ``traceparent`` value (and ``tracestate``), or ``None``
    if it is not a usable W3C one: what the API's propagator accepts, without its lookups.
    """
    match = _TRACEPARENT.fullmatch(parent)
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest) or trace_id == _ZERO_TRACE:
        return None
    if span_id == _ZERO_SPAN:
        return None
    trace_state = None
    if state is not None and len(state) <= _tracecontext.MAX_TRACESTATE:
        trace_state = TraceState.from_header([state])
    return SpanContext(
        int(trace_id, 16),
        int(span_id, 16),
        is_remote=True,
        trace_flags=_FLAGS.get(flags) or TraceFlags(int(flags, 16)),
        trace_state=trace_state,
    )


class _TraceContext(Middleware):
    """What both middlewares share: the header names and reading the incoming context."""

    def __init__(
        self, *, system: str, binding: str, meter_provider: MeterProvider | None = None
    ) -> None:
        self.system = system
        self.binding = binding
        meter = metrics.get_meter(_SCOPE, meter_provider=meter_provider)
        self._invalid = meter.create_counter(
            "eventwire.tracecontext.invalid",
            unit="{message}",
            description="Incoming trace context ignored (malformed or oversized)",
        )
        self._parent_name, self._state_name = _tracecontext.write_names(binding)

    def _incoming(self, headers: Mapping[str, str], channel: str) -> SpanContext | None:
        """The producer's span context from the headers, if usable (else a new trace)."""
        parent, state = _tracecontext.read(headers, self.binding)
        if parent is None:
            return None
        if len(parent) > _tracecontext.MAX_TRACEPARENT:
            reason = "oversized"
        else:
            found = parse(parent, state)
            if found is not None:
                return found
            reason = "malformed"
        self._invalid.add(1, {a.SYSTEM: self.system, a.DESTINATION: channel, "reason": reason})
        log.warning(
            "eventwire: ignoring a %s traceparent on %s (%d characters); starting a new trace",
            reason,
            channel,
            len(parent),
        )
        return None


class Tracing(_TraceContext):
    """Producer and consumer spans for one bus (added by `EventBus` itself; see the docs)."""

    def __init__(
        self,
        *,
        system: str,
        binding: str,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        super().__init__(system=system, binding=binding, meter_provider=meter_provider)
        self._tracer = trace.get_tracer(_SCOPE, tracer_provider=tracer_provider)

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

    def _consumer_attributes(
        self, context: ConsumeContext | BatchConsumeContext
    ) -> dict[str, str | int]:
        """The attributes every consumer span carries, one event or a batch."""
        return {
            a.SYSTEM: self.system,
            a.DESTINATION: context.channel,
            a.OPERATION_TYPE: "process",
            a.OPERATION_NAME: "process",
            a.GROUP: context.group,
        }

    async def consume(self, context: ConsumeContext, call_next: CallNext) -> None:
        envelope = context.envelope
        incoming = self._incoming(envelope.headers, context.channel)
        parent = otel_context.Context()
        if incoming is not None:
            parent = trace.set_span_in_context(NonRecordingSpan(incoming), parent)
        span = self._tracer.start_span(
            f"process {context.channel}", context=parent, kind=SpanKind.CONSUMER
        )
        if not span.get_span_context().is_valid:  # a no-op tracer
            await call_next()
            return
        if span.is_recording():
            span.set_attributes(
                {
                    **self._consumer_attributes(context),
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

    async def consume_batch(self, context: BatchConsumeContext, call_next: CallNext) -> None:
        """One consumer span per call of a batch handler, linked to the producer span of
        every event of the batch (a batch has no single parent; the span starts a trace)."""
        links = []
        for delivery in context.deliveries:
            incoming = self._incoming(delivery.envelope.headers, context.channel)
            if incoming is not None:
                links.append(Link(incoming))
        span = self._tracer.start_span(
            f"process {context.channel}",
            context=otel_context.Context(),
            kind=SpanKind.CONSUMER,
            links=links,
        )
        if not span.get_span_context().is_valid:  # a no-op tracer
            await call_next()
            return
        if span.is_recording():
            span.set_attributes(
                {**self._consumer_attributes(context), a.BATCH_COUNT: len(context.events)}
            )
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            await call_next()
        except Exception as exc:
            if span.is_recording():
                _failed(span, exc)
                span.set_attribute(a.BATCH_FAILED, len(context.failed or ()))
            raise
        finally:
            otel_context.detach(token)
            span.end()


class Propagation(_TraceContext):
    """The trace context passed on and nothing recorded, for a provider that never samples.

    What the SDK's spans would carry, without making them: a handler runs in the incoming
    context (so its logs and follow-ups keep the trace id), and each message sent carries
    the current trace id (a new one outside any trace) with a new span id, not sampled.
    """

    async def publish(self, context: PublishContext, call_next: CallNext) -> None:
        current = trace.get_current_span().get_span_context()
        bits = random_bits
        trace_id = current.trace_id if current.is_valid else bits(128)
        context.headers[self._parent_name] = f"00-{trace_id:032x}-{bits(64) or 1:016x}-00"
        if current.is_valid and current.trace_state:
            context.headers[self._state_name] = current.trace_state.to_header()
        await call_next()

    async def consume(self, context: ConsumeContext, call_next: CallNext) -> None:
        incoming = self._incoming(context.envelope.headers, context.channel)
        if incoming is None:
            await call_next()
            return
        token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(incoming)))
        try:
            await call_next()
        finally:
            otel_context.detach(token)


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
