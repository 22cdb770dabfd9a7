"""The consume path's CPU per event: drain a pre-filled channel and measure the drain alone.

    python -m docs.examples.drain_cpu kafka://127.0.0.1:9092 --events 40000
    python -m docs.examples.drain_cpu memory:// --events 40000 --batch
    python -m docs.examples.drain_cpu kafka://127.0.0.1:9092 --py-spy drain.txt
    python -m docs.examples.drain_cpu kafka://127.0.0.1:9092 --gc-freeze

One process publishes N events (about 128 B, 16 keys) to a fresh channel, then one
subscription (``idempotent=True`` with the in-memory store, concurrency 8; or a batch handler
with ``BatchPolicy(max_size=500, max_wait=0.05)``) drains them. From the first event handled
to the last it prints the wall-clock rate, the process's CPU time per event, the garbage
collector's share of it (``gc.callbacks``) and the collections per generation. With
``--py-spy FILE`` it attaches py-spy (500 Hz, ``--format raw``) over the same interval; with
``--gc-freeze`` it freezes what exists before the drain (``gc.freeze()``, as ``eventwire run``
does once the service is loaded).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from eventwire import BatchPolicy, Event, EventBus
from eventwire.backend import ChannelDeleter

KEYS = 16
PAD = "x" * 60


def py_spy() -> str | None:
    """The py-spy executable: beside this Python (its virtual environment), else on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.is_file() else shutil.which("py-spy")


class _Clock:
    """CPU, wall and garbage-collection time between `start` and `stop`."""

    def __init__(self, total: int, spy: str | None) -> None:
        self.total = total
        self.seen = 0
        self.done = asyncio.Event()
        self._spy_file = spy
        self._spy: subprocess.Popen[bytes] | None = None
        self._timing = False
        self._gc_started = 0.0
        self.gc_seconds = 0.0
        self.collections = [0, 0, 0]
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if not self._timing:
            return
        if phase == "start":
            self._gc_started = time.process_time()
        else:
            self.gc_seconds += time.process_time() - self._gc_started
            self.collections[info["generation"]] += 1

    def hit(self) -> None:
        if self.seen == 0:
            if self._spy_file is not None:
                command = [py_spy() or "py-spy", "record", "-p", str(os.getpid()), "-r", "500"]
                command += ["--format", "raw", "--nonblocking", "-o", self._spy_file]
                self._spy = subprocess.Popen(
                    command,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                time.sleep(0.3)  # let it attach before the clock starts
            self._timing = True
            self.wall, self.cpu = time.perf_counter(), time.process_time()
        self.seen += 1
        if self.seen == self.total:
            self.wall = time.perf_counter() - self.wall
            self.cpu = time.process_time() - self.cpu
            self._timing = False
            if self._spy is not None:
                self._spy.send_signal(signal.SIGINT)
            self.done.set()

    def close(self) -> None:
        gc.callbacks.remove(self._on_gc)
        if self._spy is not None:
            self._spy.wait()


async def drain(url: str, events: int, batch: bool, spy: str | None, freeze: bool) -> str:
    channel = f"drain-cpu-{uuid.uuid4().hex[:12]}"

    class Item(Event, type="DrainItem", channel=channel, key="key"):
        seq: int
        key: str
        pad: str

    publisher = EventBus(url, source="drain-cpu", close_timeout=5.0)
    consumer = EventBus(url, source="drain-cpu", close_timeout=5.0, idempotency_store="memory://")
    clock = _Clock(events, spy)
    options: dict[str, Any] = {"group": "drain", "idempotent": True, "from_beginning": True}
    if batch:

        @consumer.subscribe(Item, batch=BatchPolicy(max_size=500, max_wait=0.05), **options)
        async def on_items(items: list[Item]) -> None:
            for _ in items:
                clock.hit()

    else:

        @consumer.subscribe(Item, concurrency=8, **options)
        async def on_item(item: Item) -> None:
            clock.hit()

    try:
        async with publisher:
            if not url.startswith("memory:"):
                async with consumer:  # create the group before the events exist
                    pass
            for start in range(0, events, 500):
                seqs = range(start, min(events, start + 500))
                await publisher.publish_many(
                    [Item(seq=seq, key=f"k{seq % KEYS}", pad=PAD) for seq in seqs]
                )
            gc.collect()
            if freeze:
                gc.freeze()
            async with consumer:
                await asyncio.wait_for(clock.done.wait(), timeout=600)
            backend = publisher.backend
            if isinstance(backend, ChannelDeleter):  # leave nothing behind on the broker
                await backend.delete_channel(channel)
    finally:
        clock.close()
    handler = "batch handler" if batch else "per-event handler"
    handler += ", gc.freeze()" if freeze else ""
    return (
        f"{handler}: {events} events, {events / clock.wall:,.0f} msg/s, "
        f"CPU {clock.cpu / events * 1e6:.1f} µs/event, "
        f"of which garbage collection {clock.gc_seconds / events * 1e6:.1f} µs "
        f"(collections per generation {clock.collections}), "
        f"load average {os.getloadavg()[0]:.1f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--batch", action="store_true", help="a batch handler")
    parser.add_argument("--py-spy", metavar="FILE", help="record py-spy samples to FILE")
    parser.add_argument("--gc-freeze", action="store_true", help="gc.freeze() before the drain")
    args = parser.parse_args(argv)
    if args.events < 1:
        parser.error("--events must be >= 1")
    if args.py_spy and py_spy() is None:
        parser.error(
            "--py-spy needs py-spy (not beside this Python, not on PATH): pip install py-spy"
        )
    print(asyncio.run(drain(args.url, args.events, args.batch, args.py_spy, args.gc_freeze)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
