"""can-i-deploy: does every consumer still accept everything the provider may send?

A consumer's contract (its generated AsyncAPI document) is its expectation: each message of
its ``receive`` operations, on a channel address. For each one the provider's ``send``
operation for the same channel and message name is found, and the provider's payload schema
must be *included* in the consumer's (every payload the provider may send is valid for the
consumer): the check is `schema_inclusion`, the one ``contracts diff`` uses. Each reason
comes with the JSON path it is about and, where one can be found, a concrete counter-example
(a payload valid for the provider that the consumer rejects).

A consumer expecting a message on a channel of the provider's contract that the provider
does not send is reported too; expectations on channels the provider's contract does not
have are another provider's business (listed, never a break).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from eventwire.contracts._conform import contract_channels, declares_key
from eventwire.contracts._diff import _payload, schema_inclusion
from eventwire.contracts._load import ContractValidator
from eventwire.contracts._operations import (
    OperationMessage,
    message_examples,
    operation_messages,
)

__all__ = ["Expectation", "Finding", "can_i_deploy", "generated_counter_example"]

Status = Literal["ok", "breaks", "not-sent", "other-provider"]


@dataclass(frozen=True)
class Finding:
    """One reason a consumer would reject something the provider may send."""

    path: str
    reason: str
    counter_example: Any = None
    has_counter_example: bool = False


@dataclass
class Expectation:
    """The verdict on one message one consumer receives."""

    consumer: str
    channel: str
    message: str
    status: Status
    findings: list[Finding] = field(default_factory=list)

    @property
    def breaks(self) -> bool:
        return self.status in ("breaks", "not-sent")


#: Finds a payload valid for the provider's message and rejected by `rejects`, or ``None``.
CounterExampleSearch = Callable[[Mapping[str, Any], OperationMessage, Callable[[Any], bool]], Any]


def _path(reason: str) -> str:
    head = reason.split(":", 1)[0].strip()
    return head if head.startswith("$") else "$"


def generated_counter_example(
    provider: Mapping[str, Any], offered: OperationMessage, rejects: Callable[[Any], bool]
) -> Any:
    """A payload of the provider's message that `rejects` holds for, from the contract cases
    of `eventwire.testing.contract`: first the deterministic ones (each enum member, boundary,
    optional field), then generated values, shrunk to a small one. ``None`` if none is found.
    A schema the generator cannot handle raises `UnsupportedSchemaError` (with its path)."""
    from eventwire.contracts._cases import coverage_messages, valid_messages
    from eventwire.contracts._sample import search

    for message in coverage_messages(provider, offered.name, channel=offered.channel):
        if rejects(message.payload):
            return message.payload
    strategy = valid_messages(provider, offered.name, channel=offered.channel)
    return search(strategy.map(lambda m: m.payload), rejects)


def can_i_deploy(
    provider: Mapping[str, Any],
    consumers: Sequence[tuple[str, Mapping[str, Any]]],
    *,
    provider_label: str = "provider",
    search: CounterExampleSearch | None = generated_counter_example,
) -> list[Expectation]:
    """The verdict on every message each consumer (``(label, document)``) receives.

    Counter-examples come from the provider's examples, then from `search` (default: values
    generated from the provider's schema; ``None``: examples only).
    """
    sent = {(m.channel, m.name): m for m in operation_messages(provider, "send")}
    provider_channels = {c.address for c in contract_channels(provider)} | {
        channel for channel, _ in sent
    }
    provider_validator = ContractValidator(provider, provider_label)
    out: list[Expectation] = []
    for label, consumer in consumers:
        consumer_validator = ContractValidator(consumer, label)
        for expected in operation_messages(consumer, "receive"):
            if expected.channel not in provider_channels:
                out.append(Expectation(label, expected.channel, expected.name, "other-provider"))
                continue
            offered = sent.get((expected.channel, expected.name))
            if offered is None:
                also = sorted(n for c, n in sent if c == expected.channel)
                out.append(
                    Expectation(
                        label,
                        expected.channel,
                        expected.name,
                        "not-sent",
                        [
                            Finding(
                                "$",
                                f"{provider_label} does not send {expected.name} on "
                                f"{expected.channel} (it sends: {', '.join(also) or 'nothing'})",
                            )
                        ],
                    )
                )
                continue
            reasons = [
                r.format(a=provider_label, b=label)
                for r in schema_inclusion(
                    _payload(provider, offered.message),
                    _payload(consumer, expected.message),
                    provider,
                    consumer,
                )
            ]
            findings = [
                Finding(
                    _path(r),
                    r,
                    *_counter_example(
                        provider,
                        offered,
                        provider_validator,
                        _rejects_at(
                            _path(r), expected.name, provider_validator, consumer_validator
                        ),
                        search,
                    ),
                )
                for r in reasons
            ]
            if declares_key(expected.message) and not declares_key(offered.message):
                findings.append(
                    Finding("$", f"{label} expects an ordering key, {provider_label} declares none")
                )
            status: Status = "breaks" if findings else "ok"
            out.append(Expectation(label, expected.channel, expected.name, status, findings))
    return out


def _rejects_at(
    path: str, name: str, provider: ContractValidator, consumer: ContractValidator
) -> Callable[[Any], bool]:
    """A payload the provider may send and the consumer rejects at `path` (or below it)."""

    def rejects(payload: Any) -> bool:
        body = json.dumps(payload).encode()
        if provider.errors(name, body):
            return False
        for error in consumer.errors(name, body):
            where = _path(error)
            if where == path or where.startswith((path + ".", path + "[")):
                return True
        return False

    return rejects


def _counter_example(
    provider: Mapping[str, Any],
    offered: OperationMessage,
    validator: ContractValidator,
    rejects: Callable[[Any], bool],
    search: CounterExampleSearch | None,
) -> tuple[Any, bool]:
    """(a payload `rejects`, found): the provider's examples first, then `search`."""
    for payload, _ in message_examples(provider, offered, validator):
        if rejects(payload):
            return payload, True
    if search is not None:
        found = search(provider, offered, rejects)
        if found is not None:
            return found, True
    return None, False
