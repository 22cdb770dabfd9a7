"""The ``eventwire`` command line. Subcommands live in their own modules, loaded on use."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from eventwire.errors import EventwireError

__all__ = ["main"]

#: subcommand -> "module:attribute" (imported only when the subcommand runs or is listed)
COMMANDS = {
    "backends": "eventwire.cli._backends:backends",
    "conformance": "eventwire_conformance.cli:conformance",
    "bench": "eventwire_conformance.bench.cli:bench",
    "asyncapi": "eventwire.contracts.cli:asyncapi",
    "contracts": "eventwire.contracts.cli:contracts",
    "flow": "eventwire.flow.cli:flow",
    "run": "eventwire.runner.cli:run",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        try:
            command = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            return _unavailable(name, f"{type(exc).__name__}: {exc}")
        if not isinstance(command, click.Command):
            return _unavailable(name, f"{target} is not a click command")
        return command


def _unavailable(name: str, why: str) -> click.Command:
    """A stand-in that says why a subcommand cannot load (instead of 'No such command')."""

    def fail() -> None:
        raise click.ClickException(f"'eventwire {name}' cannot load ({why}); reinstall eventwire")

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
