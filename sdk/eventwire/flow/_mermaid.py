"""A flow graph as Mermaid flowchart text."""

from __future__ import annotations

import re

from eventwire.flow._model import FlowGraph

__all__ = ["to_mermaid"]


def _node_id(name: str, taken: dict[str, str]) -> str:
    if name in taken:
        return taken[name]
    base = re.sub(r"[^A-Za-z0-9_]", "_", name).strip("_") or "node"
    ident, n = base, 1
    while ident in taken.values():
        n += 1
        ident = f"{base}_{n}"
    taken[name] = ident
    return ident


def to_mermaid(graph: FlowGraph) -> str:
    """``flowchart LR``: a box per service, an arrow per (publisher, consumer, kind) labelled
    with the messages; commands are dotted arrows, placeholders are rounded nodes."""
    ids: dict[str, str] = {}
    lines = ["flowchart LR"]
    for node in graph.nodes:
        ident = _node_id(node, ids)
        label = node.replace('"', "'")
        shape = f'("{label}")' if node in graph.placeholders else f'["{label}"]'
        lines.append(f"    {ident}{shape}")
    for edge in graph.edges:
        arrow = "-.->" if edge.kind == "command" else "-->"
        label = "<br/>".join(edge.messages)
        lines.append(f'    {ids[edge.source]} {arrow}|"{label}"| {ids[edge.target]}')
    if graph.placeholders:
        placeholder_ids = ",".join(ids[n] for n in graph.nodes if n in graph.placeholders)
        lines.append("    classDef placeholder stroke-dasharray: 4 3,fill:#f7f7f7")
        lines.append(f"    class {placeholder_ids} placeholder")
    return "\n".join(lines) + "\n"
