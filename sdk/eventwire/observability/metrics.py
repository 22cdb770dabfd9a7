"""Counters, histograms and an in-flight gauge of a bus, as a middleware.

Recorded into OpenTelemetry instruments (when a meter provider is configured) and into a
Prometheus registry (when one is enabled, e.g. by ``eventwire run --metrics-port``); the
consumer lag comes from the broker (`eventwire.observability.lag`). Labels
are the backend, channel, group, event type and error class only: never payload values,
keys, ids or anything from the broker URL.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Protocol

from eventwire.middleware import (
    BatchConsumeContext,
    CallNext,
    ConsumeContext,
    Middleware,
    PublishContext,
)

__all__ = ["GroupLabels", "Labels", "Metrics", "Recorder"]

#: Seconds; the semantic conventions' buckets for messaging durations, extended to a minute.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 30, 60)

Labels = tuple[str, str, str, str]  # system, channel, group ("" when publishing), type
GroupLabels = tuple[str, str, str]  # system, channel, group


class Recorder(Protocol):
    """Where the measurements go (OpenTelemetry, Prometheus)."""

    def published(self, labels: Labels) -> None: ...
    def handled(self, labels: Labels, seconds: float) -> None: ...
    def failed(self, labels: Labels, error_type: str, seconds: float) -> None: ...
    def retried(self, labels: Labels) -> None: ...
    def dead_lettered(self, labels: Labels) -> None: ...
    def latency(self, labels: Labels, seconds: float) -> None: ...
    def in_flight(self, labels: Labels, delta: int) -> None: ...
    def lag(self, labels: GroupLabels, messages: int) -> None: ...


class Metrics(Middleware):
    """Measures every publish and handler attempt of one bus into `recorders`."""

    def __init__(self, *, system: str, recorders: Sequence[Recorder]) -> None:
        self.system = system
        self.recorders = tuple(recorders)

    async def publish(self, context: PublishContext, call_next: CallNext) -> None:
        await call_next()
        labels = (self.system, context.channel, "", context.envelope.type)
        for recorder in self.recorders:
            recorder.published(labels)

    async def consume(self, context: ConsumeContext, call_next: CallNext) -> None:
        envelope = context.envelope
        labels = (self.system, context.channel, context.group, envelope.type)
        recorders = self.recorders
        if context.attempt == 1:
            sent = envelope.time.timestamp()
            if sent > 0:  # 0: a message that carried no time
                lag = max(0.0, time.time() - sent)  # another machine's clock may be ahead
                for recorder in recorders:
                    recorder.latency(labels, lag)
        for recorder in recorders:
            recorder.in_flight(labels, 1)
        start = time.perf_counter()
        try:
            await call_next()
        except Exception as exc:
            seconds = time.perf_counter() - start
            outcome = context.outcome
            for recorder in recorders:
                recorder.in_flight(labels, -1)
                recorder.failed(labels, type(exc).__qualname__, seconds)
                if outcome is not None and outcome.action == "retry":
                    recorder.retried(labels)
                elif outcome is not None and outcome.action == "dead_letter":
                    recorder.dead_lettered(labels)
            raise
        seconds = time.perf_counter() - start
        for recorder in recorders:
            recorder.in_flight(labels, -1)
            recorder.handled(labels, seconds)

    async def consume_batch(self, context: BatchConsumeContext, call_next: CallNext) -> None:
        """Each event of a batch handler's call counts as one attempt lasting the call."""
        now = time.time()
        labels = []
        for delivery in context.deliveries:
            envelope = delivery.envelope
            label = (self.system, context.channel, context.group, envelope.type)
            labels.append(label)
            sent = envelope.time.timestamp()
            if delivery.attempt == 1 and sent > 0:
                for recorder in self.recorders:
                    recorder.latency(label, max(0.0, now - sent))
        for label in labels:
            for recorder in self.recorders:
                recorder.in_flight(label, 1)
        start = time.perf_counter()
        try:
            await call_next()
        finally:
            seconds = time.perf_counter() - start
            failed = context.failed or {}
            for index, label in enumerate(labels):
                error = failed.get(index)
                for recorder in self.recorders:
                    recorder.in_flight(label, -1)
                    if error is None:
                        recorder.handled(label, seconds)
                    else:
                        recorder.failed(label, type(error).__qualname__, seconds)
