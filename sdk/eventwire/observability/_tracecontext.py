"""W3C trace context in message headers: the CloudEvents distributed-tracing extension.

The extension's attributes ``traceparent`` and ``tracestate`` travel like every other
CloudEvents attribute in binary mode: ``ce_traceparent`` (Kafka binding, and Redis),
``ce-traceparent`` (NATS), ``cloudEvents:traceparent`` (AMQP). A plain ``traceparent``
header (what an HTTP-minded producer writes) is read too.
"""

from __future__ import annotations

from collections.abc import Mapping

from eventwire.bindings import BINDINGS, READ_PREFIXES

__all__ = ["MAX_TRACEPARENT", "MAX_TRACESTATE", "read", "write_names"]

#: W3C: a version-00 traceparent is 55 characters; later versions may append fields, so
#: allow some room, but not an unbounded header.
MAX_TRACEPARENT = 256
#: W3C: at most 32 list members; vendors are asked to keep it under 512 characters.
MAX_TRACESTATE = 512


def write_names(binding: str) -> tuple[str, str]:
    """The header names of ``traceparent`` and ``tracestate`` in `binding`."""
    prefix = BINDINGS.get(binding, "ce_")
    return prefix + "traceparent", prefix + "tracestate"


def _candidates(binding: str, attr: str) -> tuple[str, ...]:
    return (*(p + attr for p in READ_PREFIXES.get(binding, ("ce_",))), attr)


_READ: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    binding: (_candidates(binding, "traceparent"), _candidates(binding, "tracestate"))
    for binding in READ_PREFIXES
}


def read(headers: Mapping[str, str], binding: str) -> tuple[str | None, str | None]:
    """The ``traceparent`` and ``tracestate`` values in `headers`, if any."""
    parents, states = _READ.get(binding) or _READ["kafka"]
    parent = headers.get(parents[0])  # the binding's own name: what eventwire writes
    if parent is None:
        for name in parents[1:]:
            parent = headers.get(name)
            if parent is not None:
                break
        else:
            return None, None  # no context, so no state worth reading either
    state = None
    for name in states:
        state = headers.get(name)
        if state is not None:
            break
    return parent, state
