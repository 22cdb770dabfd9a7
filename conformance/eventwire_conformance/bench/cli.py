"""``eventwire bench URL``: eventwire vs FastStream alone vs the raw client, on one broker."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click
from eventwire.errors import ConfigurationError
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.progress import Progress as RichProgress

from eventwire_conformance.bench.harness import BenchResult, Progress, run_bench
from eventwire_conformance.bench.model import FIGURES, KINDS, BenchConfig, BenchError
from eventwire_conformance.bench.report import print_table, write_json

__all__ = ["bench"]

#: --quick: a small run that checks the machinery (used by the tests), not a measurement.
QUICK = {"events": 1_000, "rounds": 2, "latency_samples": 100}
MAX_EVENTS = 10_000_000
MAX_SIZE = 1024 * 1024


class _Bar(Progress):
    def __init__(self, progress: RichProgress) -> None:
        self._progress = progress
        self._task: TaskID | None = None

    def begin(self, total: int) -> None:
        self._task = self._progress.add_task("starting", total=total)

    def step(self, description: str) -> None:
        if self._task is not None:
            self._progress.update(self._task, description=description)

    def advance(self) -> None:
        if self._task is not None:
            self._progress.advance(self._task)


def _subset(value: str | None, choices: tuple[str, ...], what: str) -> tuple[str, ...]:
    if value is None:
        return choices
    wanted = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [v for v in wanted if v not in choices]
    if unknown or not wanted:
        raise click.BadParameter(
            f"unknown {what} {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(choices)}"
        )
    return tuple(c for c in choices if c in wanted)


def _figures(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[str, ...]:
    return _subset(value, FIGURES, "figure(s)")


def _runners(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[str, ...]:
    return _subset(value, KINDS, "runner(s)")


@click.command()
@click.argument("url")
@click.option(
    "--events",
    "-n",
    type=click.IntRange(10, MAX_EVENTS),
    default=None,
    help="Events per figure and round [default: 20,000; 1,000 with --quick].",
)
@click.option(
    "--size",
    type=click.IntRange(64, MAX_SIZE),
    default=128,
    show_default=True,
    help="Approximate JSON payload size in bytes.",
)
@click.option(
    "--keys",
    type=click.IntRange(1, 100_000),
    default=16,
    show_default=True,
    help="Distinct ordering keys the events are spread over.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 1024),
    default=8,
    show_default=True,
    help="Handler concurrency of the eventwire subscriber.",
)
@click.option(
    "--rounds",
    type=click.IntRange(1, 20),
    default=None,
    help="Rounds per figure; each figure is the median [default: 3; 2 with --quick].",
)
@click.option(
    "--only",
    "figures",
    callback=_figures,
    default=None,
    metavar="FIGURES",
    help=f"Comma-separated subset of: {', '.join(FIGURES)}.",
)
@click.option(
    "--runners",
    "runners",
    callback=_runners,
    default=None,
    metavar="RUNNERS",
    help=f"Comma-separated subset of: {', '.join(KINDS)} [default: all].",
)
@click.option("--quick", is_flag=True, help="Small run that checks the machinery, not speed.")
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the numbers to this JSON file.",
)
def bench(
    url: str,
    events: int | None,
    size: int,
    keys: int,
    concurrency: int,
    rounds: int | None,
    figures: tuple[str, ...],
    runners: tuple[str, ...],
    quick: bool,
    json_path: Path | None,
) -> None:
    """Measure eventwire against FastStream alone and the raw client library on URL.

    Figures: awaited publish, pipelined publish_many, consume while publishing, drain of a
    pre-filled channel (msg/s) and publish→handler latency (ms); each the median of several
    rounds with its min-max. Every consumed event is counted: a missing one fails the run.
    memory:// has only the eventwire rows. Exit codes: 0 done, 1 broker unreachable, a
    row failed or events missing, 2 bad input, 130 interrupted (what the run created is
    deleted in every case).
    """
    config = BenchConfig(
        url=url,
        events=events or (QUICK["events"] if quick else 20_000),
        size=size,
        keys=keys,
        concurrency=concurrency,
        rounds=rounds or (QUICK["rounds"] if quick else 3),
        figures=figures,
        runners=runners,
        latency_samples=QUICK["latency_samples"] if quick else 1_000,
    )
    stderr = Console(stderr=True)
    results: list[BenchResult] = []
    try:
        with RichProgress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=stderr,
            transient=True,
        ) as progress:
            result = asyncio.run(run_bench(config, _Bar(progress), results))
    except ConfigurationError as exc:
        raise click.BadParameter(str(exc), param_hint="URL") from None
    except BenchError as exc:
        _report_cleanup(stderr, results)
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        stderr.print("[yellow]interrupted[/yellow]")
        _report_cleanup(stderr, results)
        sys.exit(130)
    print_table(result)
    if json_path is not None:
        write_json(result, json_path)
        stderr.print(f"wrote {json_path}")


def _report_cleanup(console: Console, results: list[BenchResult]) -> None:
    if not results:
        return
    result = results[0]
    if result.cleanup_error:
        console.print(f"[yellow]cleanup: {result.cleanup_error}[/yellow]")
    else:
        console.print(
            f"cleanup: deleted {len(result.deleted)} broker object(s) of run {result.run_id}"
        )
