"""The ``sqlite`` entry point of the ``eventwire`` plugin group: serves ``sqlite://`` URLs."""

from __future__ import annotations

from eventwire import IdempotencyStore, hookimpl
from eventwire.backendkit import BackendPlugin

from eventwire_sqlite._info import BACKEND_INFO

__all__ = [
    "eventwire_asyncapi_protocol",
    "eventwire_backend_info",
    "eventwire_make_backend",
    "eventwire_make_idempotency_store",
]

plugin = BackendPlugin(
    BACKEND_INFO,
    "eventwire_sqlite._backend:SqliteBackend",
    "eventwire_sqlite._info:asyncapi_protocol",
)
eventwire_backend_info = plugin.eventwire_backend_info
eventwire_make_backend = plugin.eventwire_make_backend
eventwire_asyncapi_protocol = plugin.eventwire_asyncapi_protocol


@hookimpl
def eventwire_make_idempotency_store(url: str, scheme: str) -> IdempotencyStore | None:
    """``sqlite:///path``: a `SqliteIdempotencyStore` in that file."""
    if scheme not in BACKEND_INFO.schemes:
        return None
    from eventwire_sqlite._idempotency import SqliteIdempotencyStore

    return SqliteIdempotencyStore(url)
