"""A mock producer: publish the messages a contract *sends*, as real eventwire envelopes.

A consuming team can build against a producer that does not exist yet: every message of
every ``send`` operation is published on its channel, first its examples (a message without
one gets a built example), then, when asked, generated valid messages (the contract cases of
`eventwire.testing.contract`: a case per enum member, boundary and optional field, then
values generated from the schema). Each is a CloudEvents
envelope of the backend's binding with a fresh id, the ordering key taken from the payload
field the message names (``x-eventwire-key``) and the example's own user headers.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from eventwire.backend import WireMessage
from eventwire.bindings import READ_PREFIXES, to_headers
from eventwire.contracts._examples import build_example
from eventwire.contracts._load import ContractValidator, resolve
from eventwire.contracts._operations import OperationMessage, operation_messages
from eventwire.envelope import Envelope
from eventwire.errors import ContractError
from eventwire.plugins import create_backend
from eventwire.urls import redact_url

__all__ = ["MockMessage", "MockReport", "plan", "run_mock", "sent_messages"]

#: Generated messages published per sent message with ``generated`` and no ``count``.
GENERATED_PER_MESSAGE = 10

_CE_PREFIXES = tuple({p for prefixes in READ_PREFIXES.values() for p in prefixes})


@dataclass(frozen=True)
class MockMessage:
    """One message to publish."""

    channel: str
    name: str
    payload: Any
    headers: Mapping[str, str]
    source: str | None


@dataclass
class MockReport:
    """What a mock run published."""

    url: str
    published: Counter[tuple[str, str]] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.published.values())


def sent_messages(document: Mapping[str, Any]) -> list[OperationMessage]:
    """Every (channel, message) the document's ``send`` operations publish."""
    return operation_messages(document, "send")


def _key_of(message: Mapping[str, Any], payload: Any, headers: Mapping[str, str]) -> str | None:
    field_name = message.get("x-eventwire-key")
    if isinstance(field_name, str) and isinstance(payload, Mapping) and field_name in payload:
        return str(payload[field_name])
    for prefix in _CE_PREFIXES:
        if f"{prefix}subject" in headers:
            return str(headers[f"{prefix}subject"])
    return None


def _examples(
    document: Mapping[str, Any], sent: OperationMessage, validator: ContractValidator
) -> list[MockMessage]:
    out: list[MockMessage] = []
    for index, example in enumerate(sent.message.get("examples") or ()):
        if not isinstance(example, Mapping) or "payload" not in example:
            continue
        payload = example["payload"]
        problems = validator.errors(sent.name, json.dumps(payload).encode())
        if problems:
            raise ContractError(
                f"{sent.pointer}/examples/{index}: the example of {sent.name} does not "
                f"validate against its own schema: {problems[0]}"
            )
        raw_headers = example.get("headers") or {}
        headers = {str(k): str(v) for k, v in raw_headers.items()}
        source = next(
            (headers[f"{p}source"] for p in _CE_PREFIXES if f"{p}source" in headers), None
        )
        out.append(MockMessage(sent.channel, sent.name, payload, headers, source))
    if out:
        return out
    schema = sent.message.get("payload")
    if schema is None:
        return [MockMessage(sent.channel, sent.name, None, {}, None)]
    if isinstance(schema, Mapping) and "$ref" in schema:
        schema = resolve(document, schema["$ref"])
    payload = build_example(
        schema, document, lambda p: not validator.errors(sent.name, json.dumps(p).encode())
    )
    if payload is None:
        raise ContractError(
            f"{sent.pointer}: {sent.name} has no example and none could be built from its "
            "payload schema; add one under examples"
        )
    return [MockMessage(sent.channel, sent.name, payload, {}, None)]


def _generated(
    document: Mapping[str, Any], sent: OperationMessage, count: int
) -> list[MockMessage]:
    """`count` distinct valid messages of `sent` that are not the document's examples."""
    from eventwire.contracts._sample import sample
    from eventwire.testing.contract import valid_messages

    strategy = valid_messages(document, sent.name, channel=sent.channel)
    out: list[MockMessage] = []
    seen: set[str] = set()
    for message in sample(strategy.filter(lambda m: m.example is None), count * 3):
        text = json.dumps(message.payload, sort_keys=True)
        if text in seen:
            continue
        seen.add(text)
        headers = {str(k): str(v) for k, v in message.headers.items()}
        out.append(MockMessage(sent.channel, sent.name, message.payload, headers, None))
        if len(out) == count:
            break
    return out


def plan(
    document: Mapping[str, Any],
    *,
    count: int | None = None,
    generated: bool = False,
    source: str = "<contract>",
) -> list[MockMessage]:
    """The messages to publish: every example once, then (`generated`) valid generated ones
    (`GENERATED_PER_MESSAGE` per message, or as many as `count` needs), cut at `count`,
    cycling through them when `count` asks for more."""
    validator = ContractValidator(document, source)
    sent = sent_messages(document)
    if not sent:
        raise ContractError(f"{source}: the contract has no send operation; nothing to mock")
    examples = [m for s in sent for m in _examples(document, s, validator)]
    messages = list(examples)
    if generated:
        wanted = count - len(examples) if count is not None else GENERATED_PER_MESSAGE * len(sent)
        per_message = -(-max(wanted, 0) // len(sent))
        batches = [_generated(document, s, per_message) for s in sent]
        extra = [m for batch in itertools.zip_longest(*batches) for m in batch if m is not None]
        messages += extra[: max(wanted, 0)]
    if count is not None:
        messages = list(itertools.islice(itertools.cycle(messages), count))
    return messages


def _wire(
    document: Mapping[str, Any],
    sent: Mapping[tuple[str, str], OperationMessage],
    mock: MockMessage,
    binding: str,
) -> WireMessage:
    message = sent[(mock.channel, mock.name)].message
    headers = {k: v for k, v in mock.headers.items() if not k.startswith(_CE_PREFIXES)}
    headers.pop("content-type", None)
    key = _key_of(message, mock.payload, mock.headers)
    version = message.get("x-eventwire-version")
    info = document.get("info") or {}
    envelope = Envelope.new(
        type=mock.name,
        source=mock.source or str(info.get("title") or "eventwire-mock"),
        subject=key,
        dataversion=str(version) if version is not None else None,
        headers=headers,
    )
    body = b"" if mock.payload is None else json.dumps(mock.payload).encode()
    return WireMessage(body=body, headers=to_headers(envelope, binding), key=key)


async def run_mock(
    document: Mapping[str, Any],
    url: str,
    *,
    source: str = "<contract>",
    rate: float | None = None,
    count: int | None = None,
    generated: bool = False,
    on_publish: Callable[[MockMessage, int, int], None] | None = None,
    options: Mapping[str, Any] | None = None,
) -> MockReport:
    """Publish the planned messages to `url`, at most `rate` per second.

    `on_publish` gets each message with its number and the total after it is stored.
    """
    messages = plan(document, count=count, generated=generated, source=source)
    by_key = {(s.channel, s.name): s for s in sent_messages(document)}
    backend = create_backend(url, options)
    report = MockReport(redact_url(url))
    started = time.monotonic()
    await backend.connect()
    try:
        for number, mock in enumerate(messages, 1):
            if rate:
                delay = started + (number - 1) / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            await backend.publish(mock.channel, [_wire(document, by_key, mock, backend.binding)])
            report.published[(mock.channel, mock.name)] += 1
            if on_publish is not None:
                on_publish(mock, number, len(messages))
    finally:
        await backend.close()
    report.seconds = time.monotonic() - started
    return report
