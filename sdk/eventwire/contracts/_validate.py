"""Validating whole AsyncAPI 3.0 documents: the official JSON Schema plus semantic checks."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

from jsonschema import Draft7Validator, Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError
from referencing import Registry
from referencing.jsonschema import DRAFT7

from eventwire.contracts._document import deref, escape_pointer, iter_messages, resolve

__all__ = ["Problem", "Severity", "json_path", "official_schema", "validate_document"]

Severity = Literal["error", "warning", "info"]
_IDENT = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$-]*$")


def json_path(parts: Sequence[str | int]) -> str:
    """``$.channels.orders.messages[0]``; keys that are not identifiers are quoted."""
    out = "$"
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENT.match(part):
            out += "." + part
        else:
            out += "[" + json.dumps(part) + "]"
    return out


def _pointer_parts(pointer: str) -> list[str | int]:
    if not pointer:
        return []
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer.lstrip("/").split("/")]


@dataclass(frozen=True)
class Problem:
    """One finding about a document: where (a JSON path), what, which rule, how bad."""

    path: str
    message: str
    rule: str = "asyncapi-schema"
    severity: Severity = "error"

    def __str__(self) -> str:
        return f"{self.severity}: {self.path}: {self.message} [{self.rule}]"


@functools.cache
def official_schema() -> dict[str, Any]:
    """The official AsyncAPI 3.0.0 JSON Schema (vendored from the npm ``@asyncapi/specs``)."""
    text = (
        resources.files("eventwire.contracts")
        .joinpath("schemas/3.0.0.json")
        .read_text(encoding="utf-8")
    )
    schema: dict[str, Any] = json.loads(text)
    return schema


@functools.cache
def _official_validator() -> Draft7Validator:
    schema = official_schema()
    resource = DRAFT7.create_resource(schema)
    registry: Registry[Any] = Registry().with_resource(schema["$id"], resource).crawl()
    return Draft7Validator(schema, registry=registry)


def _leaves(error: ValidationError) -> Iterator[ValidationError]:
    if not error.context:
        yield error
    for child in error.context or ():
        yield from _leaves(child)


def _describe(error: ValidationError) -> tuple[list[str | int], str]:
    """The most useful location and text for an error of the official schema.

    For ``oneOf`` / ``anyOf`` failures (a Reference or an object, for instance) the deepest
    error among the alternatives is the one that says what is wrong.
    """
    if error.context:
        deepest = max(_leaves(error), key=lambda e: len(e.absolute_path))
        if len(deepest.absolute_path) > len(error.absolute_path):
            return list(deepest.absolute_path), deepest.message
    return list(error.absolute_path), error.message


def _schema_problems(document: Mapping[str, Any]) -> Iterator[Problem]:
    for error in _official_validator().iter_errors(document):
        path, message = _describe(error)
        yield Problem(json_path(path), message)


def _walk_refs(node: Any, path: list[str | int]) -> Iterator[tuple[list[str | int], str]]:
    if isinstance(node, Mapping):
        ref = node.get("$ref")
        if isinstance(ref, str):
            yield [*path, "$ref"], ref
        for key, value in node.items():
            if key in ("examples", "example", "const", "default", "enum"):
                continue  # data, not schema: a "$ref" key there is just a value
            yield from _walk_refs(value, [*path, str(key)])
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk_refs(value, [*path, i])


def _ref_problems(document: Mapping[str, Any]) -> Iterator[Problem]:
    for path, ref in _walk_refs(document, []):
        if not ref.startswith("#"):
            yield Problem(
                json_path(path),
                f"external reference {ref!r}: eventwire contracts must be self-contained "
                "(move the target into components and use a local '#/...' reference)",
                "ref-external",
            )
            continue
        try:
            resolve(document, ref)
        except KeyError as exc:
            yield Problem(json_path(path), f"dangling reference: {exc.args[0]}", "ref-resolves")


def _operation_problems(document: Mapping[str, Any]) -> Iterator[Problem]:
    operations = document.get("operations")
    if not isinstance(operations, Mapping):
        return
    for key, node in operations.items():
        base: list[str | int] = ["operations", str(key)]
        try:
            operation, _ = deref(document, node, escape_pointer("operations", str(key)))
        except KeyError:
            continue  # reported by the reference check
        if not isinstance(operation, Mapping):
            continue
        yield from _check_messages_in_channel(operation, base)
        reply = operation.get("reply")
        if isinstance(reply, Mapping) and "channel" in reply:
            yield from _check_messages_in_channel(reply, [*base, "reply"])
        if "x-eventwire-emits" in operation:
            yield from _emits_problems(document, operation, [*base, "x-eventwire-emits"])


def _emits_problems(
    document: Mapping[str, Any], operation: Mapping[str, Any], path: list[str | int]
) -> Iterator[Problem]:
    """``x-eventwire-emits``: message names, or received message name -> message names."""
    emits = operation["x-eventwire-emits"]
    if operation.get("action") != "receive":
        yield Problem(json_path(path), "x-eventwire-emits belongs on a receive operation", "emits")
        return
    if isinstance(emits, list):
        groups: list[tuple[list[str | int], Any]] = [(path, emits)]
    elif isinstance(emits, Mapping):
        groups = [([*path, str(k)], v) for k, v in emits.items()]
    else:
        yield Problem(
            json_path(path),
            "x-eventwire-emits must be a list of message names or a mapping from a received "
            "message name to such a list",
            "emits",
        )
        return
    try:
        known = {entry.name for entry in iter_messages(document)}
    except KeyError:
        return  # reported by the reference check
    for where, names in groups:
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            yield Problem(json_path(where), "must be a list of message names", "emits")
            continue
        for index, name in enumerate(names):
            if name not in known:
                yield Problem(
                    json_path([*where, index]),
                    f"{name!r} is not a message of this document",
                    "emits",
                )


def _check_messages_in_channel(
    owner: Mapping[str, Any], base: list[str | int]
) -> Iterator[Problem]:
    channel = owner.get("channel")
    channel_ref = channel.get("$ref") if isinstance(channel, Mapping) else None
    if not isinstance(channel_ref, str) or not channel_ref.startswith("#/channels/"):
        if channel is not None:
            yield Problem(
                json_path([*base, "channel"]),
                "the channel must be a reference to a channel ('$ref: #/channels/<name>')",
                "operation-channel",
            )
        return
    prefix = channel_ref + "/messages/"
    messages = owner.get("messages")
    if not isinstance(messages, list):
        return
    for i, message in enumerate(messages):
        ref = message.get("$ref") if isinstance(message, Mapping) else None
        if not isinstance(ref, str) or not ref.startswith(prefix):
            yield Problem(
                json_path([*base, "messages", i]),
                f"operation messages must be references into its channel's messages "
                f"('{prefix}<name>'), got {ref or message!r}",
                "operation-messages",
            )


def _json_schema_problems(document: Mapping[str, Any]) -> Iterator[Problem]:
    """Every schema the payload validator compiles must be a valid JSON Schema."""
    seen: set[str] = set()
    targets: list[tuple[str, Any]] = []
    components = document.get("components")
    if isinstance(components, Mapping) and isinstance(components.get("schemas"), Mapping):
        for name, schema in components["schemas"].items():
            targets.append((escape_pointer("components", "schemas", str(name)), schema))
    from eventwire.contracts._document import iter_messages

    try:
        entries = list(iter_messages(document))
    except KeyError:
        entries = []  # dangling references are reported elsewhere
    for entry in entries:
        for field in ("payload", "headers"):
            if field in entry.message:
                targets.append((entry.pointer + "/" + field, entry.message[field]))
    for pointer, schema in targets:
        if pointer in seen:
            continue
        seen.add(pointer)
        if isinstance(schema, Mapping) and "schemaFormat" in schema and "schema" in schema:
            schema, pointer = schema["schema"], pointer + "/schema"
        if not isinstance(schema, Mapping | bool):
            continue  # the official schema reports the wrong type
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            parts = [*_pointer_parts(pointer), *exc.absolute_path]
            yield Problem(
                json_path(parts), f"not a valid JSON Schema: {exc.message}", "json-schema"
            )


def validate_document(document: Mapping[str, Any]) -> list[Problem]:
    """Every problem of an AsyncAPI 3.0 document, with its JSON path.

    - every error of the official AsyncAPI 3.0.0 JSON Schema (rule ``asyncapi-schema``);
    - every local ``$ref`` resolves, none points outside the document (``ref-resolves``,
      ``ref-external``);
    - every operation's messages are references into its own channel's messages
      (``operation-messages``, ``operation-channel``);
    - every payload, header and component schema is a valid JSON Schema (``json-schema``).
    """
    problems = list(_schema_problems(document))
    problems += _ref_problems(document)
    problems += _operation_problems(document)
    problems += _json_schema_problems(document)
    return list(dict.fromkeys(problems))
