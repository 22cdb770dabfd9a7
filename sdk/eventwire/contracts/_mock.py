"""A mock producer: publish the messages a contract *sends*, as real eventwire envelopes.

A consuming team can build against a producer that does not exist yet: every message of
every ``send`` operation is published on its channel, first its examples (a message without
one gets a built example), then, when asked, generated valid messages (the contract cases of
`eventwire.testing.contract`: a case per enum member, boundary and optional field, then
values generated from the schema). Each is a CloudEvents envelope of the backend's binding
with a fresh id, the ordering key taken from the payload field the message names
(``x-eventwire-key``) and the example's own user headers.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from eventwire.backend import WireMessage
from eventwire.bindings import READ_PREFIXES, to_headers
from eventwire.contracts._load import ContractValidator
from eventwire.contracts._operations import OperationMessage, message_examples, operation_messages
from eventwire.envelope import Envelope
from eventwire.errors import ContractError
from eventwire.plugins import create_backend
from eventwire.urls import redact_url

__all__ = ["MockMessage", "MockReport", "plan", "run_mock", "sent_messages"]

#: Values generated from the schema per sent message, after its coverage cases, with
#: ``generated`` and no ``count``.
GENERATED_PER_MESSAGE = 3

_CE_PREFIXES = tuple(sorted({p for prefixes in READ_PREFIXES.values() for p in prefixes}))


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
    for payload, headers in message_examples(document, sent, validator):
        source = next(
            (headers[f"{p}source"] for p in _CE_PREFIXES if f"{p}source" in headers), None
        )
        out.append(MockMessage(sent.channel, sent.name, payload, headers, source))
    return out


def _generated(
    document: Mapping[str, Any], sent: OperationMessage, count: int | None
) -> list[MockMessage]:
    """Distinct valid messages of `sent` besides the document's examples: its coverage cases
    (each enum member, boundary, optional field, ``anyOf`` branch), then values generated from
    the schema — `count` in all, or every coverage case and `GENERATED_PER_MESSAGE` more."""
    from eventwire.contracts._cases import coverage_messages, valid_messages
    from eventwire.contracts._sample import sample

    out: list[MockMessage] = []
    seen: set[str] = set()

    def add(candidates: list[Any]) -> None:
        for message in candidates:
            text = json.dumps(message.payload, sort_keys=True)
            if message.example is not None or text in seen:
                continue
            seen.add(text)
            headers = {str(k): str(v) for k, v in message.headers.items()}
            out.append(MockMessage(sent.channel, sent.name, message.payload, headers, None))

    add(coverage_messages(document, sent.name, channel=sent.channel))
    if count is None:
        count = len(out) + GENERATED_PER_MESSAGE
    if len(out) < count:
        strategy = valid_messages(document, sent.name, channel=sent.channel)
        add(sample(strategy, 2 * (count - len(out)) + 5))
    return out[:count]


def plan(
    document: Mapping[str, Any],
    *,
    count: int | None = None,
    generated: bool = False,
    source: str = "<contract>",
) -> list[MockMessage]:
    """The messages to publish: every example once, then (`generated`) each message's
    coverage cases and `GENERATED_PER_MESSAGE` generated values (or as many as `count`
    needs), cut at `count`, cycling through them when `count` asks for more."""
    validator = ContractValidator(document, source)
    sent = sent_messages(document)
    if not sent:
        raise ContractError(f"{source}: the contract has no send operation; nothing to mock")
    examples = [m for s in sent for m in _examples(document, s, validator)]
    messages = list(examples)
    if generated:
        per_message = None if count is None else -(-max(count - len(examples), 0) // len(sent))
        batches = [_generated(document, s, per_message) for s in sent]
        messages += [m for batch in itertools.zip_longest(*batches) for m in batch if m is not None]
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
    messages: Sequence[MockMessage] | None = None,
    on_publish: Callable[[MockMessage, int, int], None] | None = None,
    options: Mapping[str, Any] | None = None,
) -> MockReport:
    """Publish the planned messages (or `messages`, from `plan`) to `url`, at most `rate`
    per second. `on_publish` gets each message with its number and the total once stored.
    """
    if messages is None:
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
