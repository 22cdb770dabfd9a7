"""Running one service as its own process: options, start, wait for a signal, close."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from decimal import Decimal
from typing import Any

from eventwire import EventBus


def parser(name: str) -> argparse.ArgumentParser:
    """The options every service understands (a service ignores those it does not use)."""
    p = argparse.ArgumentParser(prog=name, description=f"the {name} of the order example")
    p.add_argument("--url", default="memory://", help="broker URL, e.g. redis://127.0.0.1:6379/0")
    p.add_argument("--db", default=":memory:", help="SQLite file of the service's ledger")
    p.add_argument("--saga-db", default=":memory:", help="SQLite file of the saga store")
    p.add_argument("--limit", type=Decimal, default=Decimal(1000),
                   help="payments over this amount are declined")
    p.add_argument("--failure-rate", type=float, default=0.0,
                   help="share of the other payments declined (deterministic by order id)")
    p.add_argument("--seed", default="eventwire", help="seed of the injected declines")
    p.add_argument("--log-level", default="WARNING")
    return p


async def serve(bus: EventBus, *extra: AbstractAsyncContextManager[Any], name: str) -> None:
    """Run until SIGINT or SIGTERM, then close cleanly. Prints ``ready <name>`` once up."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(bus)
        for manager in extra:
            await stack.enter_async_context(manager)
        print(f"ready {name}", flush=True)
        await stop.wait()


def main(name: str, build: Callable[[argparse.Namespace], tuple[EventBus, Sequence[Any]]],
         argv: Sequence[str] | None = None) -> None:
    """Parse options, build the service with `build`, run it."""
    options = parser(name).parse_args(argv)
    logging.basicConfig(level=options.log_level.upper(),
                        format=f"%(asctime)s {name} %(levelname)s %(message)s")
    bus, extra = build(options)
    asyncio.run(serve(bus, *extra, name=name))


async def publish_after(bus: EventBus, event: Any, cause: Any) -> None:
    """Publish `event` in reaction to the delivery `cause`: same correlation id, caused by it."""
    await bus.publish(event, correlation_id=cause.correlation_id, causation_id=cause.id)
