"""``eventwire contracts mock``: publish a contract's messages as a mock producer."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from eventwire.contracts._commands import clear_errors
from eventwire.contracts._mock import MockMessage, plan, run_mock

__all__ = ["COMMAND", "mock"]


@click.command()
@click.argument("contract", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("url")
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    help="Messages per second (default: as fast as the broker confirms).",
)
@click.option(
    "--count",
    type=click.IntRange(min=1),
    help="How many messages to publish (default: every example once; with --generated, "
    "also 10 generated messages per sent message).",
)
@click.option(
    "--generated",
    is_flag=True,
    help="After the examples, publish generated messages that are valid against the contract.",
)
@clear_errors
def mock(contract: Path, url: str, rate: float | None, count: int | None, generated: bool) -> None:
    """Publish the messages CONTRACT sends to the broker URL, as a producer would.

    Every message of every send operation goes to its channel as an eventwire envelope
    (CloudEvents headers, ordering key): first its examples, then, with --generated,
    generated valid messages.
    """
    from eventwire.contracts._load import load_document

    document = load_document(contract)
    console = Console(highlight=False, soft_wrap=True)
    with console.status("building the messages from the contract"):
        messages = plan(document, count=count, generated=generated, source=str(contract))
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("publishing", total=None)

        def on_publish(message: MockMessage, number: int, total: int) -> None:
            progress.update(
                task,
                completed=number,
                total=total,
                description=f"{message.name} -> {message.channel}",
            )

        report = asyncio.run(
            run_mock(
                document,
                url,
                source=str(contract),
                rate=rate,
                messages=messages,
                on_publish=on_publish,
            )
        )
    for (channel, name), n in sorted(report.published.items()):
        console.print(f"{channel}: {n} x {name}", markup=False)
    console.print(
        f"published {report.total} message(s) to {report.url} in {report.seconds:.1f}s",
        style="green",
        markup=False,
    )


#: The command, typed for ``contracts.cli`` (which imports this module at its end).
COMMAND: click.Command = mock
