"""The ``nats`` entry point of the ``eventwire`` plugin group."""

from __future__ import annotations

from eventwire import IdempotencyStore, hookimpl
from eventwire.backendkit import BackendPlugin

from eventwire_nats._info import BACKEND_INFO

__all__ = [
    "eventwire_asyncapi_protocol",
    "eventwire_backend_info",
    "eventwire_make_backend",
    "eventwire_make_idempotency_store",
]

plugin = BackendPlugin(
    BACKEND_INFO,
    "eventwire_nats._backend:NatsBackend",
    "eventwire_nats._asyncapi:asyncapi_protocol",
)
eventwire_backend_info = plugin.eventwire_backend_info
eventwire_make_backend = plugin.eventwire_make_backend
eventwire_asyncapi_protocol = plugin.eventwire_asyncapi_protocol


@hookimpl
def eventwire_make_idempotency_store(url: str, scheme: str) -> IdempotencyStore | None:
    """``nats://`` / ``tls://``: a `NatsIdempotencyStore` (a JetStream KV bucket)."""
    if scheme not in BACKEND_INFO.schemes:
        return None
    from eventwire_nats._idempotency import NatsIdempotencyStore

    return NatsIdempotencyStore(url)
