"""The ``memory`` entry point of the ``eventwire`` plugin group: serves ``memory://`` URLs."""

from __future__ import annotations

from eventwire.backendkit import BackendPlugin

from eventwire_memory._info import BACKEND_INFO

__all__ = ["eventwire_asyncapi_protocol", "eventwire_backend_info", "eventwire_make_backend"]

plugin = BackendPlugin(
    BACKEND_INFO,
    "eventwire_memory._backend:MemoryBackend",
    "eventwire_memory._info:asyncapi_protocol",
)
eventwire_backend_info = plugin.eventwire_backend_info
eventwire_make_backend = plugin.eventwire_make_backend
eventwire_asyncapi_protocol = plugin.eventwire_asyncapi_protocol
