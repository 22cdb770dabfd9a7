"""What every part of the benchmark shares: settings, figures, payloads, the receive tracker.

A *runner* is one way of doing the work (eventwire, FastStream alone, the raw client); the
harness times the same figures through each runner on the same broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, TypeVar

from eventwire.errors import EventwireError

from eventwire_conformance._within import within

__all__ = [
    "FIGURES",
    "KINDS",
    "BenchConfig",
    "BenchError",
    "BrokerUnreachableError",
    "ConsumerLoop",
    "MissingEventsError",
    "PayloadFactory",
    "Runner",
    "Tracker",
    "bounded",
]

#: The figures, in the order they run and print.
FIGURES = ("publish", "publish_many", "e2e", "drain", "latency")
#: The runners, in the order they run and print: eventwire, eventwire's batch API (the
#: consuming figures), FastStream's default, FastStream held to eventwire's guarantees
#: (RabbitMQ only, where its default does less), the raw client.
KINDS = ("eventwire", "eventwire_batch", "faststream", "faststream_confirmed", "raw")


class BenchError(EventwireError):
    """The benchmark could not produce trustworthy numbers."""


class MissingEventsError(BenchError):
    """A consumer did not receive every event that was published."""


class BrokerUnreachableError(BenchError):
    """The broker the URL names did not answer in time."""


@dataclasses.dataclass(frozen=True, slots=True)
class BenchConfig:
    """The settings of one benchmark run."""

    url: str
    events: int = 20_000
    size: int = 128
    keys: int = 16
    concurrency: int = 8
    rounds: int = 3
    figures: tuple[str, ...] = FIGURES
    #: Which runners to measure (a subset of `KINDS`).
    runners: tuple[str, ...] = KINDS
    #: Events per pipelined call (``publish_many`` / a client batch).
    batch: int = 500
    #: Publish -> handler round trips timed for the latency figure.
    latency_samples: int = 1_000
    #: No event received for this long means the consumer is stuck: fail.
    stall_timeout: float = 30.0
    #: Connecting to the broker must succeed within this many seconds.
    connect_timeout: float = 10.0


class PayloadFactory:
    """Builds the benchmark payload: ``seq``, ``key``, ``sent_ns`` and padding to `size` bytes.

    ``sent_ns`` is `time.perf_counter_ns` when the payload is built (publisher and consumer
    share the process, so one clock serves both).
    """

    def __init__(self, size: int, keys: int) -> None:
        self.keys = keys
        sample = {"seq": 10**6, "key": f"k{keys - 1}", "sent_ns": time.perf_counter_ns(), "pad": ""}
        base = len(json.dumps(sample, separators=(",", ":")))
        self.pad = "x" * max(0, size - base)

    def key(self, seq: int) -> str:
        return f"k{seq % self.keys}"

    def fields(self, seq: int) -> dict[str, Any]:
        return {
            "seq": seq,
            "key": f"k{seq % self.keys}",
            "sent_ns": time.perf_counter_ns(),
            "pad": self.pad,
        }

    def body(self, seq: int) -> bytes:
        return json.dumps(self.fields(seq), separators=(",", ":")).encode()


class Tracker:
    """Counts what a consumer received, by sequence number; fails loudly when some is missing."""

    def __init__(self, expected: int, *, latencies: bool = False) -> None:
        self.expected = expected
        self.received = 0
        self.duplicates = 0
        self.foreign = 0
        self.first_ns: int | None = None
        self.last_ns: int | None = None
        self.latencies_ns: list[int] | None = [] if latencies else None
        self._seen = bytearray(expected)
        self._done = asyncio.Event()
        self._progress = time.monotonic()
        self._waiters: dict[int, asyncio.Future[None]] = {}
        self.error: BaseException | None = None

    def hit(self, seq: int, sent_ns: int) -> None:
        """Record that the handler ran for event `seq` (published at `sent_ns`)."""
        now = time.perf_counter_ns()
        if not 0 <= seq < self.expected:
            self.foreign += 1
            return
        if self._seen[seq]:
            self.duplicates += 1
            return
        self._seen[seq] = 1
        self.received += 1
        if self.first_ns is None:
            self.first_ns = now
        self.last_ns = now
        self._progress = time.monotonic()
        if self.latencies_ns is not None:
            self.latencies_ns.append(now - sent_ns)
        waiter = self._waiters.pop(seq, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self.received == self.expected:
            self._done.set()

    def fail(self, error: BaseException) -> None:
        """The consumer or the publisher died: wake every waiter so the run stops with `error`."""
        self.error = error
        self._done.set()
        for waiter in self._waiters.values():
            if not waiter.done():
                waiter.set_result(None)

    def _check(self, what: str) -> None:
        if self.error is not None:
            raise BenchError(
                f"{what} failed: {type(self.error).__name__}: {self.error}"
            ) from self.error

    def missing(self, limit: int = 10) -> list[int]:
        """Up to `limit` sequence numbers not received yet."""
        found: list[int] = []
        for seq, seen in enumerate(self._seen):
            if not seen:
                found.append(seq)
                if len(found) >= limit:
                    break
        return found

    async def wait_all(self, stall_timeout: float, what: str) -> None:
        """Return once every event arrived; `MissingEventsError` if progress stops."""
        self._progress = time.monotonic()
        while not self._done.is_set():
            left = self._progress + stall_timeout - time.monotonic()
            if left <= 0:
                raise self._missing_error(what, stall_timeout)
            try:
                await asyncio.wait_for(self._done.wait(), timeout=min(left, 1.0))
            except TimeoutError:
                continue
        self._check(what)

    async def wait_one(self, seq: int, timeout: float, what: str) -> None:
        """Return once event `seq` arrived; `MissingEventsError` after `timeout` seconds."""
        if self._seen[seq]:
            return
        waiter = self._waiters[seq] = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            raise self._missing_error(what, timeout) from None
        self._check(what)

    def _missing_error(self, what: str, waited: float) -> MissingEventsError:
        return MissingEventsError(
            f"{what}: received {self.received:,} of {self.expected:,} events, none new for "
            f"{waited:.0f}s (missing e.g. seq {self.missing()}; duplicates {self.duplicates}, "
            f"foreign {self.foreign}). The consumer lost events or is stuck; the figures of "
            "this run are not valid"
        )


T = TypeVar("T")


async def bounded(awaitable: Awaitable[T], timeout: float, what: str) -> T:
    """Await `awaitable` for at most `timeout` seconds, then give up on it (`BenchError`).

    Through `within`: a client that hangs while being cancelled cannot hang the benchmark.
    """
    finished = await within(awaitable, timeout)
    if finished is None:
        raise BenchError(f"{what} did not finish within {timeout:.0f}s")
    return finished.result()


class ConsumerLoop:
    """A consumer loop in the background that stops between two fetches.

    ``loop(stopping)`` must return soon after ``stopping`` is set (fetch with a short
    timeout). If it raises, `tracker` fails with the error.
    """

    def __init__(
        self,
        loop: Callable[[asyncio.Event], Coroutine[Any, Any, None]],
        tracker: Tracker,
    ) -> None:
        self.stopping = asyncio.Event()

        async def guarded() -> None:
            try:
                await loop(self.stopping)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:
                tracker.fail(exc)

        self._task = asyncio.create_task(guarded())

    async def stop(self, timeout: float = 5.0) -> None:
        """Ask the loop to stop; cancel it if it has not stopped after `timeout` seconds."""
        self.stopping.set()
        with contextlib.suppress(BenchError, asyncio.CancelledError):
            await bounded(asyncio.shield(self._task), timeout, "stopping the consumer")
        if not self._task.done():
            self._task.cancel()


class Runner(Protocol):
    """One way of doing the benchmark's work on one broker."""

    #: One of `KINDS`.
    kind: str
    #: What it is, with versions and settings (printed under the table).
    label: str

    async def start(self) -> None:
        """Connect (the harness bounds the time)."""
        ...

    async def close(self) -> None:
        """Disconnect; idempotent."""
        ...

    async def prepare(self, channel: str, group: str, figure: str) -> None:
        """Create what must exist before `figure` publishes to `channel` for `group`."""
        ...

    async def publish_one(self, channel: str, seq: int) -> None:
        """Publish event `seq` and wait for the broker's confirmation."""
        ...

    async def publish_batch(self, channel: str, seqs: Sequence[int]) -> None:
        """Publish events `seqs` pipelined; return once the broker confirmed all."""
        ...

    def consume(
        self, channel: str, group: str, tracker: Tracker
    ) -> AbstractAsyncContextManager[None]:
        """Run a consumer of `group` on `channel` (from its oldest event) while inside."""
        ...
