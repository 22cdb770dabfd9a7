"""Rounds, timing, medians, spread and memory: runs every figure through every runner.

Rounds are interleaved (round 1 of eventwire, FastStream, raw; then round 2 ...) so a drift
of the shared machine hits every runner alike. Every round uses fresh, uniquely named
channels (``bench-<run id>-<figure>-<runner>-r<round>``); what the run created on the broker
is deleted at the end, also after Ctrl-C or an error.

The publish figures time a channel that is already set up: before the clock starts, every
row publishes one event to it, untimed. eventwire creates a channel on its first publish
(a Kafka topic, a NATS stream, a RabbitMQ exchange, a Redis channel's shard count), 60-160 ms
on Kafka here, while the FastStream and raw rows create theirs in `Runner.prepare`; the
untimed publish puts every row on the same footing (a warm client and a known channel).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import resource
import secrets
import statistics
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from functools import partial

from eventwire._extras import SCHEME_EXTRAS, install_hint
from eventwire.errors import ConfigurationError
from eventwire.plugins import create_backend
from eventwire.urls import redact_url

from eventwire_conformance.bench._urls import broker_kind
from eventwire_conformance.bench.eventwire_runner import BatchRunner, EventwireRunner
from eventwire_conformance.bench.faststream_runner import confirmed_runner, faststream_runner
from eventwire_conformance.bench.model import (
    FIGURES,
    KINDS,
    BenchConfig,
    BenchError,
    BrokerUnreachableError,
    PayloadFactory,
    Runner,
    Tracker,
    bounded,
)
from eventwire_conformance.bench.raw_runner import raw_runner, sweep
from eventwire_conformance.bench.validation import ValidationCost, measure_validation

__all__ = [
    "BenchResult",
    "Progress",
    "Sample",
    "Spread",
    "build_runners",
    "current_rss",
    "peak_rss",
    "run_bench",
    "spread",
]

#: How long closing the runners and deleting the run's channels may take at the end.
CLEANUP_TIMEOUT = 60.0
#: How long a consumer may take to stop (eventwire: let in-flight handlers finish, settle).
STOP_TIMEOUT = 30.0


@dataclasses.dataclass(frozen=True, slots=True)
class Sample:
    """One round of one figure through one runner."""

    figure: str
    kind: str
    round: int
    events: int
    seconds: float
    #: msg/s (for "latency": publish -> handler round trips per second).
    rate: float
    received: int
    duplicates: int
    p50_ms: float | None = None
    p99_ms: float | None = None
    #: RSS growth of the process while the consumer drained (peak minus start), bytes.
    rss_growth: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Spread:
    """The median of several rounds and their range."""

    median: float
    low: float
    high: float
    values: tuple[float, ...]


def spread(values: Sequence[float]) -> Spread:
    return Spread(statistics.median(values), min(values), max(values), tuple(values))


@dataclasses.dataclass
class BenchResult:
    """Everything one run measured."""

    config: BenchConfig
    run_id: str
    backend: str
    labels: dict[str, str]
    unavailable: dict[str, str]
    samples: list[Sample] = dataclasses.field(default_factory=list)
    started_at: float = dataclasses.field(default_factory=time.time)
    duration: float = 0.0
    peak_rss: int = 0
    deleted: list[str] = dataclasses.field(default_factory=list)
    cleanup_error: str | None = None
    #: The cost of contract validation (measured with the eventwire row).
    validation: ValidationCost | None = None

    def stat(self, figure: str, kind: str, metric: str = "rate") -> Spread | None:
        """The spread of `metric` ("rate", "p50_ms", "p99_ms", "rss_growth") over rounds."""
        values = [
            float(value)
            for s in self.samples
            if s.figure == figure and s.kind == kind and (value := getattr(s, metric)) is not None
        ]
        return spread(values) if values else None


class Progress:
    """What the harness reports while it runs (the CLI draws it; the default draws nothing)."""

    def begin(self, total: int) -> None: ...

    def step(self, description: str) -> None: ...

    def advance(self) -> None: ...


# -- memory ----------------------------------------------------------------------------------

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def peak_rss() -> int:
    """The process's peak resident set size so far, in bytes (`resource.getrusage`)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if os.uname().sysname == "Darwin" else peak * 1024


