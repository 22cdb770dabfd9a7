"""Find the bus to run: ``module:attribute`` or ``path/to/file.py:attribute``."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import re
import sys
from pathlib import Path
from typing import Any

from eventwire.bus import EventBus
from eventwire.errors import ConfigurationError

__all__ = ["load_target"]


async def load_target(target: str, *, factory: bool = False) -> EventBus:
    """The `EventBus` that `target` names; with `factory`, what calling it returns.

    A factory may be a plain or an ``async`` function without arguments. Every failure is
    a `ConfigurationError` that names the target and what went wrong.
    """
    module_name, sep, attr = target.rpartition(":")
    if not sep or not module_name or not attr:
        raise ConfigurationError(
            f"{target!r} is not MODULE:BUS; write e.g. 'shop.orders:bus' or 'app.py:bus'"
        )
    module = _import(target, module_name)
    value: Any = module
    for part in attr.split("."):
        if not hasattr(value, part):
            raise ConfigurationError(f"{target}: {module_name} has no attribute {attr!r}")
        value = getattr(value, part)
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


def _import(target: str, module_name: str) -> Any:
    try:
        if module_name.endswith(".py") or "/" in module_name or os.sep in module_name:
            file = Path(module_name)
            if not file.is_file():
                raise ConfigurationError(f"{target}: no such file {file}")
            folder = str(file.resolve().parent)
            if folder not in sys.path:
                sys.path.insert(0, folder)
            name = re.sub(r"\W", "_", file.stem)
            spec = importlib.util.spec_from_file_location(name, file)
            if spec is None or spec.loader is None:
                raise ConfigurationError(f"{target}: cannot import {file}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
            return module
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        return importlib.import_module(module_name)
    except ConfigurationError:
        raise
    except Exception as exc:
        raise ConfigurationError(
            f"{target}: importing {module_name} failed: {type(exc).__name__}: {exc}"
        ) from exc
