"""The messages a document's operations send or receive, with their channel addresses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from eventwire.contracts._load import deref, escape_pointer
from eventwire.errors import ContractError

__all__ = ["OperationMessage", "operation_messages"]


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
