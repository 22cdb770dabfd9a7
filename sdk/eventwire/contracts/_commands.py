"""What every ``eventwire contracts`` command shares: one-line errors (exit 2) and the console."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.console import Console

from eventwire.errors import EventwireError

__all__ = ["CommandError", "clear_errors", "make_console"]

F = TypeVar("F", bound=Callable[..., Any])


class CommandError(click.ClickException):
    """Bad input (a file, a module): printed without a traceback, exit status 2."""

    exit_code = 2


def make_console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def clear_errors(command: F) -> F:
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except EventwireError as exc:
            raise CommandError(str(exc)) from None

    return wrapper  # type: ignore[return-value]
