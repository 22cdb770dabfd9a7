"""The messages a document's operations send or receive, with their channel addresses."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from eventwire.contracts._document import deref, escape_pointer, resolve
from eventwire.contracts._examples import build_example
from eventwire.contracts._load import ContractValidator
from eventwire.errors import ContractError

__all__ = ["OperationMessage", "message_examples", "operation_messages"]


@dataclass(frozen=True)
class OperationMessage:
    """A message an operation sends or receives: channel address, name, where, the object."""

    channel: str
    name: str
    pointer: str
    message: Mapping[str, Any]


def operation_messages(
    document: Mapping[str, Any], action: Literal["send", "receive"]
) -> list[OperationMessage]:
    """Every distinct (channel, message) of the document's `action` operations, in document
    order. An operation without ``messages`` covers every message of its channel; the name is
    the message's ``name`` (the event type) or its key."""
    out: list[OperationMessage] = []
    for key, node in (document.get("operations") or {}).items():
        pointer = escape_pointer("operations", str(key))
        try:
            operation, _ = deref(document, node, pointer)
            if not isinstance(operation, Mapping) or operation.get("action") != action:
                continue
            channel, channel_pointer = deref(document, operation.get("channel"), "")
            if not isinstance(channel, Mapping):
                continue
            address = str(channel.get("address") or channel_pointer.rsplit("/", 1)[-1])
            refs = operation.get("messages")
            if refs is None:
                refs = list((channel.get("messages") or {}).values())
            for ref in refs:
                message, message_pointer = deref(document, ref, pointer + "/messages")
                if not isinstance(message, Mapping):
                    continue
                name = str(message.get("name") or message_pointer.rsplit("/", 1)[-1])
                if all((e.channel, e.name) != (address, name) for e in out):
                    out.append(OperationMessage(address, name, message_pointer, message))
        except KeyError as exc:
            raise ContractError(f"{pointer}: {exc.args[0]}") from None
    return out


def message_examples(
    document: Mapping[str, Any], entry: OperationMessage, validator: ContractValidator
) -> list[tuple[Any, dict[str, str]]]:
    """The examples of `entry` as ``(payload, headers)``, each checked against the payload
    schema (`ContractError` names the example that is not valid); a message without one gets
    an example built from its schema (``None`` payload when it has no schema)."""
    out: list[tuple[Any, dict[str, str]]] = []
    for index, example in enumerate(entry.message.get("examples") or ()):
        if not isinstance(example, Mapping) or "payload" not in example:
            continue
        payload = example["payload"]
        problems = validator.errors(entry.name, json.dumps(payload).encode())
        if problems:
            raise ContractError(
                f"{entry.pointer}/examples/{index}: the example of {entry.name} does not "
                f"validate against its own schema: {problems[0]}"
            )
        headers = example.get("headers") or {}
        out.append((payload, {str(k): str(v) for k, v in headers.items()}))
    if out:
        return out
    schema = entry.message.get("payload")
    if schema is None:
        return [(None, {})]
    if isinstance(schema, Mapping) and "$ref" in schema:
        schema = resolve(document, schema["$ref"])
    payload = build_example(
        schema, document, lambda p: not validator.errors(entry.name, json.dumps(p).encode())
    )
    if payload is None:
        raise ContractError(
            f"{entry.pointer}: {entry.name} has no example and none could be built from its "
            "payload schema; add one under examples"
        )
    return [(payload, {})]