def current_rss() -> int:
    """The process's resident set size now, in bytes (``/proc/self/statm``; else the peak)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return peak_rss()


@asynccontextmanager
async def _rss_growth(result: list[int], interval: float = 0.02) -> AsyncIterator[None]:
    """Sample RSS while inside; appends the peak growth over the starting RSS to `result`."""
    start = current_rss()
    peak = start

    async def sample() -> None:
        nonlocal peak
        while True:
            peak = max(peak, current_rss())
            await asyncio.sleep(interval)

    task = asyncio.create_task(sample())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        result.append(max(peak, current_rss()) - start)


@asynccontextmanager
async def _consuming(
    runner: Runner, channel: str, group: str, tracker: Tracker, config: BenchConfig
) -> AsyncIterator[None]:
    """`Runner.consume` with bounded start and stop: a hanging client fails the run."""
    manager = runner.consume(channel, group, tracker)
    what = f"the {runner.kind} consumer on {channel}"
    await bounded(manager.__aenter__(), config.stall_timeout, f"starting {what}")
    try:
        yield
    except BaseException as exc:
        with contextlib.suppress(Exception):
            await bounded(
                manager.__aexit__(type(exc), exc, exc.__traceback__),
                STOP_TIMEOUT,
                f"stopping {what}",
            )
        raise
    await bounded(manager.__aexit__(None, None, None), STOP_TIMEOUT, f"stopping {what}")


# -- the figures -----------------------------------------------------------------------------


def _batches(n: int, size: int) -> list[range]:
    return [range(i, min(i + size, n)) for i in range(0, n, size)]


async def _publish_all(runner: Runner, channel: str, n: int, batch: int) -> None:
    for seqs in _batches(n, batch):
        await runner.publish_batch(channel, seqs)


def _fail_on_error(tracker: Tracker, task: asyncio.Task[None]) -> None:
    """A publisher that fails ends the wait for its events at once."""
    if not task.cancelled() and (error := task.exception()) is not None:
        tracker.fail(error)


async def _measure(
    figure: str,
    runner: Runner,
    channel: str,
    group: str,
    config: BenchConfig,
    rnd: int,
    progress: Progress,
) -> Sample:
    n = config.events
    what = f"{figure} via {runner.kind} on {channel}"
    await runner.prepare(channel, group, figure)
    if figure in ("publish", "publish_many"):
        await runner.publish_one(channel, n)  # untimed: sets the channel up (module docstring)
    if figure == "publish":
        start = time.perf_counter()
        for seq in range(n):
            await runner.publish_one(channel, seq)
        seconds = time.perf_counter() - start
        return Sample(figure, runner.kind, rnd, n, seconds, n / seconds, n, 0)
    if figure == "publish_many":
        start = time.perf_counter()
        await _publish_all(runner, channel, n, config.batch)
        seconds = time.perf_counter() - start
        return Sample(figure, runner.kind, rnd, n, seconds, n / seconds, n, 0)
    if figure == "e2e":
        tracker = Tracker(n)
        async with _consuming(runner, channel, group, tracker, config):
            start_ns = time.perf_counter_ns()
            publisher = asyncio.create_task(_publish_all(runner, channel, n, config.batch))
            publisher.add_done_callback(partial(_fail_on_error, tracker))
            try:
                await tracker.wait_all(config.stall_timeout, what)
            finally:
                if not publisher.done():
                    publisher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await publisher
        seconds = ((tracker.last_ns or start_ns) - start_ns) / 1e9
        return Sample(
            figure, runner.kind, rnd, n, seconds, n / seconds, tracker.received, tracker.duplicates
        )
    if figure == "drain":
        progress.step(f"drain · {runner.kind} · round {rnd + 1} · filling {n:,} events")
        await _publish_all(runner, channel, n, config.batch)
        progress.step(f"drain · {runner.kind} · round {rnd + 1} · draining")
        tracker = Tracker(n)
        growth: list[int] = []
        async with _rss_growth(growth), _consuming(runner, channel, group, tracker, config):
            await tracker.wait_all(config.stall_timeout, what)
        first, last = tracker.first_ns or 0, tracker.last_ns or 0
        seconds = max(last - first, 1) / 1e9
        return Sample(
            figure,
            runner.kind,
            rnd,
            n,
            seconds,
            (n - 1) / seconds,
            tracker.received,
            tracker.duplicates,
            rss_growth=growth[0],
        )
    if figure == "latency":
        m = min(n, config.latency_samples)
        tracker = Tracker(m, latencies=True)
        async with _consuming(runner, channel, group, tracker, config):
            start = time.perf_counter()
            for seq in range(m):
                await runner.publish_one(channel, seq)
                await tracker.wait_one(seq, config.stall_timeout, what)
            seconds = time.perf_counter() - start
        latencies = sorted(tracker.latencies_ns or [0])
        p50 = statistics.median(latencies) / 1e6
        p99 = latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))] / 1e6
        return Sample(
            figure,
            runner.kind,
            rnd,
            m,
            seconds,
            m / seconds,
            tracker.received,
            tracker.duplicates,
            p50_ms=p50,
            p99_ms=p99,
        )
    raise ValueError(f"unknown figure {figure!r}")


# -- the run ---------------------------------------------------------------------------------


def build_runners(
    config: BenchConfig, payloads: PayloadFactory
) -> tuple[list[Runner], dict[str, str]]:
    """The runners for the URL's broker, and why any row is missing."""
    runners: list[Runner] = []
    unavailable: dict[str, str] = {}
    try:
        eventwire = EventwireRunner(config, payloads)
    except ImportError as exc:  # the backend plugin is registered but cannot load
        unavailable["eventwire"] = f"the backend plugin cannot load: {exc}"
    else:
        if "eventwire" in config.runners:
            runners.append(eventwire)
        if "eventwire_batch" in config.runners:
            runners.append(BatchRunner(config, payloads))
    makers = (
        ("faststream", faststream_runner),
        ("faststream_confirmed", confirmed_runner),
        ("raw", raw_runner),
    )
    for kind, make in makers:
        if kind not in config.runners:
            continue
        try:
            runner = make(config, payloads)
        except ImportError as exc:
            if isinstance(exc, ModuleNotFoundError):
                scheme = config.url.split("://", 1)[0].lower()
                unavailable[kind] = install_hint(
                    exc, "this baseline", prefer=SCHEME_EXTRAS.get(scheme)
                )
            else:
                unavailable[kind] = f"client library cannot load: {exc}"
            continue
        if runner is not None:
            runners.append(runner)
        elif kind == "faststream_confirmed":
            unavailable[kind] = "only for RabbitMQ and Kafka, where FastStream's default does less"
    for kind in KINDS:
        if kind not in config.runners:
            unavailable.setdefault(kind, "not measured in this run (--runners)")
    if broker_kind(config.url) == "memory":
        unavailable["faststream"] = "not applicable: memory:// has no FastStream broker"
        unavailable["faststream_confirmed"] = unavailable["faststream"]
        unavailable["raw"] = "not applicable: memory:// has no client library"
    return runners, unavailable


