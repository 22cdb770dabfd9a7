"""`lazy_exports`: a plugin package exports classes whose modules import the client library,
without importing it until one of them is used."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` (PEP 562) for `package` that imports each name of
    `exports` (name → the module defining it) on first use and keeps it in the package.

    Importing the plugin (which every ``import eventwire`` does through the entry points)
    then never needs the broker's client library::

        __getattr__ = lazy_exports(__name__, {"RedisBackend": "eventwire_redis._backend"})
    """
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return __getattr__
