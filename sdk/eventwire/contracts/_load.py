"""Reading AsyncAPI 3.0 documents, resolving local references, and the payload validator."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic_core import from_json
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from eventwire.contracts._fast import Check, compile_payload_check
from eventwire.errors import ContractError

__all__ = [
    "DOCUMENT_URI",
    "ContractValidator",
    "MessageEntry",
    "escape_pointer",
    "iter_messages",
    "load_bus",
    "load_document",
    "load_validator",
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


def load_document(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and fully validate a contract; `ContractError` lists every problem found."""
    from eventwire.contracts._validate import validate_document

    document = read_document(path)
    problems = [p for p in validate_document(document) if p.severity == "error"]
    if problems:
        shown = "\n".join(f"  {p}" for p in problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise ContractError(
            f"{path}: not a valid AsyncAPI 3.0 contract ({len(problems)} problem(s)):\n"
            f"{shown}{more}"
        )
    return document


class ContractValidator:
    """Validates event payloads against the message schemas of one contract.

    One compiled `Draft202012Validator` per message, built once, words the problems of an
    invalid payload. A `jsonschema_rs` validator of the same schema answers first (about a
    microsecond for a typical event; see `eventwire.contracts._fast`): only a payload it
    rejects reaches jsonschema. ``errors`` of a valid payload costs a JSON parse plus that.
    """

    def __init__(self, document: Mapping[str, Any], source: str = "<contract>") -> None:
        self.source = source
        #: channel address -> its ``x-eventwire-accept`` value (`eventwire.foreign`), as written.
        self.accept: dict[str, Any] = {
            str(channel.get("address") or key): channel["x-eventwire-accept"]
            for key, channel in (document.get("channels") or {}).items()
            if isinstance(channel, Mapping) and "x-eventwire-accept" in channel
        }
        registry: Registry[Any] = Registry().with_resource(
            DOCUMENT_URI, DRAFT202012.create_resource(document)
        )
        self._validators: dict[str, Draft202012Validator | None] = {}
        self._compiled: dict[str, Check] = {}
        try:
            entries = list(iter_messages(document))
        except KeyError as exc:
            raise ContractError(f"{source}: {exc.args[0]}") from None
        for entry in entries:
            pointer = payload_pointer(document, entry)
            if pointer is None:
                self._validators[entry.name] = None
                continue
            schema, _ = deref(document, resolve(document, "#" + pointer), pointer)
            try:
                Draft202012Validator.check_schema(schema)
            except SchemaError as exc:
                where = "/".join(str(p) for p in exc.absolute_path)
                raise ContractError(
                    f"{source}: the payload schema of message {entry.name!r} ({pointer}) "
                    f"is not a valid JSON Schema at '{where}': {exc.message}"
                ) from None
            ref = {"$ref": DOCUMENT_URI + "#" + quote(pointer, safe="/~")}
            self._validators[entry.name] = Draft202012Validator(
                ref,
                registry=registry,
                format_checker=Draft202012Validator.FORMAT_CHECKER,
            )
            check = compile_payload_check(document, pointer)
            if check is not None:
                self._compiled[entry.name] = check

    @property
    def message_types(self) -> list[str]:
        """The message names (event types) of the contract."""
        return sorted(self._validators)

    def errors(self, message_type: str, payload: bytes) -> list[str]:
        """Every problem of `payload` for `message_type`, with its JSON path; empty if valid."""
        try:
            validator = self._validators[message_type]
        except KeyError:
            known = ", ".join(self.message_types) or "none"
            return [
                f"message type {message_type!r} is not in the contract {self.source} "
                f"(its messages: {known})"
            ]
        if validator is None:
            return []
        check = self._compiled.get(message_type)
        if check is not None:
            try:  # pydantic-core's parser: several times faster than json.loads, and never
                # takes a document json.loads refuses (tests/contracts/test_fast_validation.py)
                if check(from_json(payload)):
                    return []
            except ValueError:
                pass
        try:
            instance = json.loads(payload)
        except (ValueError, UnicodeDecodeError) as exc:
            return [f"$: payload is not JSON: {exc}"]
        return [
            f"{error.json_path}: {error.message}"
            for error in sorted(validator.iter_errors(instance), key=lambda e: e.json_path)
        ]


def load_validator(path: str | os.PathLike[str]) -> ContractValidator:
    """The payload validator of the contract at `path` (used by ``EventBus(contract=...)``).

    A missing, malformed or invalid contract raises `ContractError` naming the file and the
    JSON path of each problem.
    """
    document = load_document(path)
    return ContractValidator(document, str(path))


def load_bus(target: str) -> Any:
    """The `EventBus` named by ``MODULE:ATTR`` or ``path/to/file.py:ATTR``.

    `ContractError` names the target and says what failed (without a traceback).
    """
    from eventwire._target import resolve_target
    from eventwire.bus import EventBus
    from eventwire.errors import ConfigurationError

    try:
        bus = resolve_target(target, example="myapp.events", isolated=True)
    except ConfigurationError as exc:
        raise ContractError(str(exc)) from None
    if not isinstance(bus, EventBus):
        attr = target.rpartition(":")[2]
        raise ContractError(
            f"{target}: {attr} is a {type(bus).__name__}, not an eventwire EventBus"
        )
    return bus