async def _start(runner: Runner, config: BenchConfig) -> None:
    try:
        await bounded(runner.start(), config.connect_timeout, "connecting")
    except (asyncio.CancelledError, ConfigurationError):
        raise
    except Exception as exc:  # each client library has its own connection errors
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        where = redact_url(config.url)
        if not runner.kind.startswith("eventwire") and _uses_tls(config.url):
            advice = (
                f"{where} is a TLS listener, and the FastStream and raw-client rows take none "
                "of eventwire's TLS and credential options: measure them on a plain "
                "listener, or give --runners eventwire,eventwire_batch"
            )
        else:
            advice = (
                f"is a broker running at {where}? (In a clone of the eventwire repository, "
                "conformance/brokers/brokers up starts one.)"
            )
        raise BrokerUnreachableError(
            f"cannot reach the broker for {runner.kind} ({reason}) within "
            f"{config.connect_timeout:.0f}s; {advice}"
        ) from exc


def _uses_tls(url: str) -> bool:
    """Whether eventwire's backend for `url` connects over TLS (its settings say so)."""
    try:
        settings = getattr(create_backend(url), "settings", None)
    except Exception:  # the eventwire row reports a bad URL itself
        return False
    return bool(getattr(settings, "tls", False))


async def run_bench(
    config: BenchConfig,
    progress: Progress | None = None,
    results: list[BenchResult] | None = None,
) -> BenchResult:
    """Run every figure of `config` through every runner; always clean up the broker.

    The result is also appended to `results` as soon as it exists, so a caller interrupted
    half-way (Ctrl-C) can still report what was measured and deleted.
    """
    progress = progress or Progress()
    run_id = secrets.token_hex(4)
    marker = f"bench-{run_id}"
    payloads = PayloadFactory(config.size, config.keys)
    runners, unavailable = build_runners(config, payloads)
    backend = broker_kind(config.url) or "?"
    for runner in runners:
        if isinstance(runner, EventwireRunner):
            backend = runner.backend_name
    result = BenchResult(config, run_id, backend, {r.kind: r.label for r in runners}, unavailable)
    if results is not None:
        results.append(result)
    group = f"{marker}-group"
    channels: list[str] = []
    started: list[Runner] = []
    clock = time.perf_counter()
    progress.begin(
        config.rounds
        * sum(
            figure in getattr(runner, "figures", FIGURES)
            for figure in config.figures
            for runner in runners
        )
    )
    try:
        for runner in runners:
            progress.step(f"connecting · {runner.kind}")
            await _start(runner, config)
            started.append(runner)
        for figure in config.figures:
            for rnd in range(config.rounds):
                for runner in runners:
                    if figure not in getattr(runner, "figures", FIGURES):
                        continue
                    channel = f"{marker}-{figure.replace('_', '-')}-{runner.kind}-r{rnd}"
                    channels.append(channel)
                    progress.step(f"{figure} · {runner.kind} · round {rnd + 1}/{config.rounds}")
                    try:
                        sample = await _measure(
                            figure, runner, channel, group, config, rnd, progress
                        )
                    except (BenchError, ConfigurationError):
                        raise
                    except Exception as exc:  # a broker that went away, a client's error
                        raise BenchError(
                            f"the {runner.kind} row failed in {figure} round {rnd + 1}: "
                            f"{type(exc).__name__}: {exc}"
                        ) from exc
                    result.samples.append(sample)
                    if backend == "memory":  # free the retained log before the next figure
                        await sweep(config.url, marker, [channel], [group])
                    progress.advance()
        if "eventwire" in config.runners and "eventwire" not in unavailable:
            progress.step("contract validation")
            result.validation = measure_validation(payloads, min(config.events, 5_000))
    finally:
        progress.step("cleaning up")
        try:
            await bounded(
                _cleanup(config, started, marker, channels, group, result),
                CLEANUP_TIMEOUT,
                "cleaning up",
            )
        except BaseException as exc:  # report, never hide the original error
            result.cleanup_error = f"{type(exc).__name__}: {exc}"
        result.duration = time.perf_counter() - clock
        result.peak_rss = peak_rss()
    return result


async def _cleanup(
    config: BenchConfig,
    started: list[Runner],
    marker: str,
    channels: list[str],
    group: str,
    result: BenchResult,
) -> None:
    errors: list[str] = []
    for runner in started:
        try:
            await bounded(runner.close(), STOP_TIMEOUT, f"closing {runner.kind}")
        except Exception as exc:
            errors.append(f"closing {runner.kind}: {type(exc).__name__}: {exc}")
    if channels:
        try:
            raw_client = any(not runner.kind.startswith("eventwire") for runner in started)
            result.deleted = await sweep(
                config.url, marker, channels, [group], raw_client=raw_client
            )
        except Exception as exc:
            errors.append(f"deleting the run's channels: {type(exc).__name__}: {exc}")
    if errors:
        result.cleanup_error = "; ".join(errors)
