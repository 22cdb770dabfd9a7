"""Does one message, as it travels on the wire, keep the contract of its channel?

A message conforms when its protocol headers are a CloudEvents 1.0 envelope of the
backend's binding (read with `eventwire.bindings`), its ``type`` is a message the contract
declares on that channel, it carries an ordering key when that message declares one
(``x-eventwire-key`` or a Kafka ``key`` binding), its headers validate against the message's
headers schema (traits merged in) and its payload against the payload schema.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator

from eventwire.backend import WireMessage
from eventwire.bindings import BINDINGS, from_headers, to_headers
from eventwire.contracts._document import deref, escape_pointer, iter_messages
from eventwire.contracts._lint import _headers as merged_headers
from eventwire.contracts._load import ContractValidator
from eventwire.envelope import SPEC_VERSION
from eventwire.errors import ContractError, DecodeError

__all__ = [
    "ChannelRules",
    "ContractChannel",
    "Problem",
    "contract_channels",
    "declares_key",
    "select_channels",
]


@dataclass(frozen=True)
class Problem:
    """One way a message breaks its channel's contract.

    ``rule`` is ``cloudevents``, ``type``, ``key``, ``headers`` or ``payload``.
    """

    rule: str
    detail: str


@dataclass(frozen=True)
class ContractChannel:
    """A channel of a document: its key, its address and the names of its messages."""

    key: str
    address: str
    messages: tuple[str, ...]
    dead_letter_of: str | None


def contract_channels(document: Mapping[str, Any]) -> list[ContractChannel]:
    """Every channel of `document` with the names (event types) of its messages."""
    out: list[ContractChannel] = []
    for key, node in (document.get("channels") or {}).items():
        channel, pointer = deref(document, node, escape_pointer("channels", str(key)))
        if not isinstance(channel, Mapping):
            continue
        names = []
        for mkey, mnode in (channel.get("messages") or {}).items():
            message, _ = deref(document, mnode, pointer + escape_pointer("messages", str(mkey)))
            if isinstance(message, Mapping):
                names.append(str(message.get("name") or mkey))
        address = channel.get("address")
        out.append(
            ContractChannel(
                key=str(key),
                address=str(address if address is not None else key),
                messages=tuple(names),
                dead_letter_of=channel.get("x-eventwire-dead-letter-of"),
            )
        )
    return out


def declares_key(message: Mapping[str, Any]) -> bool:
    """True when `message` declares an ordering key (``x-eventwire-key`` or a Kafka key)."""
    if message.get("x-eventwire-key"):
        return True
    bindings = message.get("bindings")
    kafka = bindings.get("kafka") if isinstance(bindings, Mapping) else None
    return isinstance(kafka, Mapping) and "key" in kafka


def _schema_binding(schema: Mapping[str, Any]) -> str:
    """The header binding a headers schema is written in (by its CloudEvents names)."""
    names = [str(n) for n in (schema.get("properties") or {})] + [
        str(n) for n in (schema.get("required") or ())
    ]
    for binding, prefix in BINDINGS.items():
        if any(n.startswith(prefix) for n in names):
            return binding
    return "kafka"


class ChannelRules:
    """The rules of a document's channels, compiled once; `check` one wire message."""

    def __init__(self, document: Mapping[str, Any], source: str = "<contract>") -> None:
        self.source = source
        self.channels = {c.address: c for c in contract_channels(document)}
        self._payloads = ContractValidator(document, source)
        self._keyed: set[str] = set()
        self._headers: dict[str, tuple[Draft202012Validator, str]] = {}
        try:
            entries = list(iter_messages(document))
        except KeyError as exc:
            raise ContractError(f"{source}: {exc.args[0]}") from None
        for entry in entries:
            name, message = entry.name, entry.message
            if declares_key(message):
                self._keyed.add(name)
            schema = merged_headers(document, message)
            if isinstance(schema, Mapping):
                try:
                    Draft202012Validator.check_schema(schema)
                except Exception as exc:
                    raise ContractError(
                        f"{source}: the headers schema of message {name!r} is not a valid "
                        f"JSON Schema: {exc}"
                    ) from None
                self._headers[name] = (
                    Draft202012Validator(
                        schema, format_checker=Draft202012Validator.FORMAT_CHECKER
                    ),
                    _schema_binding(schema),
                )

    def check(self, address: str, wire: WireMessage, binding: str) -> list[Problem]:
        """Every problem of `wire`, read on channel `address` of a `binding` backend."""
        channel = self.channels.get(address)
        if channel is None:
            return [Problem("type", f"channel {address!r} is not in the contract {self.source}")]
        try:
            envelope = from_headers(wire.headers, binding)
        except DecodeError as exc:
            return [Problem("cloudevents", str(exc))]
        problems: list[Problem] = []
        if envelope.specversion != SPEC_VERSION:
            problems.append(
                Problem(
                    "cloudevents",
                    f"specversion is {envelope.specversion!r}, CloudEvents {SPEC_VERSION} "
                    "is expected",
                )
            )
        for name in ("id", "source", "type"):
            if not getattr(envelope, name):
                problems.append(Problem("cloudevents", f"CloudEvents {name} is empty"))
        if problems:
            return problems
        if envelope.type not in channel.messages:
            declared = ", ".join(channel.messages) or "none"
            return [
                Problem(
                    "type",
                    f"type {envelope.type!r} is not a message of channel {address!r} "
                    f"(declared: {declared})",
                )
            ]
        if envelope.type in self._keyed and wire.key is None:
            problems.append(
                Problem("key", f"{envelope.type} declares an ordering key, the message has none")
            )
        headers = self._headers.get(envelope.type)
        if headers is not None:
            validator, schema_binding = headers
            canonical = to_headers(envelope, schema_binding)
            for error in sorted(validator.iter_errors(canonical), key=lambda e: e.json_path):
                problems.append(Problem("headers", f"{error.json_path}: {error.message}"))
        for error in self._payloads.errors(envelope.type, wire.body):
            problems.append(Problem("payload", error))
        return problems


def select_channels(rules: ChannelRules, wanted: Sequence[str] = ()) -> list[ContractChannel]:
    """The channels named in `wanted` (by key or address), or every channel that is not a
    dead-letter channel; `ContractError` for a name the contract does not have."""
    channels = list(rules.channels.values())
    out: list[ContractChannel] = [c for c in channels if c.dead_letter_of is None]
    if wanted:
        out = []
    for name in wanted:
        found = next((c for c in channels if name in (c.key, c.address)), None)
        if found is None:
            known = ", ".join(sorted(c.address for c in channels)) or "none"
            raise ContractError(
                f"channel {name!r} is not in the contract {rules.source} (its channels: {known})"
            )
        if found not in out:
            out.append(found)
    for channel in out:
        if "{" in channel.address:
            raise ContractError(
                f"channel {channel.address!r} has parameters; give a concrete channel "
                "with --channel (parameterised addresses cannot be subscribed)"
            )
    return out
