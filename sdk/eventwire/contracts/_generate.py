"""Code first: an AsyncAPI 3.0 document from an `EventBus` and its message classes."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue, models_json_schema
from pydantic_core import core_schema
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from eventwire.asyncapi import AsyncAPIProtocol
from eventwire.bindings import BINDINGS
from eventwire.codec import JSON
from eventwire.contracts._document import DOCUMENT_URI
from eventwire.contracts._examples import build_example
from eventwire.deadletter import DLQ_SUFFIX
from eventwire.events import Message
from eventwire.foreign import EXTENSION as ACCEPT_EXTENSION
from eventwire.foreign import describe_forms

if TYPE_CHECKING:
    from eventwire.bus import EventBus

__all__ = ["asyncapi_protocol", "envelope_trait", "generate_asyncapi"]

_KEY_CHARS = re.compile(r"[^A-Za-z0-9_.-]")
_CHANNEL_KEY_CHARS = re.compile(r"[^A-Za-z0-9_-]")

_ATTRIBUTES: dict[str, dict[str, Any]] = {
    "id": {"type": "string", "description": "CloudEvents id: unique per event (a UUID)"},
    "type": {"type": "string", "description": "CloudEvents type: the message name"},
    "source": {"type": "string", "description": "CloudEvents source: the publishing service"},
    "specversion": {
        "type": "string",
        "const": "1.0",
        "description": "CloudEvents specification version",
    },
    "time": {
        "type": "string",
        "format": "date-time",
        "description": "CloudEvents time: when the event was published (RFC 3339)",
    },
    "subject": {
        "type": "string",
        "description": "CloudEvents subject: the ordering key, when the message has one",
    },
    "correlationid": {
        "type": "string",
        "description": "correlates the events of one business transaction",
    },
    "causationid": {"type": "string", "description": "the id of the event that caused this one"},
    "dataversion": {
        "type": "string",
        "description": "the schema version of the payload (x-eventwire-version)",
    },
}
_REQUIRED_ATTRIBUTES = ("id", "type", "source", "specversion")


def asyncapi_protocol(bus: EventBus) -> AsyncAPIProtocol:
    """How the bus's backend appears in AsyncAPI, as its plugin says (``eventwire_asyncapi_
    protocol``); a backend whose plugin does not say is protocol ``backend.name``."""
    from eventwire.plugins import get_plugin_manager

    found = get_plugin_manager().hook.eventwire_asyncapi_protocol(backend=bus.backend)
    return found if isinstance(found, AsyncAPIProtocol) else AsyncAPIProtocol(bus.backend.name)


def envelope_trait(binding: str) -> dict[str, Any]:
    """The message trait declaring the CloudEvents headers of `binding` (`eventwire.bindings`)."""
    prefix = BINDINGS[binding]
    properties: dict[str, Any] = {prefix + name: dict(s) for name, s in _ATTRIBUTES.items()}
    properties["content-type"] = {
        "type": "string",
        "const": JSON,
        "description": "CloudEvents datacontenttype",
    }
    return {
        "summary": f"CloudEvents 1.0 binary-mode envelope ({binding} binding, '{prefix}' headers)",
        "headers": {
            "type": "object",
            "required": [prefix + name for name in _REQUIRED_ATTRIBUTES],
            "properties": properties,
        },
    }


def _title(name: str) -> str:
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name.rsplit(".", 1)[-1]).split()
    return " ".join([words[0], *(w.lower() for w in words[1:])]) if words else name


def _unique_key(raw: str, used: set[str], pattern: re.Pattern[str]) -> str:
    key = pattern.sub("_", raw) or "_"
    candidate, n = key, 2
    while candidate in used:
        candidate, n = f"{key}_{n}", n + 1
    used.add(candidate)
    return candidate


def _server(bus: EventBus, protocol: AsyncAPIProtocol) -> dict[str, Any]:
    parts = urlsplit(bus.url)
    server: dict[str, Any] = {"host": parts.netloc or "default", "protocol": protocol.protocol}
    if parts.path and parts.path != "/":
        server["pathname"] = parts.path
    if protocol.description:
        server["description"] = protocol.description
    server.update(protocol.server_extensions)
    return server


def _models(bus: EventBus) -> tuple[dict[str, type[Message]], dict[str, set[str]]]:
    """Every message class by type, and the channels each type appears on."""
    models: dict[str, type[Message]] = {}
    for type_name, model in bus.published.items():
        models[type_name] = model
    for info in bus.subscriptions.values():
        for type_name, route in info.routes.items():
            models.setdefault(type_name, route.model)
    channels: dict[str, set[str]] = {}
    for type_name, model in models.items():
        channel = model.__eventwire__.require_channel()
        channels.setdefault(channel, set()).add(type_name)
    return models, channels


def generate_asyncapi(
    bus: EventBus, *, title: str | None = None, version: str = "1.0.0"
) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of `bus`: what it publishes and what it subscribes to.

    - ``servers``: the bus URL (without credentials) with the backend's protocol;
    - ``channels``: every channel published or subscribed, and its ``<channel>.dlq``;
    - ``operations``: ``send`` per published type, ``receive`` per (channel, group);
    - ``components.messages``: payload = the model's JSON Schema (pydantic's, open content
      model unless the model forbids extra fields), the envelope trait, ``correlationId``,
      the Kafka key, examples that validate, ``x-eventwire-version`` and ``-kind``.

    Plugins may post-process the result (the ``eventwire_asyncapi_document`` hook).
    """
    from eventwire.plugins import get_plugin_manager

    binding = bus.backend.binding if bus.backend.binding in BINDINGS else "kafka"
    prefix = BINDINGS[binding]
    protocol = asyncapi_protocol(bus)
    models, channel_types = _models(bus)

    # payload schemas: one namespace for every model and the models they nest
    ordered = sorted(models.items())
    key_map, definitions = models_json_schema(
        [(model, "validation") for _, model in ordered],
        ref_template="#/components/schemas/{model}",
        schema_generator=_Schemas,
    )
    schemas: dict[str, Any] = dict(definitions.get("$defs", {}))

    message_keys: dict[str, str] = {}
    used_message_keys: set[str] = set()
    for type_name, _ in ordered:
        message_keys[type_name] = _unique_key(type_name, used_message_keys, _KEY_CHARS)

    messages: dict[str, Any] = {}
    for type_name, model in ordered:
        spec = model.__eventwire__
        payload_ref = key_map[(model, "validation")]
        message: dict[str, Any] = {
            "name": type_name,
            "title": _title(type_name),
        }
        doc = (model.__doc__ or "").strip()
        if doc:
            message["summary"] = doc.splitlines()[0]
        message["contentType"] = JSON
        message["payload"] = dict(payload_ref)
        message["correlationId"] = {"$ref": "#/components/correlationIds/correlationId"}
        message["traits"] = [{"$ref": "#/components/messageTraits/envelope"}]
        message_bindings = protocol.message_bindings(type_name, spec.key)
        if message_bindings:
            message["bindings"] = message_bindings
        message["x-eventwire-kind"] = spec.kind
        message["x-eventwire-version"] = spec.version
        if spec.key is not None:
            message["x-eventwire-key"] = spec.key
        messages[message_keys[type_name]] = message

    document: dict[str, Any] = {
        "asyncapi": "3.0.0",
        "info": {
            "title": title or bus.source,
            "version": version,
            "description": f"Messages published and consumed by {bus.source}.",
        },
        "defaultContentType": JSON,
        "servers": {
            _unique_key(bus.backend.name, set(), _CHANNEL_KEY_CHARS): _server(bus, protocol)
        },
        "channels": {},
        "operations": {},
        "components": {
            "schemas": schemas,
            "messages": messages,
            "messageTraits": {"envelope": envelope_trait(binding)},
            "correlationIds": {
                "correlationId": {
                    "description": "The correlation id of the business transaction",
                    "location": f"$message.header#/{prefix}correlationid",
                }
            },
        },
    }

    # channels (and their dead-letter channels)
    channel_keys: dict[str, str] = {}
    used_channel_keys: set[str] = set()
    for address in sorted(channel_types):
        for name in (address, address + DLQ_SUFFIX):
            channel_keys[name] = _unique_key(name, used_channel_keys, _CHANNEL_KEY_CHARS)
    for address in sorted(channel_types):
        refs = {
            message_keys[t]: {"$ref": f"#/components/messages/{message_keys[t]}"}
            for t in sorted(channel_types[address])
        }
        document["channels"][channel_keys[address]] = {
            "address": address,
            "messages": refs,
            **_bindings(protocol.channel_bindings(address)),
        }
        dlq = address + DLQ_SUFFIX
        document["channels"][channel_keys[dlq]] = {
            "address": dlq,
            "description": (
                f"Dead letters of {address}: the original message (payload, key and headers) "
                "plus eventwire-dlq-reason, -error-type, -error, -attempts, -group, -channel "
                "and -time headers."
            ),
            "messages": copy.deepcopy(refs),
            **_bindings(protocol.channel_bindings(dlq)),
            "x-eventwire-dead-letter-of": address,
        }

    # operations
    operations: dict[str, Any] = document["operations"]
    used_ops: set[str] = set()
    for type_name, model in sorted(bus.published.items()):
        channel = channel_keys[model.__eventwire__.require_channel()]
        op_key = _unique_key(f"send{message_keys[type_name]}", used_ops, _CHANNEL_KEY_CHARS)
        operations[op_key] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel}"},
            "summary": f"{bus.source} publishes {type_name}",
            "messages": [{"$ref": f"#/channels/{channel}/messages/{message_keys[type_name]}"}],
        }
    for (address, group), info in sorted(bus.subscriptions.items()):
        channel = channel_keys[address]
        op_key = _unique_key(f"receive_{channel}_{group}", used_ops, _CHANNEL_KEY_CHARS)
        operation: dict[str, Any] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{channel}"},
            "summary": f"group {group} consumes {', '.join(sorted(info.routes))}",
            "messages": [
                {"$ref": f"#/channels/{channel}/messages/{message_keys[t]}"}
                for t in sorted(info.routes)
            ],
        }
        bindings = protocol.receive_bindings(group)
        if bindings:
            operation["bindings"] = bindings
        operation["x-eventwire-group"] = group
        operation["x-eventwire-concurrency"] = info.concurrency
        if info.accept:
            operation[ACCEPT_EXTENSION] = describe_forms(info.accept)
        if info.emits:
            emits = {t: list(names) for t, names in sorted(info.emits.items())}
            single = len(info.routes) == 1
            operation["x-eventwire-emits"] = next(iter(emits.values())) if single else emits
        operations[op_key] = operation

    _add_examples(document, bus.source, prefix)
    get_plugin_manager().hook.eventwire_asyncapi_document(document=document, bus=bus)
    return document


