"""Who publishes and who consumes which message, read from buses or AsyncAPI documents."""

from __future__ import annotations

import dataclasses
import importlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml

from eventwire.bus import EventBus
from eventwire.errors import ConfigurationError, ContractError

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
]

Kind = Literal["event", "command"]
#: The node drawn for messages nobody consumes / nobody is known to publish.
NOBODY = "(no consumer)"
UNKNOWN = "(unknown publisher)"


@dataclasses.dataclass
class Participant:
    """One service: the messages it publishes (with their kind) and those it consumes."""

    name: str
    publishes: dict[str, Kind] = dataclasses.field(default_factory=dict)
    consumes: dict[str, Kind] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, order=True)
class Edge:
    """Messages of one kind going from `source` to `target`."""

    source: str
    target: str
    kind: Kind
    messages: tuple[str, ...]


@dataclasses.dataclass
class FlowGraph:
    """Services (in input order, then the placeholder nodes) and the edges between them."""

    nodes: list[str]
    edges: list[Edge]

    @property
    def placeholders(self) -> set[str]:
        """The nodes that stand for nobody / somebody unknown."""
        return {NOBODY, UNKNOWN} & set(self.nodes)


def participant_from_bus(bus: EventBus) -> Participant:
    """What `bus` declares or has published, and what it subscribes to."""
    out = Participant(bus.source)
    for name, model in bus.published.items():
        out.publishes[name] = model.__eventwire__.kind
    for info in bus.subscriptions.values():
        for name, route in info.routes.items():
            out.consumes[name] = route.model.__eventwire__.kind
    return out


def load_bus(spec: str) -> EventBus:
    """``module:attribute`` → the `EventBus` there (or what calling it returns, or its
    ``.bus``)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigurationError(f"{spec!r}: write MODULE:BUS, e.g. shop.orders:bus")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"{spec!r}: cannot import {module_name!r} ({exc})") from exc
    value: Any = module
    for part in attr.split("."):
        if not hasattr(value, part):
            raise ConfigurationError(f"{spec!r}: {module_name} has no attribute {attr!r}")
        value = getattr(value, part)
    if callable(value) and not isinstance(value, EventBus):
        value = value()
    if not isinstance(value, EventBus) and isinstance(getattr(value, "bus", None), EventBus):
        value = value.bus
    if not isinstance(value, EventBus):
        raise ConfigurationError(f"{spec!r} is not an EventBus but {type(value).__name__}")
    return value


def _resolve(document: Mapping[str, Any], node: Any) -> Any:
    seen = 0
    while isinstance(node, Mapping) and "$ref" in node:
        ref = str(node["$ref"])
        if not ref.startswith("#/"):
            raise ContractError(f"only local $refs are supported, got {ref!r}")
        node = document
        for token in ref[2:].split("/"):
            token = token.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, Mapping) or token not in node:
                raise ContractError(f"dangling $ref {ref!r}")
            node = node[token]
        seen += 1
        if seen > 50:
            raise ContractError(f"$ref cycle at {ref!r}")
    return node


def _message_name(document: Mapping[str, Any], ref: Any, key: str = "") -> tuple[str, Kind]:
    fallback = str(ref.get("$ref", "")).rsplit("/", 1)[-1] if isinstance(ref, Mapping) else ""
    fallback = fallback or key
    message = _resolve(document, ref)
    if not isinstance(message, Mapping):
        raise ContractError(f"a message is not an object: {ref!r}")
    # No name (FastStream names none): the payload's model, which is what its schema's
    # title is for pydantic-generated documents, before the key of the reference.
    payload = _resolve(document, message.get("payload")) if message.get("payload") else None
    model = payload.get("title") if isinstance(payload, Mapping) else None
    name = str(message.get("name") or model or fallback or message.get("title") or "?")
    kind: Kind = "command" if message.get("x-eventwire-kind") == "command" else "event"
    return name, kind


def participant_from_asyncapi(document: Mapping[str, Any], source: str = "") -> Participant:
    """The application an AsyncAPI 3.0 document describes (``info.title``): its ``send``
    operations publish, its ``receive`` operations consume."""
    if not str(document.get("asyncapi", "")).startswith("3."):
        raise ContractError(f"{source or 'document'}: not an AsyncAPI 3.x document")
    info = document.get("info") or {}
    out = Participant(str(info.get("title") or source or "application"))
    for op_name, operation in (document.get("operations") or {}).items():
        operation = _resolve(document, operation)
        action = operation.get("action")
        if action not in ("send", "receive"):
            raise ContractError(f"operation {op_name!r} has action {action!r}")
        refs = [("", ref) for ref in operation.get("messages") or []]
        if not refs:
            channel = _resolve(document, operation.get("channel") or {})
            refs = list((channel.get("messages") or {}).items())
        target = out.publishes if action == "send" else out.consumes
        for key, ref in refs:
            name, kind = _message_name(document, ref, key)
            target[name] = kind
    return out


def read_document(path: Path) -> Mapping[str, Any]:
    """An AsyncAPI document from a YAML or JSON file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ContractError(f"cannot read {path}: {exc}") from exc
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ContractError(f"{path} is not valid YAML/JSON: {exc}") from exc
    if not isinstance(data, Mapping):
        raise ContractError(f"{path} does not hold an AsyncAPI document")
    return data


def build_graph(participants: Iterable[Participant], *, unconsumed: bool = True) -> FlowGraph:
    """Connect every publisher of a message to every consumer of it.

    Participants with the same name are merged. A message nobody consumes goes to the
    `NOBODY` node (unless ``unconsumed=False``); one nobody publishes comes from `UNKNOWN`.
    """
    merged: dict[str, Participant] = {}
    for p in participants:
        into = merged.setdefault(p.name, Participant(p.name))
        into.publishes.update(p.publishes)
        into.consumes.update(p.consumes)
    pairs: dict[tuple[str, str, Kind], list[str]] = {}
    for message in sorted({m for p in merged.values() for m in (*p.publishes, *p.consumes)}):
        publishers = [p for p in merged.values() if message in p.publishes]
        consumers = [p for p in merged.values() if message in p.consumes]
        kinds = [p.publishes[message] for p in publishers]
        kinds += [p.consumes[message] for p in consumers]
        kind: Kind = kinds[0]
        sources = [p.name for p in publishers] or [UNKNOWN]
        targets = [p.name for p in consumers] or ([NOBODY] if unconsumed else [])
        for s in sources:
            for t in targets:
                pairs.setdefault((s, t, kind), []).append(message)
    nodes = list(merged)
    for placeholder in (UNKNOWN, NOBODY):
        if any(placeholder in key[:2] for key in pairs):
            nodes.append(placeholder)
    edges = [Edge(s, t, k, tuple(ms)) for (s, t, k), ms in pairs.items()]
    return FlowGraph(nodes, sorted(edges))
