"""The ``eventbridge`` entry point of the ``eventwire`` plugin group: serves
``eventbridge://`` URLs and adds the EventBridge and SQS details to AsyncAPI documents."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from eventwire.backendkit import BackendPlugin
from eventwire.plugins import hookimpl

from eventwire_eventbridge._info import BACKEND_INFO

__all__ = [
    "eventwire_asyncapi_document",
    "eventwire_asyncapi_protocol",
    "eventwire_backend_info",
    "eventwire_make_backend",
]

plugin = BackendPlugin(
    BACKEND_INFO,
    "eventwire_eventbridge._backend:EventBridgeBackend",
    "eventwire_eventbridge._asyncapi:asyncapi_protocol",
)
eventwire_backend_info = plugin.eventwire_backend_info
eventwire_make_backend = plugin.eventwire_make_backend
eventwire_asyncapi_protocol = plugin.eventwire_asyncapi_protocol


@hookimpl
def eventwire_asyncapi_document(document: MutableMapping[str, Any], bus: Any) -> None:
    """The rules, envelope and SQS queues of a bus on ``eventbridge://`` (others untouched)."""
    from eventwire_eventbridge._asyncapi import add_bindings

    add_bindings(document, bus)
