"""The `Recorder` that writes OpenTelemetry instruments (``opentelemetry-api``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from eventwire.observability import _attrs as a
from eventwire.observability.metrics import BUCKETS, GroupLabels, Labels

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.util.types import Attributes

__all__ = ["OtelRecorder"]


class OtelRecorder:
    """Counters ``eventwire.messages.*``, histograms, and the in-flight up-down counter."""

    def __init__(self, meter_provider: MeterProvider | None = None) -> None:
        meter = metrics.get_meter("eventwire", meter_provider=meter_provider)
        count = "{message}"
        self._published = meter.create_counter(
            "eventwire.messages.published", count, "Messages the broker confirmed"
        )
        self._handled = meter.create_counter(
            "eventwire.messages.handled", count, "Handler attempts that succeeded"
        )
        self._failed = meter.create_counter(
            "eventwire.messages.failed", count, "Handler attempts that raised"
        )
        self._retried = meter.create_counter(
            "eventwire.messages.retried", count, "Failed attempts that will be retried"
        )
        self._dead = meter.create_counter(
            "eventwire.messages.dead_lettered", count, "Failed attempts that dead-lettered"
        )
        self._duration = meter.create_histogram(
            "eventwire.handler.duration",
            "s",
            "Duration of one handler attempt",
            explicit_bucket_boundaries_advisory=list(BUCKETS),
        )
        self._latency = meter.create_histogram(
            "eventwire.end_to_end.latency",
            "s",
            "From the event's publish time to its handler's start (first attempt)",
            explicit_bucket_boundaries_advisory=list(BUCKETS),
        )
        # Read when the metrics are collected, not written per message.
        self._running: dict[Labels, int] = {}
        meter.create_observable_up_down_counter(
            "eventwire.handler.in_flight",
            [self._observe_in_flight],
            count,
            "Handler attempts running now",
        )
        self._cache: dict[Labels, Attributes] = {}
        self._lag: dict[GroupLabels, int] = {}
        meter.create_observable_gauge(
            "eventwire.consumer.lag",
            [self._observe_lag],
            count,
            "Messages of the channel the group has not acknowledged, as the broker counts",
        )

    def _attrs(self, labels: Labels) -> Attributes:
        attrs = self._cache.get(labels)
        if attrs is None:
            system, channel, group, kind = labels
            attrs = {a.SYSTEM: system, a.DESTINATION: channel, a.EVENT_TYPE: kind}
            if group:
                attrs[a.GROUP] = group
            self._cache[labels] = attrs
        return attrs

    def published(self, labels: Labels) -> None:
        self._published.add(1, self._attrs(labels))

    def handled(self, labels: Labels, seconds: float) -> None:
        attrs = self._attrs(labels)
        self._handled.add(1, attrs)
        self._duration.record(seconds, attrs)

    def failed(self, labels: Labels, error_type: str, seconds: float) -> None:
        attrs = {**(self._attrs(labels) or {}), a.ERROR_TYPE: error_type}
        self._failed.add(1, attrs)
        self._duration.record(seconds, attrs)

    def retried(self, labels: Labels) -> None:
        self._retried.add(1, self._attrs(labels))

    def dead_lettered(self, labels: Labels) -> None:
        self._dead.add(1, self._attrs(labels))

    def latency(self, labels: Labels, seconds: float) -> None:
        self._latency.record(seconds, self._attrs(labels))

    def in_flight(self, labels: Labels, delta: int) -> None:
        self._running[labels] = self._running.get(labels, 0) + delta

    def _observe_in_flight(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(n, self._attrs(labels)) for labels, n in list(self._running.items())]

    def lag(self, labels: GroupLabels, messages: int) -> None:
        self._lag[labels] = messages

    def _observe_lag(self, options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(n, {a.SYSTEM: system, a.DESTINATION: channel, a.GROUP: group})
            for (system, channel, group), n in list(self._lag.items())
        ]
