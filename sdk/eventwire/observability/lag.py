"""Consumer lag: how far each group of a bus is behind its channel, read from the broker.

Backends that can tell implement `eventwire.backend.LagReporter`. While a bus with metrics
runs, a `LagWatch` asks the backend every `INTERVAL` seconds for the lag of each of the
bus's subscriptions and records it into the metrics recorders (the OpenTelemetry gauge
``eventwire.consumer.lag``, the Prometheus gauge ``eventwire_consumer_lag``). The broker
counts, not the bus: the figure is the group's, whichever members run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Sequence

from eventwire.backend import LagReporter
from eventwire.observability.metrics import GroupLabels, Recorder

__all__ = ["INTERVAL", "LagWatch"]

log = logging.getLogger("eventwire.observability")

#: Seconds between two readings (Prometheus' default scrape interval).
INTERVAL = 15.0


class LagWatch:
    """Reads the lag of `groups` ((channel, group) pairs) from `backend` periodically."""

    def __init__(
        self,
        backend: LagReporter,
        *,
        system: str,
        groups: Iterable[tuple[str, str]],
        recorders: Sequence[Recorder],
    ) -> None:
        self.backend = backend
        self.system = system
        self.groups = tuple(dict.fromkeys(groups))
        self.recorders = tuple(recorders)
        self._task: asyncio.Task[None] | None = None

    async def poll(self) -> None:
        """Read every group's lag once and record it (a group the broker cannot tell, or a
        failed reading, keeps its previous value)."""
        for channel, group in self.groups:
            try:
                value = await self.backend.lag(channel, group)
            except Exception as exc:  # a reading is best effort; the next one may work
                log.debug("eventwire: reading the lag of %s/%s failed: %s", channel, group, exc)
                continue
            if value is None:
                continue
            labels: GroupLabels = (self.system, channel, group)
            for recorder in self.recorders:
                recorder.lag(labels, value)

    def start(self) -> None:
        if self._task is None and self.groups:
            self._task = asyncio.create_task(self._run(), name="eventwire-lag")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            await self.poll()
            await asyncio.sleep(INTERVAL)
