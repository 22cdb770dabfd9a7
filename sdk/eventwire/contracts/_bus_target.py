"""The `EventBus` a command names as ``MODULE:ATTR`` (the contract commands and flow maps)."""

from __future__ import annotations

from typing import Any

from eventwire._target import resolve_target
from eventwire.bus import EventBus
from eventwire.errors import ConfigurationError, ContractError

__all__ = ["load_bus"]


def load_bus(target: str) -> Any:
    """The `EventBus` named by ``MODULE:ATTR`` or ``path/to/file.py:ATTR``.

    `ContractError` names the target and says what failed (without a traceback).
    """
    try:
        bus = resolve_target(target, example="myapp.events", isolated=True)
    except ConfigurationError as exc:
        raise ContractError(str(exc)) from None
    if not isinstance(bus, EventBus):
        attr = target.rpartition(":")[2]
        raise ContractError(
            f"{target}: {attr} is a {type(bus).__name__}, not an eventwire EventBus"
        )
    return bus
