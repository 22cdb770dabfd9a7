"""``eventwire contracts can-i-deploy``: would a provider's contract break its consumers?"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from eventwire.contracts._commands import clear_errors
from eventwire.contracts._deploy import Expectation, can_i_deploy

__all__ = ["COMMAND", "can_i_deploy_command"]

_STATUS = {
    "ok": ("ok", "green"),
    "breaks": ("BREAKS", "red bold"),
    "not-sent": ("NOT SENT", "red bold"),
    "other-provider": ("other provider", "dim"),
}


def _value(finding_value: object) -> str:
    return json.dumps(finding_value, ensure_ascii=False, sort_keys=True)


def _table(expectations: list[Expectation]) -> Table:
    table = Table(show_lines=True)
    for column in ("consumer", "channel", "message", "verdict", "path", "why", "counter-example"):
        table.add_column(column, overflow="fold")
    for e in expectations:
        label, style = _STATUS[e.status]
        if not e.findings:
            table.add_row(e.consumer, e.channel, e.message, label, "", "", "", style=style)
            continue
        for f in e.findings:
            table.add_row(
                e.consumer,
                e.channel,
                e.message,
                label,
                f.path,
                f.reason,
                _value(f.counter_example) if f.has_counter_example else "",
                style=style,
            )
    return table


@click.command("can-i-deploy")
@click.argument("provider", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--consumer",
    "consumers",
    multiple=True,
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="A consumer's contract (its receive operations are its expectations); repeat it.",
)
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@clear_errors
def can_i_deploy_command(provider: Path, consumers: tuple[Path, ...], fmt: str) -> None:
    """Check that every consumer accepts everything PROVIDER may send; exit 1 if not.

    Per consumer and message (matched by channel address and message name), the
    provider's payload schema must be included in the consumer's; each reason is given with
    its JSON path and, where one is found, a payload the provider may send that the consumer
    rejects. A consumer expecting a message the provider does not send is reported too.
    """
    from eventwire.contracts._load import load_document

    expectations = can_i_deploy(
        load_document(provider),
        [(str(c), load_document(c)) for c in consumers],
        provider_label=str(provider),
    )
    broken = [e for e in expectations if e.breaks]
    if fmt == "json":
        click.echo(
            json.dumps(
                {
                    "provider": str(provider),
                    "ok": not broken,
                    "expectations": [{**asdict(e), "breaks": e.breaks} for e in expectations],
                },
                indent=2,
                default=str,
            )
        )
    else:
        console = Console(highlight=False)
        if not console.is_terminal:
            console.width = 160
        console.print(_table(expectations))
        if broken:
            who = sorted({e.consumer for e in broken})
            console.print(
                f"{provider}: would break {', '.join(who)} ({len(broken)} message(s))",
                style="red bold",
                markup=False,
            )
        else:
            console.print(
                f"{provider}: every consumer accepts what it may send", style="green", markup=False
            )
    if broken:
        raise click.exceptions.Exit(1)


#: The command, typed for ``contracts.cli`` (which imports this module at its end).
COMMAND: click.Command = can_i_deploy_command
