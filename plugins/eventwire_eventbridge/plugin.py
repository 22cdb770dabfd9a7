"""The ``eventbridge`` entry point of the ``eventwire`` plugin group: serves
``eventbridge://`` URLs."""

from __future__ import annotations

from eventwire.backendkit import BackendPlugin

from eventwire_eventbridge._info import BACKEND_INFO

__all__ = ["eventwire_asyncapi_protocol", "eventwire_backend_info", "eventwire_make_backend"]

plugin = BackendPlugin(
    BACKEND_INFO,
    "eventwire_eventbridge._backend:EventBridgeBackend",
    "eventwire_eventbridge._info:asyncapi_protocol",
)
eventwire_backend_info = plugin.eventwire_backend_info
eventwire_make_backend = plugin.eventwire_make_backend
eventwire_asyncapi_protocol = plugin.eventwire_asyncapi_protocol
