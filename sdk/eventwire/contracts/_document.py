"""Reading AsyncAPI 3.0 documents and walking them: local references, JSON pointers, messages."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import yaml

from eventwire.errors import ContractError

__all__ = [
    "DOCUMENT_URI",
    "MessageEntry",
    "deref",
    "escape_pointer",
    "iter_messages",
    "parse_document",
    "payload_pointer",
    "read_document",
    "resolve",
]

#: The base URI a contract document is registered under while validating payloads.
DOCUMENT_URI = "urn:eventwire:contract"
SUPPORTED_VERSION = "3.0.0"


def read_document(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse a YAML or JSON AsyncAPI 3.0 document; `ContractError` names what is wrong.

    Only the syntax and the ``asyncapi`` version are checked here; see `load_document`.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ContractError(f"{file}: no such contract file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ContractError(f"{file}: cannot read the contract: {exc}") from None
    return parse_document(text, str(file), json_only=file.suffix.lower() == ".json")


def parse_document(text: str, name: str, *, json_only: bool = False) -> dict[str, Any]:
    """Parse the text of a document (YAML or JSON) named `name` in error messages."""
    data: Any
    try:
        data = json.loads(text) if json_only else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise ContractError(
            f"{name}: not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}"
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ContractError(f"{name}: not valid YAML/JSON{where}: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise ContractError(f"{name}: not valid YAML/JSON: {exc}") from None
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise ContractError(
            f"{name}: an AsyncAPI document must be a mapping at the top level, but it is {kind}"
        )
    version = data.get("asyncapi")
    if version is None:
        raise ContractError(
            f"{name}: not an AsyncAPI document (no 'asyncapi' field at the top level); "
            f"eventwire contracts are AsyncAPI {SUPPORTED_VERSION}"
        )
    if str(version) != SUPPORTED_VERSION:
        hint = (
            "; convert it with 'asyncapi convert' (from @asyncapi/cli) and review the result"
            if str(version).startswith(("1.", "2."))
            else ""
        )
        raise ContractError(
            f"{name}: $.asyncapi is {version!r}, but eventwire contracts must be AsyncAPI "
            f"{SUPPORTED_VERSION}{hint}"
        )
    return data


def escape_pointer(*parts: str) -> str:
    """A JSON pointer (``/a/b~1c``) from path segments."""
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def resolve(document: Mapping[str, Any], ref: str) -> Any:
    """The value a local ``$ref`` (``#/a/b``) points to; `KeyError` when it dangles."""
    if not ref.startswith("#"):
        raise KeyError(f"{ref!r} is not a local reference (it must start with '#')")
    pointer = unquote(ref[1:])
    node: Any = document
    if not pointer:
        return node
    if not pointer.startswith("/"):
        raise KeyError(f"{ref!r} is not a JSON pointer")
    for raw in pointer[1:].split("/"):
        token = _unescape(raw)
        if isinstance(node, Mapping) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            raise KeyError(f"{ref!r} does not resolve: no {token!r}")
    return node


def deref(document: Mapping[str, Any], node: Any, pointer: str) -> tuple[Any, str]:
    """Follow a chain of ``$ref`` objects; returns the target and its JSON pointer."""
    seen: set[str] = set()
    while isinstance(node, Mapping) and isinstance(node.get("$ref"), str):
        ref: str = node["$ref"]
        if ref in seen:
            raise KeyError(f"{ref!r} is a reference cycle")
        seen.add(ref)
        node = resolve(document, ref)
        pointer = unquote(ref[1:])
    return node, pointer


@dataclass(frozen=True)
class MessageEntry:
    """A message of a document: its name (the event type), where it is, and its object."""

    name: str
    pointer: str
    message: Mapping[str, Any]
    channels: tuple[str, ...]


def iter_messages(document: Mapping[str, Any]) -> Iterator[MessageEntry]:
    """Every distinct message of the document (from channels and components), by name.

    The name is the message's ``name`` field (eventwire writes the event type there), or its
    key when it has none. Dangling references raise `KeyError`.
    """
    found: dict[str, tuple[str, Mapping[str, Any], list[str]]] = {}
    channels = document.get("channels") or {}
    for channel_key, channel_node in channels.items() if isinstance(channels, Mapping) else ():
        channel, channel_pointer = deref(
            document, channel_node, escape_pointer("channels", str(channel_key))
        )
        if not isinstance(channel, Mapping):
            continue
        messages = channel.get("messages") or {}
        for key, node in messages.items() if isinstance(messages, Mapping) else ():
            message, pointer = deref(
                document, node, channel_pointer + escape_pointer("messages", str(key))
            )
            if isinstance(message, Mapping):
                name = str(message.get("name") or key)
                entry = found.setdefault(name, (pointer, message, []))
                entry[2].append(str(channel_key))
    components = document.get("components") or {}
    messages = components.get("messages") or {} if isinstance(components, Mapping) else {}
    for key, node in messages.items() if isinstance(messages, Mapping) else ():
        message, pointer = deref(document, node, escape_pointer("components", "messages", key))
        if isinstance(message, Mapping):
            found.setdefault(str(message.get("name") or key), (pointer, message, []))
    for name, (pointer, message, in_channels) in found.items():
        yield MessageEntry(name, pointer, message, tuple(in_channels))


def payload_pointer(document: Mapping[str, Any], entry: MessageEntry) -> str | None:
    """The JSON pointer of the JSON Schema of `entry`'s payload (``None``: no payload)."""
    payload = entry.message.get("payload")
    if payload is None:
        return None
    pointer = entry.pointer + "/payload"
    if isinstance(payload, Mapping) and "schemaFormat" in payload and "schema" in payload:
        fmt = str(payload["schemaFormat"])
        if not fmt.startswith(("application/vnd.aai.asyncapi", "application/schema+json")):
            raise ContractError(
                f"message {entry.name!r} ({pointer}) uses schemaFormat {fmt!r}; eventwire "
                "validates JSON Schema and AsyncAPI Schema payloads only"
            )
        pointer += "/schema"
    return pointer
