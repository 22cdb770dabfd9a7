"""The `Recorder` that writes OpenTelemetry instruments (``opentelemetry-api``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
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
    """Counters ``eventwire.messages.*``, histograms, the in-flight and lag gauges.

    The counters are tallied here, per label set, and observed when the metrics are
    collected (OpenTelemetry's asynchronous counters): a message costs a dict update, not
    a call into the SDK. Histograms are recorded per message (nothing cheaper keeps the
    distribution).
    """

    def __init__(self, meter_provider: MeterProvider | None = None) -> None:
        meter = metrics.get_meter("eventwire", meter_provider=meter_provider)
        count = "{message}"
        self._published: dict[Labels, int] = {}
        self._handled: dict[Labels, int] = {}
        self._failed: dict[tuple[Labels, str], int] = {}
        self._retried: dict[Labels, int] = {}
        self._dead: dict[Labels, int] = {}
        for name, tally, description in (
            ("published", self._published, "Messages the broker confirmed"),
            ("handled", self._handled, "Handler attempts that succeeded"),
            ("retried", self._retried, "Failed attempts that will be retried"),
            ("dead_lettered", self._dead, "Failed attempts that dead-lettered"),
        ):
            meter.create_observable_counter(
                f"eventwire.messages.{name}", [self._observer(tally)], count, description
            )
        meter.create_observable_counter(
            "eventwire.messages.failed",
            [self._observe_failed],
            count,
            "Handler attempts that raised",
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
            [self._observer(self._running)],
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

    def _observer(
        self, tally: dict[Labels, int]
    ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            return [Observation(n, self._attrs(labels)) for labels, n in list(tally.items())]

        return observe

    def _observe_failed(self, options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(n, {**(self._attrs(labels) or {}), a.ERROR_TYPE: error})
            for (labels, error), n in list(self._failed.items())
        ]

    def published(self, labels: Labels) -> None:
        self._published[labels] = self._published.get(labels, 0) + 1

    def handled(self, labels: Labels, seconds: float) -> None:
        self._handled[labels] = self._handled.get(labels, 0) + 1
        self._duration.record(seconds, self._attrs(labels))

    def failed(self, labels: Labels, error_type: str, seconds: float) -> None:
        key = (labels, error_type)
        self._failed[key] = self._failed.get(key, 0) + 1
        self._duration.record(seconds, {**(self._attrs(labels) or {}), a.ERROR_TYPE: error_type})

    def retried(self, labels: Labels) -> None:
        self._retried[labels] = self._retried.get(labels, 0) + 1

    def dead_lettered(self, labels: Labels) -> None:
        self._dead[labels] = self._dead.get(labels, 0) + 1

    def latency(self, labels: Labels, seconds: float) -> None:
        self._latency.record(seconds, self._attrs(labels))

    def in_flight(self, labels: Labels, delta: int) -> None:
        self._running[labels] = self._running.get(labels, 0) + delta

    def lag(self, labels: GroupLabels, messages: int) -> None:
        self._lag[labels] = messages

    def _observe_lag(self, options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(n, {a.SYSTEM: system, a.DESTINATION: channel, a.GROUP: group})
            for (system, channel, group), n in list(self._lag.items())
        ]
