"""A Prometheus endpoint for the metrics of every bus in this process (``prometheus-client``).

``enable()`` once, before the buses start (``eventwire run --metrics-port`` does it), then
every bus records into `REGISTRY`; ``serve(port)`` exposes it at ``/metrics``.
"""

from __future__ import annotations

import threading

from eventwire.errors import ConfigurationError
from eventwire.observability.metrics import BUCKETS, GroupLabels, Labels

__all__ = ["PrometheusRecorder", "enabled_recorder", "serve"]

try:
    import prometheus_client
except ModuleNotFoundError:  # pragma: no cover - the extra is not installed
    prometheus_client = None  # type: ignore[assignment]

_NAMES = ("system", "channel", "group", "type")
_lock = threading.Lock()
_recorder: PrometheusRecorder | None = None


def _require() -> None:
    if prometheus_client is None:
        raise ConfigurationError(
            "the Prometheus endpoint needs 'prometheus_client', which is not installed: "
            "pip install 'eventwire[prometheus]'"
        )


class PrometheusRecorder:
    """``eventwire_messages_*_total``, ``eventwire_handler_duration_seconds``, ..."""

    def __init__(self, registry: prometheus_client.CollectorRegistry) -> None:
        _require()
        p = prometheus_client
        self.registry = registry
        r = registry
        self._published = p.Counter(
            "eventwire_messages_published", "Messages the broker confirmed", _NAMES, registry=r
        )
        self._handled = p.Counter(
            "eventwire_messages_handled", "Handler attempts that succeeded", _NAMES, registry=r
        )
        self._failed = p.Counter(
            "eventwire_messages_failed",
            "Handler attempts that raised",
            (*_NAMES, "error_type"),
            registry=r,
        )
        self._retried = p.Counter(
            "eventwire_messages_retried", "Failed attempts that will be retried", _NAMES, registry=r
        )
        self._dead = p.Counter(
            "eventwire_messages_dead_lettered",
            "Failed attempts that dead-lettered",
            _NAMES,
            registry=r,
        )
        self._duration = p.Histogram(
            "eventwire_handler_duration_seconds",
            "Duration of one handler attempt",
            _NAMES,
            buckets=BUCKETS,
            registry=r,
        )
        self._latency = p.Histogram(
            "eventwire_end_to_end_latency_seconds",
            "From the event's publish time to its handler's start (first attempt)",
            _NAMES,
            buckets=BUCKETS,
            registry=r,
        )
        self._in_flight = p.Gauge(
            "eventwire_handler_in_flight", "Handler attempts running now", _NAMES, registry=r
        )
        self._lag = p.Gauge(
            "eventwire_consumer_lag",
            "Messages of the channel the group has not acknowledged, as the broker counts",
            _NAMES[:3],
            registry=r,
        )

    def published(self, labels: Labels) -> None:
        self._published.labels(*labels).inc()

    def handled(self, labels: Labels, seconds: float) -> None:
        self._handled.labels(*labels).inc()
        self._duration.labels(*labels).observe(seconds)

    def failed(self, labels: Labels, error_type: str, seconds: float) -> None:
        self._failed.labels(*labels, error_type).inc()
        self._duration.labels(*labels).observe(seconds)

    def retried(self, labels: Labels) -> None:
        self._retried.labels(*labels).inc()

    def dead_lettered(self, labels: Labels) -> None:
        self._dead.labels(*labels).inc()

    def latency(self, labels: Labels, seconds: float) -> None:
        self._latency.labels(*labels).observe(seconds)

    def in_flight(self, labels: Labels, delta: int) -> None:
        self._in_flight.labels(*labels).inc(delta)

    def lag(self, labels: GroupLabels, messages: int) -> None:
        self._lag.labels(*labels).set(messages)


def enable() -> PrometheusRecorder:
    """Record the metrics of every bus started from now on into one process-wide registry."""
    global _recorder
    _require()
    with _lock:
        if _recorder is None:
            _recorder = PrometheusRecorder(prometheus_client.CollectorRegistry())
        return _recorder


def enabled_recorder() -> PrometheusRecorder | None:
    """The process-wide recorder, if `enable` was called."""
    return _recorder


def serve(port: int, host: str = "0.0.0.0") -> int:
    """Enable, and serve ``/metrics`` on `port` (0: any free port) in a thread; the port."""
    recorder = enable()
    try:
        server, _ = prometheus_client.start_http_server(port, host, registry=recorder.registry)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot serve metrics on {host}:{port} ({exc.strerror or exc}); "
            "choose another --metrics-port (0: any free port)"
        ) from None
    return int(server.server_port)
