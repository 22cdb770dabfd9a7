"""The ``eventwire`` command line. Subcommands live in their own modules, loaded on use.

Every subcommand, built in or not, is an entry point of the group ``eventwire.commands``
(``name = "package.module:click_command"``): the conformance suite registers ``conformance``
and ``bench`` there like any other package would, so the SDK imports nothing of it.
"""

from __future__ import annotations

import sys
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import click

from eventwire.errors import EventwireError

__all__ = ["main"]

#: The entry-point group of the subcommands.
GROUP = "eventwire.commands"


def commands() -> dict[str, EntryPoint]:
    """Every installed subcommand by name (nothing is imported)."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(commands())

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        entry = commands().get(name)
        if entry is None:
            return None
        try:
            command = entry.load()
        except Exception as exc:  # a broken or half-installed package
            return _unavailable(name, entry, f"{type(exc).__name__}: {exc}")
        if not isinstance(command, click.Command):
            return _unavailable(name, entry, f"{entry.value} is not a click command")
        return command


def _unavailable(name: str, entry: EntryPoint, why: str) -> click.Command:
    """A stand-in that says why a subcommand cannot load (instead of 'No such command')."""
    package = entry.dist.name if entry.dist is not None else entry.module

    def fail() -> None:
        raise click.ClickException(
            f"'eventwire {name}' cannot load ({why}); reinstall {package}, or uninstall it "
            f"if you do not need the command"
        )

    return click.Command(name, callback=fail, help=f"(unavailable: {why})")


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="eventwire", prog_name="eventwire")
def cli() -> None:
    """eventwire: domain events with the same guarantees on every broker."""


def main(argv: list[str] | None = None) -> Any:
    """Console entry point: runs the CLI and turns eventwire errors into clear messages."""
    try:
        return cli.main(args=argv, prog_name="eventwire", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except EventwireError as exc:
        click.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(2)