def _bindings(bindings: dict[str, Any]) -> dict[str, Any]:
    return {"bindings": bindings} if bindings else {}


#: A decimal numeral, as the string form of a ``Decimal`` field (pydantic says only "string").
#: pydantic writes a Decimal in exponent notation when it is very small or large (1.5E-7).
#: ASCII digits: ``\d`` also matches other scripts' digits in Python, which Decimal refuses.
#: The exponent is bounded: Decimal refuses one of 19 digits or more.
DECIMAL_PATTERN = r"^-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]{1,6})?$"
NON_NEGATIVE_DECIMAL_PATTERN = r"^[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]{1,6})?$"


class _Schemas(GenerateJsonSchema):
    """pydantic's schemas, with the string form of a ``Decimal`` held to a decimal numeral.

    Without a pattern, a contract would accept any string where the code accepts only
    numbers (``"" `` or ``"abc"`` as an amount), and a contract test finds that gap.
    """

    def decimal_schema(self, schema: core_schema.DecimalSchema) -> JsonSchemaValue:
        value = super().decimal_schema(schema)
        ge, gt = schema.get("ge"), schema.get("gt")
        non_negative = (ge is not None and ge >= 0) or (gt is not None and gt >= 0)
        pattern = NON_NEGATIVE_DECIMAL_PATTERN if non_negative else DECIMAL_PATTERN
        for branch in value.get("anyOf", ()):
            if branch.get("type") == "string" and "pattern" not in branch:
                branch["pattern"] = pattern
        return value


def _add_examples(document: dict[str, Any], source: str, prefix: str) -> None:
    registry: Registry[Any] = Registry().with_resource(
        DOCUMENT_URI, DRAFT202012.create_resource(document)
    )
    messages: Mapping[str, Any] = document["components"]["messages"]
    for n, (key, message) in enumerate(messages.items(), start=1):
        ref = {"$ref": DOCUMENT_URI + "#/components/messages/" + key + "/payload"}
        validator = Draft202012Validator(
            ref, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER
        )
        schema = message["payload"]
        payload = build_example(schema, document, validator.is_valid)
        if payload is None:
            continue
        headers = {
            prefix + "id": f"00000000-0000-4000-8000-{n:012d}",
            prefix + "type": message["name"],
            prefix + "source": source,
            prefix + "specversion": "1.0",
            prefix + "time": "2024-05-01T12:00:00Z",
            prefix + "dataversion": str(message["x-eventwire-version"]),
            "content-type": JSON,
        }
        message["examples"] = [
            {"name": _example_name(key), "headers": headers, "payload": copy.deepcopy(payload)}
        ]


def _example_name(key: str) -> str:
    return _CHANNEL_KEY_CHARS.sub("_", key)
