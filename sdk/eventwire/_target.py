"""Import what a ``MODULE:ATTR`` or ``path/to/file.py:ATTR`` target names.

One loader for every command that takes a bus target (``eventwire run``, ``eventwire
contracts generate|check|test``). Every failure is a `ConfigurationError` that names the
target and says what went wrong; callers check the type of what was found.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from eventwire.errors import ConfigurationError

__all__ = ["resolve_target"]


def resolve_target(target: str, *, example: str, isolated: bool = False) -> Any:
    """The object `target` names (a dotted attribute path is followed).

    `example` is the module part of the usage example in the bad-syntax error. A file target
    is imported as a module named after its stem with its folder left on ``sys.path``
    (like ``python file.py``), or, when `isolated`, under a name unique to its path with its
    folder on ``sys.path`` only while it runs.
    """
    module_name, sep, attr = target.rpartition(":")
    if not sep or not module_name or not attr:
        raise ConfigurationError(
            f"{target!r} is not MODULE:BUS; write e.g. '{example}:bus' or 'app.py:bus'"
        )
    value: Any = _import(target, module_name, isolated)
    for part in attr.split("."):
        if not hasattr(value, part):
            raise ConfigurationError(f"{target}: {module_name} has no attribute {attr!r}")
        value = getattr(value, part)
    return value


def _import(target: str, module_name: str, isolated: bool) -> ModuleType:
    try:
        if module_name.endswith(".py") or "/" in module_name or os.sep in module_name:
            return _import_file(target, Path(module_name), isolated)
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        return importlib.import_module(module_name)
    except ConfigurationError:
        raise
    except Exception as exc:
        raise ConfigurationError(
            f"{target}: importing {module_name} failed: {type(exc).__name__}: {exc}"
        ) from exc


def _import_file(target: str, file: Path, isolated: bool) -> ModuleType:
    if not file.is_file():
        raise ConfigurationError(f"{target}: no such file {file}")
    folder = str(file.resolve().parent)
    if isolated:
        name = "_eventwire_target_" + re.sub(r"\W", "_", str(file.resolve()))
    else:
        name = re.sub(r"\W", "_", file.stem)
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise ConfigurationError(f"{target}: cannot import {file}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    if not isolated:
        if folder not in sys.path:
            sys.path.insert(0, folder)
        spec.loader.exec_module(module)
        return module
    sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(folder)
    return module
