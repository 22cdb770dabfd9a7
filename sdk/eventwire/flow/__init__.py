"""Event-flow diagrams: who publishes and who consumes which message.

Read from buses (`participant_from_bus`) or AsyncAPI 3.0 documents
(`participant_from_asyncapi`), joined by `build_graph`, drawn by `to_mermaid` or `to_svg`
(a self-contained picture, no network or Node needed). The CLI is ``eventwire flow``.
"""

from eventwire.flow._mermaid import to_mermaid
from eventwire.flow._model import (
    NOBODY,
    UNKNOWN,
    Edge,
    FlowGraph,
    Participant,
    build_graph,
    load_bus,
    participant_from_asyncapi,
    participant_from_bus,
    read_document,
)
from eventwire.flow._svg import to_svg

__all__ = [
    "NOBODY",
    "UNKNOWN",
    "Edge",
    "FlowGraph",
    "Participant",
    "build_graph",
    "load_bus",
    "participant_from_asyncapi",
    "participant_from_bus",
    "read_document",
    "to_mermaid",
    "to_svg",
]
