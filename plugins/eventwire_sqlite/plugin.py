"""The ``sqlite`` entry point of the ``eventwire`` plugin group: serves ``sqlite://`` URLs."""

from __future__ import annotations

from eventwire.backendkit import BackendPlugin

from eventwire_sqlite._info import BACKEND_INFO

__all__ = ["eventwire_asyncapi_protocol", "eventwire_backend_info", "eventwire_make_backend"]

plugin = BackendPlugin(
    BACKEND_INFO,
    "eventwire_sqlite._backend:SqliteBackend",
    "eventwire_sqlite._info:asyncapi_protocol",
)
eventwire_backend_info = plugin.eventwire_backend_info
eventwire_make_backend = plugin.eventwire_make_backend
eventwire_asyncapi_protocol = plugin.eventwire_asyncapi_protocol
