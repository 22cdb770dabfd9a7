"""``eventwire serve``: an HTTP gateway from AsyncAPI contracts, and a dead-letter console.

- ``POST /events/<type>``: a CloudEvent (binary or structured HTTP mode) checked against its
  contract, then published; ``202`` once the broker confirmed, idempotent on ``source``+``id``.
- ``/dead-letters/...``: list (filtered, paginated), inspect and replay dead letters, with the
  semantics of `EventBus.dead_letters` / `EventBus.replay_dead_letters`.
- ``/console``: the same as server-rendered pages; ``/openapi.json``: the OpenAPI 3.1
  document generated from the contracts; ``/asyncapi/``, ``/flow.svg``; ``/health/...``.

Needs the ``serve`` extra: ``pip install 'eventwire[serve]'`` (Starlette and uvicorn). The
names below are imported on first use, so a missing extra is reported by name (a
`ConfigurationError`) instead of as a missing module.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

from eventwire.errors import ConfigurationError

if TYPE_CHECKING:
    from eventwire.gateway._app import create_app
    from eventwire.gateway._auth import TOKEN_ENV, load_token
    from eventwire.gateway._settings import GatewaySettings

__all__ = ["TOKEN_ENV", "GatewaySettings", "create_app", "load_token", "require_extra"]

_WHERE = {
    "GatewaySettings": "eventwire.gateway._settings",
    "create_app": "eventwire.gateway._app",
    "TOKEN_ENV": "eventwire.gateway._auth",
    "load_token": "eventwire.gateway._auth",
}


def require_extra() -> None:
    """`ConfigurationError` naming the extra when Starlette or uvicorn is not installed."""
    missing = [name for name in ("starlette", "uvicorn") if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigurationError(
            f"the eventwire gateway needs {' and '.join(missing)}: pip install 'eventwire[serve]'"
        )


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'eventwire.gateway' has no attribute {name!r}")
    require_extra()
    return getattr(importlib.import_module(module), name)
