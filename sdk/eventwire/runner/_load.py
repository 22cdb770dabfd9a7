"""Find the bus to run: ``module:attribute`` or ``path/to/file.py:attribute``."""

from __future__ import annotations

import inspect
from typing import Any

from eventwire._target import resolve_target
from eventwire.bus import EventBus
from eventwire.errors import ConfigurationError

__all__ = ["load_target"]


async def load_target(target: str, *, factory: bool = False) -> EventBus:
    """The `EventBus` that `target` names; with `factory`, what calling it returns.

    A factory may be a plain or an ``async`` function without arguments. Every failure is
    a `ConfigurationError` that names the target and what went wrong.
    """
    value: Any = resolve_target(target, example="shop.orders")
    if factory:
        if not callable(value):
            raise ConfigurationError(
                f"{target}: --factory needs a function that returns an EventBus, "
                f"got a {type(value).__name__}"
            )
        try:
            value = value()
            if inspect.isawaitable(value):
                value = await value
        except Exception as exc:
            raise ConfigurationError(
                f"{target}: the factory raised {type(exc).__name__}: {exc}"
            ) from exc
    if not isinstance(value, EventBus):
        hint = " (it is callable: add --factory)" if callable(value) and not factory else ""
        raise ConfigurationError(
            f"{target} is a {type(value).__name__}, not an eventwire EventBus{hint}"
        )
    return value
