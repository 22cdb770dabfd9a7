"""What the served contracts allow: the messages the gateway accepts and the channels it serves.

A message is accepted when a *send* operation of one of the contracts names it; its channel,
payload schema, ordering key (``x-eventwire-key``) and version come from that contract. The
payload schemas are copied, with their local references, into the OpenAPI components.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from eventwire.contracts import ContractValidator, load_document
from eventwire.contracts._document import deref, escape_pointer
from eventwire.deadletter import DLQ_SUFFIX
from eventwire.errors import ContractError

__all__ = ["Catalog", "IngressMessage", "load_catalog"]

_NAME = re.compile(r"[^A-Za-z0-9_.-]")


@dataclasses.dataclass(frozen=True)
class IngressMessage:
    """One message clients may publish through the gateway."""

    type: str
    channel: str
    kind: str
    key: str | None
    version: str | None
    summary: str
    #: the payload's JSON Schema, its references pointing into the OpenAPI components
    schema: Any
    examples: tuple[Any, ...]
    validator: ContractValidator
    contract: Path


@dataclasses.dataclass(frozen=True)
class Catalog:
    """The ingress messages (by type), the channels whose dead letters are served, the
    component schemas and the contracts themselves."""

    messages: Mapping[str, IngressMessage]
    channels: tuple[str, ...]
    schemas: Mapping[str, Any]
    contracts: tuple[tuple[Path, Mapping[str, Any]], ...]


class _Schemas:
    """Copies schemas out of a contract into one namespace, rewriting local references."""

    def __init__(self) -> None:
        self.out: dict[str, Any] = {}

    def copy(self, document: Mapping[str, Any], node: Any, names: dict[str, str]) -> Any:
        if isinstance(node, Mapping):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#"):
                rest = {k: self.copy(document, v, names) for k, v in node.items() if k != "$ref"}
                return {"$ref": "#/components/schemas/" + self._name(document, ref, names), **rest}
            return {str(k): self.copy(document, v, names) for k, v in node.items()}
        if isinstance(node, list):
            return [self.copy(document, v, names) for v in node]
        return node

    def _name(self, document: Mapping[str, Any], ref: str, names: dict[str, str]) -> str:
        if ref in names:
            return names[ref]
        target, _ = deref(document, {"$ref": ref}, ref[1:])
        base = _NAME.sub("_", ref.rsplit("/", 1)[-1]) or "Schema"
        name, n = base, 2
        while name in self.out:
            name, n = f"{base}_{n}", n + 1
        names[ref] = name
        self.out[name] = {}  # reserve (recursive schemas refer to themselves)
        self.out[name] = self.copy(document, target, names)
        return name


def load_catalog(paths: Sequence[str | os.PathLike[str]]) -> Catalog:
    """Read and validate every contract; `ContractError` names what is wrong."""
    if not paths:
        raise ContractError("give at least one contract (--contracts FILE)")
    messages: dict[str, IngressMessage] = {}
    channels: dict[str, None] = {}
    schemas = _Schemas()
    contracts: list[tuple[Path, Mapping[str, Any]]] = []
    for raw in paths:
        path = Path(raw)
        document = load_document(path)
        contracts.append((path, document))
        validator = ContractValidator(document, str(path))
        names: dict[str, str] = {}
        for address in _addresses(document):
            base = address.removesuffix(DLQ_SUFFIX)
            channels[base] = None
        for entry in _sent(document, path):
            name, channel, message, _ = entry
            known = messages.get(name)
            if known is not None and known.channel != channel:
                raise ContractError(
                    f"{path}: {name} is sent on channel {channel!r}, but {known.contract} sends "
                    f"it on {known.channel!r}; a message type has one channel"
                )
            if known is not None:
                continue
            payload = message.get("payload")
            if isinstance(payload, Mapping) and "schemaFormat" in payload and "schema" in payload:
                payload = payload["schema"]
            schema = schemas.copy(document, payload if payload is not None else {}, names)
            examples = tuple(
                e["payload"]
                for e in message.get("examples") or ()
                if isinstance(e, Mapping) and "payload" in e
            )
            key = message.get("x-eventwire-key")
            version = message.get("x-eventwire-version")
            messages[name] = IngressMessage(
                type=name,
                channel=channel,
                kind=str(message.get("x-eventwire-kind") or "event"),
                key=str(key) if key is not None else None,
                version=str(version) if version is not None else None,
                summary=str(message.get("summary") or message.get("title") or name),
                schema=schema,
                examples=examples,
                validator=validator,
                contract=path,
            )
    return Catalog(messages, tuple(sorted(channels)), schemas.out, tuple(contracts))


def _addresses(document: Mapping[str, Any]) -> list[str]:
    out = []
    for key, node in (document.get("channels") or {}).items():
        channel, _ = deref(document, node, escape_pointer("channels", str(key)))
        if isinstance(channel, Mapping):
            out.append(str(channel.get("address") or key))
    return out


def _sent(document: Mapping[str, Any], path: Path) -> list[tuple[str, str, Mapping[str, Any], str]]:
    """(message name, channel address, message object, pointer) of every send operation."""
    found = []
    for key, node in (document.get("operations") or {}).items():
        operation, _ = deref(document, node, escape_pointer("operations", str(key)))
        if not isinstance(operation, Mapping) or operation.get("action") != "send":
            continue
        channel, channel_pointer = deref(document, operation.get("channel") or {}, "")
        if not isinstance(channel, Mapping):
            continue
        address = channel.get("address")
        if not isinstance(address, str) or not address:
            raise ContractError(
                f"{path}: operation {key!r} sends on a channel without an address; the "
                "gateway publishes to the channel's address"
            )
        refs = operation.get("messages") or list((channel.get("messages") or {}).values())
        for ref in refs:
            message, pointer = deref(document, ref, channel_pointer)
            if isinstance(message, Mapping):
                default = pointer.rsplit("/", 1)[-1] if pointer else ""
                found.append((str(message.get("name") or default), address, message, pointer))
    return found
