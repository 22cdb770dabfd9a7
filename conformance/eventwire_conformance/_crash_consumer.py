"""A member process for the tests that need one: G12 and G21/G22 (a group member the test can
SIGKILL) and G11 (``--idempotent``: it handles events, then dies before acking).

Run as ``python -m eventwire_conformance._crash_consumer --channel C --group G --out FILE``
with the broker URL in the ``EVENTWIRE_CONFORMANCE_URL`` environment variable (not on the
command line, where credentials would show in the process list). It imports the modules named
(comma-separated) in ``EVENTWIRE_CONFORMANCE_PLUGINS`` first: the runner's ``-p/--plugin``
modules, so a backend registered only through a plugin is found here too. It prints ``ready`` once
subscribed. By default (G12) it appends the ``seq`` of every event its handler takes to FILE and
blocks in the handler until the test kills the process with SIGKILL. With ``--handle`` it
handles events (sleeping ``--sleep-ms`` times 0-2 in the handler) and appends one line per
finished run to FILE: ``key seq begin end attempt``, the times from the system-wide monotonic
clock, so the test can merge the runs of several processes (`eventwire_conformance._members`);
SIGTERM makes it close the bus gracefully (a member leaving) and exit.

With ``--idempotent`` the subscription has ``idempotent=True``; the handler appends the
``seq`` and returns, and the process dies (``os._exit``) right after the idempotency store
recorded the event as done — before the delivery is acked, so the broker redelivers it to
another member. Its store is the one ``EVENTWIRE_CONFORMANCE_IDEMPOTENCY_STORE`` names (the
runner's ``--idempotency-store``), else the backend's default.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from eventwire import Claim, IdempotencyStore

URL_VARIABLE = "EVENTWIRE_CONFORMANCE_URL"
PLUGINS_VARIABLE = "EVENTWIRE_CONFORMANCE_PLUGINS"
STORE_VARIABLE = "EVENTWIRE_CONFORMANCE_IDEMPOTENCY_STORE"


async def consume(
    url: str, channel: str, group: str, out: Path, concurrency: int, idempotent: bool = False
) -> None:
    from eventwire import EventBus

    from eventwire_conformance._events import Ping, ping_model

    model = ping_model(channel)
    bus = EventBus(
        url,
        source="conformance/crash-consumer",
        idempotency_store=os.environ.get(STORE_VARIABLE) or None,
    )
    if idempotent:
        bus.idempotency_store = _DieWhenDone(bus.idempotency_store)
    never = asyncio.Event()

    @bus.subscribe(model, group=group, concurrency=concurrency, idempotent=idempotent)
    async def hold(event: Ping) -> None:
        with out.open("a", encoding="utf-8") as file:
            file.write(f"{event.seq}\n")
        if not idempotent:
            await never.wait()

    async with bus:
        print("ready", flush=True)
        await never.wait()


async def handle(
    url: str, channel: str, group: str, out: Path, concurrency: int, sleep: float
) -> None:
    import signal
    import time

    from eventwire import Delivery, EventBus

    from eventwire_conformance._events import Ping, ping_model

    model = ping_model(channel)
    bus = EventBus(url, source="conformance/member")
    leave = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, leave.set)

    @bus.subscribe(model, group=group, concurrency=concurrency)
    async def run(event: Ping, delivery: Delivery) -> None:
        begin = time.monotonic()
        await asyncio.sleep(sleep * (event.seq % 3))
        with out.open("a", encoding="utf-8") as file:
            file.write(f"{event.key} {event.seq} {begin} {time.monotonic()} {delivery.attempt}\n")

    async with bus:
        print("ready", flush=True)
        await leave.wait()


class _DieWhenDone:
    """The bus's store, but the process dies as soon as an event is recorded as done."""

    def __init__(self, inner: IdempotencyStore) -> None:
        self._inner = inner

    async def claim(self, key: str, lease: float) -> Claim:
        return await self._inner.claim(key, lease)

    async def complete(self, key: str, ttl: float) -> None:
        await self._inner.complete(key, ttl)
        os._exit(0)  # a crash between the done mark and the ack

    async def release(self, key: str) -> None:
        await self._inner.release(key)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eventwire_conformance._crash_consumer")
    parser.add_argument("--channel", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--handle", action="store_true", help="handle events and record runs")
    parser.add_argument("--sleep-ms", type=float, default=2.0)
    parser.add_argument("--idempotent", action="store_true")
    args = parser.parse_args(argv)
    url = os.environ.get(URL_VARIABLE)
    if not url:
        print(f"set {URL_VARIABLE} to the broker URL", file=sys.stderr)
        return 2
    for module in filter(None, os.environ.get(PLUGINS_VARIABLE, "").split(",")):
        importlib.import_module(module)
    if args.handle:
        sleep = args.sleep_ms / 1000
        asyncio.run(handle(url, args.channel, args.group, args.out, args.concurrency, sleep))
    else:
        asyncio.run(
            consume(url, args.channel, args.group, args.out, args.concurrency, args.idempotent)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
