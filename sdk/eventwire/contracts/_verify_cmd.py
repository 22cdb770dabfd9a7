"""``eventwire contracts verify``: check live traffic against a contract."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

import click
from rich.console import Console
from rich.live import Live
from rich.text import Text

from eventwire.contracts._commands import clear_errors
from eventwire.contracts._verify import Seen, VerifyReport, verify_live, write_json, write_junit

__all__ = ["COMMAND", "verify"]


def _status(counts: dict[str, list[int]]) -> Text:
    seen = sum(c[0] for c in counts.values())
    bad = sum(c[1] for c in counts.values())
    parts = ", ".join(f"{name} {c[0]}" for name, c in counts.items())
    return Text(f"seen {seen}, violations {bad}  ({parts})", style="red" if bad else "green")


@click.command()
@click.argument("contract", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("url")
@click.option(
    "--channel",
    "channels",
    multiple=True,
    help="A channel (key or address) to read; repeat it. Default: every channel of the "
    "contract but its dead-letter channels.",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds to watch (default 10 unless --count is given).",
)
@click.option("--count", type=click.IntRange(min=1), help="Stop after this many messages.")
@click.option(
    "--from-beginning",
    is_flag=True,
    help="Read what the channels retain, not only what is published from now on.",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a JSON report here.",
)
@click.option(
    "--junit",
    "junit_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a JUnit XML report here.",
)
@clear_errors
def verify(
    contract: Path,
    url: str,
    channels: tuple[str, ...],
    duration: float | None,
    count: int | None,
    from_beginning: bool,
    json_path: Path | None,
    junit_path: Path | None,
) -> None:
    """Check every message on the channels of CONTRACT at the broker URL.

    Reads with a throw-away consumer group (removed afterwards where the backend can) and
    checks each message's CloudEvents attributes, that its type is declared on its channel,
    its key, headers and payload. Ctrl-C stops watching and reports. Exit status: 0 when
    every message seen conforms, 1 on a violation, 3 when nothing was seen, 2 on bad input.
    """
    from eventwire.contracts._load import load_document

    document = load_document(contract)
    console = Console(highlight=False, soft_wrap=True)
    counts: dict[str, list[int]] = {}
    with Live(_status(counts), console=console, transient=True, auto_refresh=False) as live:

        def on_message(seen: Seen) -> None:
            tally = counts.setdefault(seen.channel, [0, 0])
            tally[0] += 1
            if seen.problems:
                tally[1] += 1
                label = seen.type or "?"
                console.print(
                    f"VIOLATION #{seen.number} {seen.channel} {label} id={seen.id or '?'}",
                    style="red bold",
                    markup=False,
                )
                for problem in seen.problems:
                    console.print(f"  {problem.rule}: {problem.detail}", markup=False)
                console.print(f"  body: {seen.excerpt}", style="dim", markup=False)
            live.update(_status(counts), refresh=True)

        def on_ready(report: VerifyReport) -> None:
            for name in report.channels:
                counts.setdefault(name, [0, 0])
            console.print(
                f"watching {', '.join(report.channels)} on {report.url} (group {report.group})",
                markup=False,
            )
            live.update(_status(counts), refresh=True)

        async def watch() -> VerifyReport:
            stop = asyncio.Event()  # Ctrl-C or SIGTERM: stop watching and report
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.add_signal_handler(sig, stop.set)
            return await verify_live(
                document,
                url,
                source=str(contract),
                channels=channels,
                duration=duration,
                count=count,
                from_beginning=from_beginning,
                on_message=on_message,
                on_ready=on_ready,
                stop=stop,
            )

        report = asyncio.run(watch())
    _summary(console, report)
    if json_path is not None:
        write_json(report, json_path)
    if junit_path is not None:
        write_junit(report, junit_path)
    raise click.exceptions.Exit(report.exit_code())


def _summary(console: Console, report: VerifyReport) -> None:
    for channel, (total, bad) in report.counts().items():
        console.print(
            f"{channel}: {total} seen, {bad} violation(s)",
            style="red" if bad else "",
            markup=False,
        )
    if report.group_removed is None:
        console.print(
            f"note: this backend cannot remove consumer groups; {report.group} remains",
            style="yellow",
            markup=False,
        )
    elif not report.group_removed:
        console.print(f"note: removing the group {report.group} failed", style="yellow")
    bad = len(report.violations)
    if bad:
        verdict, style = f"{bad} of {len(report.seen)} message(s) break the contract", "red bold"
    elif report.seen:
        verdict, style = f"all {len(report.seen)} message(s) conform", "green"
    else:
        verdict, style = "no message seen", "yellow"
    console.print(f"{report.contract} on {report.url}: {verdict}", style=style, markup=False)


#: The command, typed for ``contracts.cli`` (which imports this module at its end).
COMMAND: click.Command = verify
