"""The orchestrator's side of saga tracing: nothing at all when the bus does not trace."""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from eventwire.bus import EventBus
from eventwire.saga._store import SagaState

if TYPE_CHECKING:
    from eventwire.observability._saga import SagaTracer

__all__ = ["tracer_of", "transition_span"]


def tracer_of(bus: EventBus) -> SagaTracer | None:
    """The saga tracer of `bus` (``None`` without ``opentelemetry`` or when it does not trace)."""
    if bus.tracing is False or importlib.util.find_spec("opentelemetry") is None:
        return None
    from eventwire.observability._saga import saga_tracer

    return saga_tracer(bus.tracing)


def transition_span(
    tracer: SagaTracer | None, saga: str, state: SagaState, entry: Mapping[str, str]
) -> AbstractContextManager[None]:
    """The span around sending outbox `entry` of `state`."""
    if tracer is None:
        return contextlib.nullcontext()
    return tracer.transition(saga, state.saga_id, entry, state.traceparent)
