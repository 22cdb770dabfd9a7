"""How a Redis backend appears in AsyncAPI: protocol ``redis``/``rediss``, no bindings."""

from __future__ import annotations

from eventwire.asyncapi import AsyncAPIProtocol
from eventwire.backend import Backend

__all__ = ["asyncapi_protocol"]


def asyncapi_protocol(backend: Backend) -> AsyncAPIProtocol:
    """The ``eventwire_asyncapi_protocol`` answer for `backend` (AsyncAPI's Redis binding has
    nothing for streams and consumer groups, so there are no bindings)."""
    return AsyncAPIProtocol("rediss" if backend.url.startswith("rediss://") else "redis")
