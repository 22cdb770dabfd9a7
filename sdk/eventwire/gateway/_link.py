"""The gateway's connection to the broker: one `EventBus`, reconnected while it is down.

The gateway starts even when the broker cannot be reached (it answers ``503`` with
``Retry-After`` and is not ready); it connects in the background, a new attempt every
``retry_after`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from eventwire.backend import WireMessage
from eventwire.bus import EventBus
from eventwire.errors import BackendUnavailableError, BusClosedError, PublishError
from eventwire.gateway._problems import Problem

__all__ = ["BrokerLink"]

log = logging.getLogger("eventwire.gateway")


class BrokerLink:
    """Owns the gateway's bus: connects, reconnects, publishes, maps broker failures to 503."""

    def __init__(self, make_bus: Callable[[], EventBus], *, retry_after: int = 5) -> None:
        self._make_bus = make_bus
        self.retry_after = retry_after
        self._bus: EventBus | None = None
        self._task: asyncio.Task[None] | None = None
        #: the bus that describes the backend (name, URL) even before it is connected
        self.template = make_bus()

    @property
    def ready(self) -> bool:
        """Connected to the broker."""
        return self._bus is not None

    async def start(self) -> None:
        """Connect once; when that fails, keep trying in the background."""
        if not await self._connect():
            self._task = asyncio.create_task(self._reconnect(), name="eventwire-gateway-connect")

    async def _connect(self) -> bool:
        bus = self._make_bus()
        try:
            await bus.start()
        except BackendUnavailableError as exc:
            log.warning("eventwire gateway: cannot reach %s: %s", bus.url, exc)
            return False
        self._bus = bus
        log.info("eventwire gateway: connected to %s", bus.url)
        return True

    async def _reconnect(self) -> None:
        connected = False
        while not connected:
            await asyncio.sleep(self.retry_after)
            connected = await self._connect()

    async def close(self) -> None:
        """Stop reconnecting and close the bus."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._bus is not None:
            await self._bus.close()
            self._bus = None

    def _down(self, why: str) -> Problem:
        return Problem(
            503,
            "broker-unavailable",
            f"the broker at {self.template.url} {why}; nothing was published, retry later",
            headers={"Retry-After": str(self.retry_after)},
        )

    @property
    def bus(self) -> EventBus:
        """The connected bus; a 503 `Problem` while the broker is unreachable."""
        if self._bus is None:
            raise self._down("is not reachable")
        return self._bus

    async def publish(self, channel: str, message: WireMessage) -> None:
        """Publish and wait for the broker's confirmation; 503 when it does not confirm."""
        bus = self.bus
        try:
            await bus.backend.publish(channel, [message])
        except (BackendUnavailableError, PublishError, BusClosedError) as exc:
            log.warning("eventwire gateway: publish to %s failed: %s", channel, exc)
            raise self._down("did not confirm the event") from None
