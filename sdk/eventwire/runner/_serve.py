"""Run one bus in this process until SIGTERM or SIGINT, then drain and close."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Mapping
from typing import Any

from eventwire.bus import EventBus
from eventwire.runner._health import HealthServer

__all__ = ["serve", "status_of"]

log = logging.getLogger("eventwire.run")


def status_of(bus: EventBus, stopping: bool) -> Mapping[str, Any]:
    """What the readiness endpoint answers for `bus`."""
    return {
        "ready": bus.ready and not stopping,
        "state": "draining" if stopping and bus.state == "running" else bus.state,
        "source": bus.source,
        "url": bus.url,
        "subscriptions": len(bus.subscriptions),
    }


async def serve(
    bus: EventBus,
    *,
    health_port: int | None = None,
    health_host: str = "0.0.0.0",
    drain_timeout: float | None = None,
    status_fd: int | None = None,
) -> int:
    """Start `bus`, serve until SIGTERM or SIGINT, then drain and close; the exit status.

    The first signal stops fetching and lets in-flight handlers finish and settle (at most
    `drain_timeout` seconds, default the bus's ``close_timeout``), runs the shutdown hooks and
    disconnects: 0. A second signal during the drain drops the connection at once, as a
    crash would (what was unsettled is delivered again): 1.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    force = asyncio.Event()
    stopping = False

    def on_signal(sig: signal.Signals) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            log.info("%s: draining (in-flight handlers finish, then the bus closes)", sig.name)
            _report(status_fd, "draining")
            stop.set()
        else:
            log.warning("%s again: stopping now, without draining", sig.name)
            force.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    health = None
    if health_port is not None:
        health = HealthServer(lambda: status_of(bus, stopping), health_host, health_port)
        await health.start()
        log.info("health: http://%s:%d/livez and /readyz", health_host, health.port)
    forced = asyncio.create_task(force.wait())
    try:
        starting = asyncio.create_task(bus.start())
        await asyncio.wait({starting, forced}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            starting.cancel()
            await bus.abort()
            return 1
        await starting
        if not stopping:
            _report(status_fd, "ready")
            log.info(
                "ready: %s on %s, %d subscription(s)", bus.source, bus.url, len(bus.subscriptions)
            )
        await stop.wait()
        if drain_timeout is not None:
            bus.close_timeout = drain_timeout
        closing = asyncio.create_task(bus.close())
        await asyncio.wait({closing, forced}, return_when=asyncio.FIRST_COMPLETED)
        if not closing.done():
            closing.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await closing
            await bus.abort()
            return 1
        await closing
        log.info("stopped: every in-flight handler finished and settled")
        return 0
    finally:
        forced.cancel()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        if health is not None:
            await health.close()


def _report(fd: int | None, state: str) -> None:
    """Tell a supervising process (``--workers``) this worker's state."""
    if fd is not None:
        with contextlib.suppress(OSError):
            os.write(fd, f"{state}\n".encode())
