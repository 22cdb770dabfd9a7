"""Contract to code: `Event` / `Command` classes and a bus for the messages of a contract.

A small generator for the schemas eventwire itself writes (pydantic's JSON Schema): objects,
nested objects by ``$ref``, arrays, enums, nullable fields, decimals, dates and the usual
constraints. Anything it cannot express becomes ``Any`` with a comment.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Mapping
from typing import Any

from eventwire.contracts._document import deref, iter_messages, resolve
from eventwire.deadletter import DLQ_SUFFIX
from eventwire.errors import ContractError

__all__ = ["generate_code"]

_FORMATS = {"date-time": "datetime", "date": "date", "time": "time", "uuid": "UUID"}
_CONSTRAINTS = {
    "minimum": "ge",
    "maximum": "le",
    "exclusiveMinimum": "gt",
    "exclusiveMaximum": "lt",
    "minLength": "min_length",
    "maxLength": "max_length",
    "minItems": "min_length",
    "maxItems": "max_length",
    "pattern": "pattern",
    "multipleOf": "multiple_of",
}


def _class_name(name: str) -> str:
    parts = re.split(r"[^A-Za-z0-9]+", name)
    out = "".join(p[:1].upper() + p[1:] for p in parts if p) or "Message"
    return "M" + out if out[0].isdigit() else out


def _field_name(name: str) -> str:
    return name + "_" if keyword.iskeyword(name) else name


class _Writer:
    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = document
        self.imports: set[str] = set()
        self.models: dict[str, str] = {}  # ref -> class name
        self.blocks: list[str] = []

    def annotation(self, schema: Any) -> str:
        if not isinstance(schema, Mapping) or not schema:
            self.imports.add("from typing import Any")
            return "Any"
        ref = schema.get("$ref")
        if isinstance(ref, str):
            return self.model(ref)
        if "const" in schema:
            self.imports.add("from typing import Literal")
            return f"Literal[{schema['const']!r}]"
        if isinstance(schema.get("enum"), list):
            self.imports.add("from typing import Literal")
            return "Literal[" + ", ".join(repr(v) for v in schema["enum"]) + "]"
        options = schema.get("anyOf") or schema.get("oneOf")
        if isinstance(options, list):
            kinds = [o.get("type") for o in options if isinstance(o, Mapping)]
            if sorted(str(k) for k in kinds if k != "null") == ["number", "string"]:
                self.imports.add("from decimal import Decimal")
                base = "Decimal"
                return base + " | None" if "null" in kinds else base
            parts = [self.annotation(o) for o in options]
            return " | ".join(dict.fromkeys(parts))
        kind = schema.get("type")
        if kind == "null":
            return "None"
        if kind == "string":
            fmt = _FORMATS.get(str(schema.get("format")))
            if fmt == "UUID":
                self.imports.add("from uuid import UUID")
            elif fmt is not None:
                self.imports.add(f"from datetime import {fmt}")
            return fmt or "str"
        if kind == "integer":
            return "int"
        if kind == "number":
            return "float"
        if kind == "boolean":
            return "bool"
        if kind == "array":
            return f"list[{self.annotation(schema.get('items', {}))}]"
        if kind == "object":
            extra = schema.get("additionalProperties")
            if isinstance(extra, Mapping) and not schema.get("properties"):
                return f"dict[str, {self.annotation(extra)}]"
            self.imports.add("from typing import Any")
            return "dict[str, Any]"
        self.imports.add("from typing import Any")
        return "Any"

    def model(self, ref: str) -> str:
        if ref in self.models:
            return self.models[ref]
        try:
            schema = resolve(self.document, ref)
        except KeyError:
            raise ContractError(f"dangling reference {ref!r}") from None
        name = _class_name(ref.rsplit("/", 1)[-1])
        self.models[ref] = name
        if not isinstance(schema, Mapping) or schema.get("type") != "object":
            return self.annotation(schema)
        self.blocks.append(self.klass(name, "BaseModel", "", schema))
        return name

    def klass(self, name: str, bases: str, keywords: str, schema: Mapping[str, Any]) -> str:
        body: list[str] = []
        description = schema.get("description")
        if isinstance(description, str):
            body.append(f'    """{description.strip()}"""\n')
        config = ["frozen=True"] if bases == "BaseModel" else []
        if schema.get("additionalProperties") is False:
            config.append('extra="forbid"')
        if isinstance(schema.get("examples"), list):
            config.append(f"json_schema_extra={{'examples': {schema['examples']!r}}}")
        if config:
            self.imports.add("from pydantic import ConfigDict")
            body.append(f"    model_config = ConfigDict({', '.join(config)})\n")
        required = set(schema.get("required") or ())
        for prop, sub in (schema.get("properties") or {}).items():
            body.append(self.field(str(prop), sub if isinstance(sub, Mapping) else {}, required))
        if not body:
            body.append("    pass")
        header = f"class {name}({bases}{keywords}):"
        return header + "\n" + "\n".join(body) + "\n"

    def field(self, prop: str, schema: Mapping[str, Any], required: set[str]) -> str:
        annotation = self.annotation(schema)
        args: list[str] = []
        if prop not in required:
            args.append(f"default={schema.get('default')!r}")
        target = schema
        if isinstance(schema.get("anyOf"), list):  # constraints of a nullable / decimal field
            for option in schema["anyOf"]:
                if isinstance(option, Mapping) and option.get("type") not in (None, "null"):
                    target = {**option, **schema}
                    break
        for key, arg in _CONSTRAINTS.items():
            if key in target and not isinstance(target[key], bool):
                args.append(f"{arg}={target[key]!r}")
        if isinstance(schema.get("description"), str):
            args.append(f"description={schema['description']!r}")
        if isinstance(schema.get("examples"), list):
            args.append(f"examples={schema['examples']!r}")
        alias = ""
        if _field_name(prop) != prop:
            alias = f"alias={prop!r}"
            args.append(alias)
        if args:
            self.imports.add("from pydantic import Field")
            return f"    {_field_name(prop)}: {annotation} = Field({', '.join(args)})"
        return f"    {_field_name(prop)}: {annotation}"


def generate_code(document: Mapping[str, Any], *, source: str = "the contract") -> str:
    """Python source with an Event/Command class per message and a bus declaring them.

    The bus publishes what the contract's ``send`` operations send and subscribes, with stub
    handlers, what its ``receive`` operations receive (group: ``x-eventwire-group``).
    """
    writer = _Writer(document)
    try:
        entries = list(iter_messages(document))
    except KeyError as exc:
        raise ContractError(f"{source}: {exc.args[0]}") from None
    channels = document.get("channels") or {}
    classes: dict[str, str] = {}
    message_blocks: list[str] = []
    for entry in entries:
        message = entry.message
        addresses = []
        for key in entry.channels:
            channel, _ = deref(document, channels.get(key), "")
            address = str(channel.get("address", key)) if isinstance(channel, Mapping) else key
            if not address.endswith(DLQ_SUFFIX):
                addresses.append(address)
        kind = message.get("x-eventwire-kind") or "event"
        base = "Command" if kind == "command" else "Event"
        class_name = _class_name(entry.name)
        classes[entry.name] = class_name
        keywords = ""
        if addresses:
            keywords += f", channel={addresses[0]!r}"
        if isinstance(message.get("x-eventwire-key"), str):
            keywords += f", key={message['x-eventwire-key']!r}"
        keywords += f", version={int(message.get('x-eventwire-version', 1))}"
        if class_name != entry.name:
            keywords += f", type={entry.name!r}"
        payload = message.get("payload") or {}
        try:
            schema, _ = deref(document, payload, "")
        except KeyError:
            raise ContractError(f"{source}: dangling reference in {entry.name}") from None
        if not isinstance(schema, Mapping) or schema.get("type") not in ("object", None):
            raise ContractError(
                f"{source}: the payload of {entry.name} is not an object schema; "
                "eventwire messages are JSON objects"
            )
        if isinstance(payload, Mapping) and isinstance(payload.get("$ref"), str):
            writer.models[payload["$ref"]] = class_name
        message_blocks.append(writer.klass(class_name, base, keywords, schema))

    info = document.get("info") or {}
    title = str(info.get("title", "service"))
    servers = document.get("servers") or {}
    lines = [
        f'"""Messages of {title} {info.get("version", "")}, generated from {source}."""'.replace(
            " ,", ","
        ),
        "",
        "from __future__ import annotations",
        "",
    ]
    writer.imports.add("from pydantic import BaseModel")
    by_module: dict[str, set[str]] = {}
    for line in writer.imports:
        module, _, imported = line.removeprefix("from ").partition(" import ")
        by_module.setdefault(module, set()).update(imported.split(", "))
    stdlib = sorted(m for m in by_module if m != "pydantic")
    lines += [f"from {m} import {', '.join(sorted(by_module[m]))}" for m in stdlib]
    lines += ["", f"from pydantic import {', '.join(sorted(by_module['pydantic']))}", ""]
    lines += ["from eventwire import Command, Event, EventBus"]
    lines += ["", ""]
    lines.append("\n\n".join([*writer.blocks, *message_blocks]))
    source_name = title
    for server in servers.values() if isinstance(servers, Mapping) else ():
        if isinstance(server, Mapping) and server.get("x-eventwire-source"):
            source_name = str(server["x-eventwire-source"])
    lines += ["", f"bus = EventBus('memory://', source={source_name!r})"]
    sent: list[str] = []
    receives: list[tuple[str, list[str]]] = []
    for node in (document.get("operations") or {}).values():
        operation, _ = deref(document, node, "")
        if not isinstance(operation, Mapping):
            continue
        names: list[str] = []
        for ref in operation.get("messages") or ():
            if isinstance(ref, Mapping) and isinstance(ref.get("$ref"), str):
                target, _ = deref(document, ref, "")
                if isinstance(target, Mapping):
                    names.append(str(target.get("name") or ref["$ref"].rsplit("/", 1)[-1]))
        if operation.get("action") == "send":
            sent += [n for n in names if n in classes]
        elif operation.get("action") == "receive":
            group = str(operation.get("x-eventwire-group") or title)
            receives.append((group, [n for n in names if n in classes]))
    if sent:
        lines.append(f"bus.declare({', '.join(classes[n] for n in dict.fromkeys(sent))})")
    for group, names in receives:
        for name in names:
            cls = classes[name]
            handler = "on_" + re.sub(r"(?<!^)(?=[A-Z])", "_", cls).lower()
            handler += "_" + re.sub(r"\W", "_", group)
            lines += [
                "",
                "",
                f"@bus.subscribe({cls}, group={group!r})",
                f"async def {handler}(event: {cls}) -> None:",
                f'    """Handle {name} in group {group}."""',
                "    raise NotImplementedError",
            ]
    return "\n".join(lines).rstrip() + "\n"
