"""The delivery being handled, as structured fields of every log record.

While the pipeline works on a delivery (and while its handler runs), each log record of the
pipeline, and of any logger whose handler has the `EventFields` filter, carries
``event_id``, ``event_type``, ``channel``, ``group``, ``attempt``, ``correlation_id`` and
``trace_id`` (``None`` where unknown). ``eventwire run --log-format json`` writes them as
JSON fields.
"""

from __future__ import annotations

import contextvars
import dataclasses
import logging

from eventwire.envelope import Envelope
from eventwire.observability import _tracecontext

__all__ = ["FIELDS", "DeliveryFields", "EventFields", "current"]

FIELDS = ("event_id", "event_type", "channel", "group", "attempt", "correlation_id", "trace_id")

try:
    from opentelemetry import trace as _trace
except ModuleNotFoundError:  # pragma: no cover - the otel extra is not installed
    _trace = None  # type: ignore[assignment]


@dataclasses.dataclass(slots=True)
class DeliveryFields:
    """What the pipeline knows about the delivery it is working on."""

    channel: str
    group: str
    attempt: int
    envelope: Envelope | None = None


current: contextvars.ContextVar[DeliveryFields | None] = contextvars.ContextVar(
    "eventwire_delivery", default=None
)


def _trace_id(fields: DeliveryFields) -> str | None:
    if _trace is not None:
        context = _trace.get_current_span().get_span_context()
        if context.is_valid:
            return f"{context.trace_id:032x}"
    if fields.envelope is None:
        return None
    for binding in ("kafka", "nats", "amqp"):
        parent, _ = _tracecontext.read(fields.envelope.headers, binding)
        if parent is not None:
            parts = parent.split("-")
            if len(parts) >= 4 and len(parts[1]) == 32 and parts[1] != "0" * 32:
                return parts[1].lower()
            return None
    return None


class EventFields(logging.Filter):
    """Adds the fields of the delivery being handled to each record (never filters one out)."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = current.get()
        if fields is None or hasattr(record, "event_id"):
            return True
        envelope = fields.envelope
        record.event_id = envelope.id if envelope else None
        record.event_type = envelope.type if envelope else None
        record.channel = fields.channel
        record.group = fields.group
        record.attempt = fields.attempt
        record.correlation_id = envelope.correlationid if envelope else None
        record.trace_id = _trace_id(fields)
        return True
