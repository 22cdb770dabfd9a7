"""Observability of a bus: OpenTelemetry traces and metrics, a Prometheus endpoint.

`EventBus` adds the instrumentation itself: tracing when ``opentelemetry-api`` is installed
(``pip install 'eventwire[otel]'``) and the application configured a global tracer
provider, metrics when it configured a meter provider or enabled the Prometheus endpoint
(`eventwire.observability.prometheus`), with the consumer lag the broker reports
(`eventwire.observability.lag`). ``EventBus(..., tracing=False, metrics=False)``
turns them off; a provider passed instead is used rather than the global one. A provider
that can never record or export (the SDK's ``ALWAYS_OFF`` sampler, a ``MeterProvider``
without readers) costs next to nothing: the trace context is only passed on, nothing is
measured. See docs/observability.md.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

from eventwire.errors import ConfigurationError
from eventwire.middleware import Middleware
from eventwire.observability._attrs import messaging_system
from eventwire.observability.lag import LagWatch
from eventwire.observability.metrics import Metrics, Recorder

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from eventwire.backend import Backend

__all__ = ["instrumentation", "lag_watch"]


def _otel_installed() -> bool:
    return importlib.util.find_spec("opentelemetry") is not None


def _needs_otel(what: str) -> None:
    if not _otel_installed():
        raise ConfigurationError(
            f"{what}=<a provider> needs 'opentelemetry', which is not installed: "
            "pip install 'eventwire[otel]'"
        )


def _meter_configured() -> bool:
    """A global meter provider was installed, and it is not the API's no-op one."""
    from opentelemetry import metrics
    from opentelemetry.metrics import _internal

    provider = metrics.get_meter_provider()
    return not isinstance(provider, _internal._ProxyMeterProvider | metrics.NoOpMeterProvider)


def _meter_exports(provider: Any) -> bool:
    """Whether what `provider` (default: the global one) measures can be read by anyone
    now: an SDK ``MeterProvider`` without a metric reader never exports a measurement, so
    measuring into it would be work for nobody. Decided when a bus starts (a reader added
    later is seen from the bus's next start)."""
    from opentelemetry import metrics

    if provider is None:
        provider = metrics.get_meter_provider()
    if isinstance(provider, metrics.NoOpMeterProvider):
        return False
    readers = getattr(provider, "_metric_readers", None)  # SDK 1.3x and later
    if readers is None:
        readers = getattr(getattr(provider, "_sdk_config", None), "metric_readers", None)
    return readers is None or len(readers) > 0


def instrumentation(backend: Backend, tracing: Any, metrics: Any) -> tuple[Middleware, ...]:
    """The middlewares that observe a bus on `backend`, outermost first.

    `tracing` / `metrics`: ``True`` (when a global provider is configured), ``False``
    (never) or a provider to use instead of the global one.
    """
    from eventwire.observability import prometheus

    system = messaging_system(backend)
    otel = _otel_installed()
    meter_provider = None if isinstance(metrics, bool) else metrics
    layers: list[Middleware] = []
    if tracing is not False:
        if tracing is not True:
            _needs_otel("tracing")
        if otel:
            from opentelemetry.trace import NoOpTracerProvider

            from eventwire.observability.tracing import (
                Propagation,
                Tracing,
                never_samples,
                tracing_configured,
            )

            if tracing is not True or tracing_configured():
                tracer_provider = None if tracing is True else tracing
                if isinstance(tracer_provider, NoOpTracerProvider):
                    pass  # neither records nor propagates: nothing to add
                elif never_samples(tracer_provider):
                    layers.append(
                        Propagation(
                            system=system, binding=backend.binding, meter_provider=meter_provider
                        )
                    )
                else:
                    layers.append(
                        Tracing(
                            system=system,
                            binding=backend.binding,
                            tracer_provider=tracer_provider,
                            meter_provider=meter_provider,
                        )
                    )
    if metrics is not False:
        recorders: list[Recorder] = []
        if metrics is not True:
            _needs_otel("metrics")
        if otel and (metrics is not True or _meter_configured()) and _meter_exports(meter_provider):
            from eventwire.observability._otel_metrics import OtelRecorder

            recorders.append(OtelRecorder(meter_provider))
        scrape = prometheus.enabled_recorder()
        if scrape is not None:
            recorders.append(scrape)
        if recorders:
            layers.append(Metrics(system=system, recorders=recorders))
    return tuple(layers)


def lag_watch(
    backend: Backend, observers: Sequence[Middleware], groups: Iterable[tuple[str, str]]
) -> LagWatch | None:
    """A started watch of the consumer lag of `groups`, when the bus records metrics and
    `backend` can tell the lag (`eventwire.backend.LagReporter`)."""
    from eventwire.backend import LagReporter

    layer = next((m for m in observers if isinstance(m, Metrics)), None)
    if layer is None or not isinstance(backend, LagReporter):
        return None
    watch = LagWatch(backend, system=layer.system, groups=groups, recorders=layer.recorders)
    watch.start()
    return watch
