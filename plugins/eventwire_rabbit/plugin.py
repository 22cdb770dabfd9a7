"""The ``rabbit`` entry point of the ``eventwire`` plugin group."""

from __future__ import annotations

from eventwire.backendkit import BackendPlugin

from eventwire_rabbit._info import BACKEND_INFO

__all__ = ["eventwire_asyncapi_protocol", "eventwire_backend_info", "eventwire_make_backend"]

plugin = BackendPlugin(
    BACKEND_INFO,
    "eventwire_rabbit._backend:RabbitBackend",
    "eventwire_rabbit._asyncapi:asyncapi_protocol",
)
eventwire_backend_info = plugin.eventwire_backend_info
eventwire_make_backend = plugin.eventwire_make_backend
eventwire_asyncapi_protocol = plugin.eventwire_asyncapi_protocol
