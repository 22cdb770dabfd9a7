"""One message of a contract, made ready for generating cases.

`message_model` finds a message of a document (by name, on one of its channels) and returns
its payload schema with every ``$ref`` inlined, annotations removed and the 2020-12 keywords
that have a draft-07 spelling translated (``prefixItems``, ``dependentRequired``), its
effective headers schema (message traits merged in, JSON Merge Patch, the message's own fields
win), its key field and its correlation-id header. A keyword or format the generator cannot
handle raises `UnsupportedSchemaError` naming its JSON path: nothing is skipped silently.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from eventwire.contracts._document import deref, iter_messages, payload_pointer
from eventwire.contracts._load import load_document
from eventwire.errors import ContractError

__all__ = [
    "FORMATS",
    "MessageModel",
    "UnsupportedSchemaError",
    "as_document",
    "message_model",
]

#: Keywords that only describe; dropped before generating.
_ANNOTATIONS = frozenset(
    {
        "title",
        "description",
        "default",
        "examples",
        "example",
        "deprecated",
        "readOnly",
        "writeOnly",
        "$comment",
        "$schema",
        "$id",
        "externalDocs",
        "discriminator",
        "contentEncoding",
        "contentMediaType",
        "xml",
    }
)
#: Keywords the generator (hypothesis-jsonschema, draft-07 semantics) understands.
_SUPPORTED = frozenset(
    {
        "type",
        "enum",
        "const",
        "properties",
        "required",
        "additionalProperties",
        "patternProperties",
        "propertyNames",
        "minProperties",
        "maxProperties",
        "dependencies",
        "items",
        "additionalItems",
        "minItems",
        "maxItems",
        "uniqueItems",
        "contains",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "minLength",
        "maxLength",
        "pattern",
        "format",
        "anyOf",
        "oneOf",
        "allOf",
        "not",
        "if",
        "then",
        "else",
    }
)
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf")
_SCHEMA_VALUES = (
    "additionalProperties",
    "propertyNames",
    "additionalItems",
    "contains",
    "not",
    "if",
    "then",
    "else",
)
_SCHEMA_MAPS = ("properties", "patternProperties")

#: Formats the generator can produce, beyond hypothesis-jsonschema's draft-07 ones.
FORMATS = frozenset(
    {
        "date-time",
        "full-date",
        "full-time",
        "date",
        "time",
        "email",
        "idn-email",
        "hostname",
        "idn-hostname",
        "ipv4",
        "ipv6",
        "uri",
        "uri-reference",
        "iri",
        "iri-reference",
        "uri-template",
        "json-pointer",
        "relative-json-pointer",
        "regex",
        "color",
        "uuid",
        "duration",
        "byte",
        "binary",
        "base64",
        "int32",
        "int64",
        "float",
        "double",
    }
)


class UnsupportedSchemaError(ContractError):
    """A schema uses something the case generator cannot handle (named by its JSON path)."""


@dataclass(frozen=True)
class MessageModel:
    """What the generator needs of one message on one channel."""

    name: str
    channel: str
    pointer: str
    payload: dict[str, Any] | bool
    headers: dict[str, Any] | None
    key_field: str | None
    has_key: bool
    correlation_header: str | None
    content_type: str
    version: str | None
    examples: tuple[tuple[str | None, Any, dict[str, Any]], ...]


def as_document(document: str | os.PathLike[str] | Mapping[str, Any]) -> Mapping[str, Any]:
    """A loaded document as is, or the document at a path (read and validated)."""
    if isinstance(document, Mapping):
        return document
    return load_document(document)


def message_model(
    document: Mapping[str, Any], message: str, channel: str | None = None
) -> MessageModel:
    """The message named `message` (its ``name``, or its key) of `document`.

    `channel` (an address or a channel id) picks the channel when the message travels on
    several; otherwise the first channel that is not a dead-letter channel is used.
    """
    try:
        entries = {entry.name: entry for entry in iter_messages(document)}
    except KeyError as exc:
        raise ContractError(str(exc.args[0])) from None
    entry = entries.get(message)
    if entry is None:
        known = ", ".join(sorted(entries)) or "none"
        raise ContractError(f"the contract has no message {message!r} (its messages: {known})")
    address = _pick_channel(document, entry.name, entry.channels, channel)
    pointer = payload_pointer(document, entry)
    if pointer is None:
        raise ContractError(
            f"message {entry.name!r} ({entry.pointer}) has no payload schema; contract tests "
            "need one: add 'payload' to the message"
        )
    merged = _merge_traits(document, entry.message, entry.pointer)
    raw_payload = entry.message["payload"]
    if isinstance(raw_payload, Mapping) and "schemaFormat" in raw_payload:
        raw_payload = raw_payload["schema"]
    payload = _prepare(document, raw_payload, "#" + pointer)
    headers_node = merged.get("headers")
    headers = (
        _prepare(document, headers_node, "#" + entry.pointer + "/headers")
        if headers_node is not None
        else None
    )
    if headers is not None and not isinstance(headers, dict):
        headers = None
    key_field = entry.message.get("x-eventwire-key")
    bindings = merged.get("bindings")
    kafka = bindings.get("kafka") if isinstance(bindings, Mapping) else None
    has_key = key_field is not None or (isinstance(kafka, Mapping) and "key" in kafka)
    correlation = merged.get("correlationId")
    if isinstance(correlation, Mapping):
        correlation, _ = deref(document, correlation, entry.pointer + "/correlationId")
    header = None
    if isinstance(correlation, Mapping):
        location = str(correlation.get("location", ""))
        if location.startswith("$message.header#/"):
            header = location.split("#/", 1)[1]
    content_type = str(
        merged.get("contentType") or document.get("defaultContentType") or "application/json"
    )
    version = entry.message.get("x-eventwire-version")
    examples = []
    for index, example in enumerate(merged.get("examples") or ()):
        if not isinstance(example, Mapping) or "payload" not in example:
            continue
        name = example.get("name")
        examples.append(
            (
                str(name) if name is not None else f"example {index + 1}",
                copy.deepcopy(example["payload"]),
                dict(example.get("headers") or {}),
            )
        )
    return MessageModel(
        name=entry.name,
        channel=address,
        pointer=entry.pointer,
        payload=payload,
        headers=headers,
        key_field=str(key_field) if key_field is not None else None,
        has_key=has_key,
        correlation_header=header,
        content_type=content_type,
        version=str(version) if version is not None else None,
        examples=tuple(examples),
    )


def _pick_channel(
    document: Mapping[str, Any], name: str, channel_ids: tuple[str, ...], wanted: str | None
) -> str:
    channels = document.get("channels") or {}
    found: list[tuple[str, str, bool]] = []
    for channel_id in channel_ids:
        node, _ = deref(document, channels[channel_id], f"/channels/{channel_id}")
        address = node.get("address") if isinstance(node, Mapping) else None
        dead = isinstance(node, Mapping) and "x-eventwire-dead-letter-of" in node
        found.append((channel_id, str(address if address is not None else channel_id), dead))
    if wanted is not None:
        for channel_id, address, _ in found:
            if wanted in (channel_id, address):
                return address
        known = ", ".join(address for _, address, _ in found) or "none"
        raise ContractError(f"message {name!r} is not on channel {wanted!r} (it is on: {known})")
    for _, address, dead in found:
        if not dead:
            return address
    if found:
        return found[0][1]
    raise ContractError(f"message {name!r} is on no channel of the contract")


def _merge_traits(
    document: Mapping[str, Any], message: Mapping[str, Any], pointer: str
) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for index, trait in enumerate(message.get("traits") or ()):
        node, _ = deref(document, trait, f"{pointer}/traits/{index}")
        if isinstance(node, Mapping):
            merged = _merge_patch(merged, node)
    own = {k: v for k, v in message.items() if k != "traits"}
    result: dict[str, Any] = _merge_patch(merged, own)
    return result


def _merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


def _prepare(document: Mapping[str, Any], node: Any, path: str) -> dict[str, Any] | bool:
    schema: dict[str, Any] | bool = _Preparer(document).run(node, path, ())
    return schema


class _Preparer:
    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = document

    def run(self, node: Any, path: str, stack: tuple[str, ...]) -> Any:
        if isinstance(node, bool):
            return node
        if not isinstance(node, Mapping):
            raise UnsupportedSchemaError(f"{path}: a schema must be an object or a boolean")
        if isinstance(node.get("$ref"), str):
            ref = node["$ref"]
            if ref in stack:
                raise UnsupportedSchemaError(
                    f"{path}: recursive schema ({ref} refers to itself); the case generator "
                    "cannot generate recursive schemas"
                )
            try:
                target, _ = deref(self.document, {"$ref": ref}, path)
            except KeyError as exc:
                raise ContractError(f"{path}: {exc.args[0]}") from None
            rest = {k: v for k, v in node.items() if k != "$ref"}
            resolved = self.run(target, ref, (*stack, ref))
            if not rest:
                return resolved
            extra = self.run(rest, path, stack)
            return {"allOf": [resolved, extra]} if extra else resolved
        out: dict[str, Any] = {}
        for key, value in node.items():
            where = f"{path}/{key}"
            if key in _ANNOTATIONS or key.startswith("x-"):
                continue
            if key == "$defs" or key == "definitions":
                continue  # only reached through $ref, which is inlined
            if key == "prefixItems":
                out["items"] = [self.run(v, f"{where}/{i}", stack) for i, v in enumerate(value)]
                if "items" in node:
                    out["additionalItems"] = self.run(node["items"], f"{path}/items", stack)
                continue
            if key == "items" and "prefixItems" in node:
                continue
            if key == "dependentRequired":
                deps = out.setdefault("dependencies", {})
                deps.update({k: list(v) for k, v in value.items()})
                continue
            if key == "dependentSchemas":
                deps = out.setdefault("dependencies", {})
                deps.update({k: self.run(v, f"{where}/{k}", stack) for k, v in value.items()})
                continue
            if key not in _SUPPORTED:
                raise UnsupportedSchemaError(
                    f"{where}: the keyword {key!r} is not supported by the case generator "
                    "(draft-07 keywords, prefixItems and dependentRequired/-Schemas are); "
                    "remove it or express it with supported keywords"
                )
            if key == "format" and value not in FORMATS:
                raise UnsupportedSchemaError(
                    f"{where}: the format {value!r} is not known to the case generator "
                    f"(known: {', '.join(sorted(FORMATS))})"
                )
            if key in _SCHEMA_LISTS:
                out[key] = [self.run(v, f"{where}/{i}", stack) for i, v in enumerate(value)]
            elif key in _SCHEMA_MAPS:
                out[key] = {k: self.run(v, f"{where}/{k}", stack) for k, v in value.items()}
            elif key in _SCHEMA_VALUES:
                out[key] = self.run(value, where, stack)
            elif key == "items":
                if isinstance(value, list):
                    out[key] = [self.run(v, f"{where}/{i}", stack) for i, v in enumerate(value)]
                else:
                    out[key] = self.run(value, where, stack)
            elif key == "dependencies":
                deps = out.setdefault("dependencies", {})
                for name, dep in value.items():
                    deps[name] = (
                        list(dep)
                        if isinstance(dep, list)
                        else self.run(dep, f"{where}/{name}", stack)
                    )
            else:
                out[key] = copy.deepcopy(value)
        return out
