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

from eventwire._extras import extra_for, install_hint
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
        except ModuleNotFoundError as exc:
            if extra_for(exc.name) is not None:  # an optional dependency: name the extra
                return _unavailable(name, install_hint(exc, f"'eventwire {name}'"), exit_code=2)
            return _broken(name, entry, exc)
        except Exception as exc:  # a broken or half-installed package
            return _broken(name, entry, exc)
        if not isinstance(command, click.Command):
            return _unavailable(name, f"'eventwire {name}': {entry.value} is not a click command")
        return command


def _broken(name: str, entry: EntryPoint, exc: Exception) -> click.Command:
    package = entry.dist.name if entry.dist is not None else entry.module
    why = f"{type(exc).__name__}: {exc}"
    return _unavailable(
        name,
        f"'eventwire {name}' cannot load ({why}); reinstall {package}, or uninstall "
        f"it if you do not need the command",
    )


class _MissingExtra(click.ClickException):
    """An optional dependency is not installed (a usage problem: exit status 2)."""

    exit_code = 2


def _unavailable(name: str, message: str, exit_code: int = 1) -> click.Command:
    """A stand-in that says why a subcommand cannot load (instead of 'No such command')."""

    def fail() -> None:
        if exit_code == 2:  # a missing optional dependency: the message says what to install
            raise _MissingExtra(message)
        raise click.ClickException(message)

    return click.Command(
        name,
        callback=fail,
        help=f"(unavailable: {message})",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
        add_help_option=False,
    )


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
