"""The ``redis`` entry point of the ``eventwire`` plugin group."""

from __future__ import annotations

from eventwire import IdempotencyStore, hookimpl
from eventwire.backendkit import BackendPlugin

from eventwire_redis._info import BACKEND_INFO

__all__ = [
    "eventwire_asyncapi_protocol",
    "eventwire_backend_info",
    "eventwire_make_backend",
    "eventwire_make_idempotency_store",
]

plugin = BackendPlugin(
    BACKEND_INFO,
    "eventwire_redis._backend:RedisBackend",
    "eventwire_redis._asyncapi:asyncapi_protocol",
)
eventwire_backend_info = plugin.eventwire_backend_info
eventwire_make_backend = plugin.eventwire_make_backend
eventwire_asyncapi_protocol = plugin.eventwire_asyncapi_protocol


@hookimpl
def eventwire_make_idempotency_store(url: str, scheme: str) -> IdempotencyStore | None:
    """``redis://`` / ``rediss://``: a `RedisIdempotencyStore`."""
    if scheme not in BACKEND_INFO.schemes:
        return None
    from eventwire_redis._idempotency import RedisIdempotencyStore

    return RedisIdempotencyStore(url)
