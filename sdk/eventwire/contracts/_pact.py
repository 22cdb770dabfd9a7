"""Pact interoperability: a consumer's expectations as Pact V4 message pacts, and provider
verification against pact files with pact-python's verifier.

Each message a consumer's contract *receives* becomes one asynchronous message interaction
(``"<Message> on <channel>"``): the body is an example of the payload reduced to what the
consumer's schema requires, with Pact matching rules taken from the schema (type matchers,
an integer matcher for integers, a regex for string enums and patterns, ``each_like`` for
arrays); the metadata names the message type and channel. pact-python (the ``contract``
extra) writes the file; verification runs offline (set ``PACT_DO_NOT_TRACK=true`` to keep
the Pact libraries from reporting usage).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eventwire.contracts._document import resolve
from eventwire.contracts._load import ContractValidator
from eventwire.contracts._operations import message_examples, operation_messages
from eventwire.errors import ConfigurationError, ContractError

__all__ = [
    "ContractProvider",
    "PactMessage",
    "PactResult",
    "eventwire_message",
    "export_pacts",
    "interaction_name",
    "verify_pacts",
]

_MAX_DEPTH = 16


def _pact() -> Any:
    try:
        import pact
    except ImportError:
        raise ConfigurationError(
            "Pact support needs pact-python; install it with pip install 'eventwire[contract]'"
        ) from None
    return pact


def interaction_name(message: str, channel: str) -> str:
    """The description of the interaction for `message` on `channel`."""
    return f"{message} on {channel}"


@dataclass(frozen=True)
class PactMessage:
    """What a provider produces for one interaction: the body and its metadata."""

    body: bytes
    metadata: Mapping[str, Any]
    content_type: str = "application/json"


@dataclass(frozen=True)
class PactResult:
    """The outcome of a provider verification: ok, and the mismatches by interaction."""

    ok: bool
    mismatches: list[tuple[str, str, str]]  # (interaction, path, mismatch)
    output: str


class _Matchers:
    """Pact matchers for an example value, from the JSON Schema it is an instance of."""

    def __init__(self, document: Mapping[str, Any], match: Any) -> None:
        self.document = document
        self.match = match
        #: Rules the matchers cannot express (alternatives), by JSON path, for
        #: ``with_matching_rules``.
        self.rules: dict[str, Any] = {}

    def _resolve(self, schema: Any) -> Any:
        for _ in range(_MAX_DEPTH):
            if isinstance(schema, Mapping) and isinstance(schema.get("$ref"), str):
                target = resolve(self.document, schema["$ref"])
                rest = {k: v for k, v in schema.items() if k != "$ref"}
                schema = {**target, **rest} if isinstance(target, Mapping) else target
            elif isinstance(schema, Mapping) and isinstance(schema.get("allOf"), list):
                merged: dict[str, Any] = {}
                for part in schema["allOf"]:
                    part = self._resolve(part)
                    if isinstance(part, Mapping):
                        merged.update(part)
                schema = {**merged, **{k: v for k, v in schema.items() if k != "allOf"}}
            else:
                return schema
        return schema

    def _branch(self, schema: Any) -> dict[str, Any] | None:
        """A Pact matcher for one alternative of an ``anyOf`` / ``oneOf`` (``None``: any
        string, which Pact can only match by the example's type)."""
        schema = self._resolve(schema)
        if not isinstance(schema, Mapping):
            return {"match": "type"}
        enum = schema.get("enum")
        if isinstance(enum, list) and all(isinstance(v, str) for v in enum):
            return {"match": "regex", "regex": _enum_pattern(enum)}
        kind = schema.get("type")
        if kind in ("number", "integer", "boolean", "null"):
            return {"match": kind}
        if kind == "string" and isinstance(schema.get("pattern"), str):
            return {"match": "regex", "regex": schema["pattern"]}
        if kind == "string":
            return None
        return {"match": "type"}

    def _alternatives(self, branches: list[Any], value: Any, path: str) -> Any:
        """OR-combined rules for `branches` at `path`; returns the example to put there.

        Pact has no "is a string" matcher: a branch that accepts any string is matched by
        the example's type, so a number example becomes its text when such a branch exists.
        """
        matchers = [self._branch(b) for b in branches]
        if None in matchers:
            if isinstance(value, int | float) and not isinstance(value, bool):
                value = json.dumps(value)
            if isinstance(value, str):
                matchers = [{"match": "type"}, *(m for m in matchers if m is not None)]
            else:
                matchers = [m or {"match": "type"} for m in matchers]
        self.rules[path] = {"combine": "OR", "matchers": list(matchers)}
        return value

    def build(self, schema: Any, value: Any, depth: int = 0, path: str = "$") -> Any:
        schema = self._resolve(schema)
        match = self.match
        if not isinstance(schema, Mapping) or depth > _MAX_DEPTH:
            return match.like(value)
        if "const" in schema:
            return value
        for keyword in ("anyOf", "oneOf"):
            if isinstance(schema.get(keyword), list):
                return self._alternatives(schema[keyword], value, path)
        enum = schema.get("enum")
        if isinstance(enum, list):
            if all(isinstance(v, str) for v in enum) and isinstance(value, str):
                return match.regex(value, regex=_enum_pattern(enum))
            return value
        if isinstance(value, dict):
            properties = schema.get("properties") or {}
            required = set(schema.get("required") or ())
            return {
                name: self.build(properties.get(name, True), item, depth + 1, f"{path}.{name}")
                for name, item in value.items()
                if name in required
            }
        if isinstance(value, list):
            if not value:
                return match.like(value)
            minimum = schema.get("minItems")
            return match.each_like(
                self.build(schema.get("items", True), value[0], depth + 1, f"{path}[*]"),
                min=max(int(minimum), 1) if isinstance(minimum, int) else 1,
            )
        if isinstance(value, str) and isinstance(schema.get("pattern"), str):
            return match.regex(value, regex=schema["pattern"])
        if isinstance(value, bool):
            return match.bool(value)
        if isinstance(value, int) and schema.get("type") == "integer":
            return match.int(value)
        return match.like(value)


def _enum_pattern(values: Sequence[str]) -> str:
    return "^(" + "|".join(re.escape(v) for v in values) + ")$"


def export_pacts(
    consumer: Mapping[str, Any],
    provider: str,
    directory: Path,
    *,
    consumer_name: str | None = None,
    source: str = "<contract>",
) -> Path:
    """Write the Pact V4 message pact of `consumer` (its receive operations) with `provider`.

    Returns the file written (``<consumer>-<provider>.json`` in `directory`, replaced if it
    exists). Each interaction is first checked against the consumer's own schema, as a Pact
    consumer test would.
    """
    pact = _pact()
    name = consumer_name or str((consumer.get("info") or {}).get("title") or "consumer")
    received = operation_messages(consumer, "receive")
    if not received:
        raise ContractError(f"{source}: the contract has no receive operation; no pact to export")
    validator = ContractValidator(consumer, source)
    matchers = _Matchers(consumer, pact.match)
    contract = pact.Pact(name, provider).with_specification("V4")
    for entry in received:
        example = message_examples(consumer, entry, validator)[0][0]
        schema = entry.message.get("payload")
        matchers.rules = {}
        body = matchers.build(schema, example) if schema is not None else None
        interaction = contract.upon_receiving(interaction_name(entry.name, entry.channel), "Async")
        interaction.with_body(body, "application/json")
        if matchers.rules:
            interaction.with_matching_rules({"body": matchers.rules})
        interaction.with_metadata({"type": entry.name, "channel": entry.channel})

    def consumer_accepts(body: str | bytes | None, metadata: dict[str, object]) -> None:
        problems = validator.errors(str(metadata.get("type")), _bytes(body or b""))
        if problems:
            raise AssertionError("; ".join(problems))

    contract.verify(consumer_accepts, "Async")
    directory.mkdir(parents=True, exist_ok=True)
    contract.write_file(directory, overwrite=True)
    written = directory / f"{name}-{provider}.json"
    if not written.is_file():
        found = sorted(directory.glob(f"{name}*.json"))
        if not found:
            raise ContractError(f"pact-python wrote no pact file in {directory}")
        written = found[-1]
    return written


def _bytes(body: str | bytes) -> bytes:
    return body.encode() if isinstance(body, str) else body


def verify_pacts(
    provider: str,
    sources: Sequence[Path | str],
    produce: Callable[[str, Mapping[str, Any]], PactMessage],
    *,
    only: str | None = None,
) -> PactResult:
    """Verify `provider` against pact files or directories with pact-python's verifier.

    `produce(description, metadata)` returns the message the provider publishes for that
    interaction; pact-python serves it from a local message-provider endpoint. `only`
    verifies just the interactions whose description matches that regular expression.
    """
    pact = _pact()

    def handler(name: str, metadata: dict[str, Any] | None) -> Any:
        message = produce(name, metadata or {})
        return {
            "contents": message.body,
            "metadata": dict(message.metadata),
            "content_type": message.content_type,
        }

    verifier = pact.Verifier(provider).message_handler(handler)
    for source in sources:
        verifier.add_source(source)
    if only is not None:
        verifier.filter(description=only)
    try:
        verifier.verify()
        ok = True
    except RuntimeError:
        ok = False
    results = verifier.results
    mismatches = [
        (str(error.get("interaction", "")), str(m.get("path", "")), str(m.get("mismatch", "")))
        for error in results.get("errors") or ()
        for m in (error.get("mismatch") or {}).get("mismatches") or ()
    ]
    output = "\n".join(results.get("output") or ())
    return PactResult(ok and bool(results.get("result", True)), mismatches, output)


def eventwire_message(event: Any, *, correlation_id: str | None = None) -> PactMessage:
    """The message an eventwire service publishes for `event`, for a provider verification:
    the body from eventwire's codec and, as metadata, the CloudEvents attributes and the
    channel."""
    from eventwire.codec import encode
    from eventwire.envelope import Envelope

    spec = type(event).__eventwire__
    envelope = Envelope.new(
        type=spec.type,
        source="pact-verification",
        subject=event.message_key(),
        correlationid=correlation_id,
        dataversion=str(spec.version),
    )
    wire = encode(event, envelope, "kafka")
    return PactMessage(wire.body, {**envelope.attributes(), "channel": spec.channel})


class ContractProvider:
    """A producer for `verify_pacts` that answers each interaction with the first example of
    the message the provider's contract sends on that channel. An interaction for a message
    it does not send fails the verification and is listed in `missing`."""

    def __init__(self, provider: Mapping[str, Any], source: str = "<contract>") -> None:
        self.provider = provider
        self.source = source
        self.validator = ContractValidator(provider, source)
        self.sent = {
            interaction_name(m.name, m.channel): m for m in operation_messages(provider, "send")
        }
        self.missing: list[str] = []

    def __call__(self, description: str, _metadata: Mapping[str, Any]) -> PactMessage:
        entry = self.sent.get(description)
        if entry is None:  # an empty message fails the interaction (no traceback, no HTTP 500)
            self.missing.append(description)
            return PactMessage(b"", {"error": f"{self.source} does not send this message"})
        payload, _ = message_examples(self.provider, entry, self.validator)[0]
        metadata = {"type": entry.name, "channel": entry.channel}
        return PactMessage(json.dumps(payload).encode(), metadata)
