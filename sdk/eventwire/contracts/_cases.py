"""Contract cases: examples, coverage targets, generated and broken messages per message."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from eventwire.errors import ConfigurationError, ContractError

try:
    from hypothesis import strategies as st
    from jsonschema import Draft7Validator

    from eventwire.contracts import _strategies as _gen
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ConfigurationError(
        f"eventwire.testing.contract needs Hypothesis and hypothesis-jsonschema ({exc.name} is "
        "missing); install them with: pip install 'eventwire[testing]'"
    ) from None

from eventwire.bindings import BINDINGS
from eventwire.contracts._schema import (
    MessageModel,
    UnsupportedSchemaError,
    as_document,
    message_model,
)
from eventwire.envelope import format_time

__all__ = [
    "ContractMessage",
    "Document",
    "InvalidMessage",
    "UnsupportedSchemaError",
    "coverage_messages",
    "example_messages",
    "invalid_cases",
    "invalid_messages",
    "valid_messages",
]

Document = str | os.PathLike[str] | Mapping[str, Any]
#: The source written into the headers of generated messages.
SOURCE = "eventwire-contract-test"
_EPOCH = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
#: The CloudEvents header prefix of each binding (Kafka's first: the default).
_PREFIXES = tuple(BINDINGS.values())


@dataclass(frozen=True)
class ContractMessage:
    """One message built from a contract: what to publish, where, with which headers."""

    name: str
    """The message's name in the document (the event type)."""
    channel: str
    """The address of its channel."""
    payload: Any
    """The payload (a JSON value, usually an object)."""
    headers: dict[str, Any]
    """CloudEvents and other headers, named as the document names them."""
    key: str | None
    """The ordering key, when the message has one."""
    example: str | None = None
    """The name of the document's example it came from, if it did."""
    covers: str | None = None
    """What this case was built to exercise (``$.currency = "GBP"``), for coverage cases."""


@dataclass(frozen=True)
class InvalidMessage:
    """A message that breaks its contract in one place, said by `violation`."""

    name: str
    channel: str
    payload: Any
    headers: dict[str, Any]
    key: str | None
    violation: str
    """What is wrong, with its JSON path: ``$.lines[0].quantity: string instead of integer``."""
    path: str = field(default="$")
    """The JSON path of the broken value."""


class _Cases:
    """The cases of one message on one channel (built once, reused by every strategy)."""

    def __init__(self, document: Document, message: str, channel: str | None) -> None:
        self.document = as_document(document)
        self.model: MessageModel = message_model(self.document, message, channel)
        self.validator = Draft7Validator(self.model.payload)
        self.prefix = _header_prefix(self.model.headers)
        extra = _extra_headers(self.model.headers, self.prefix, self.model.correlation_header)
        self.extra_required, self.extra_optional = extra

    # -- headers and keys ----------------------------------------------------------------

    def key_of(self, payload: Any, headers: Mapping[str, Any]) -> str | None:
        field_name = self.model.key_field
        if field_name is not None and isinstance(payload, Mapping):
            value = payload.get(field_name)
            if value is not None:
                return value if isinstance(value, str) else json.dumps(value)
        if self.model.has_key:
            subject = headers.get(self.prefix + "subject")
            return str(subject) if subject is not None else None
        return None

    def headers(
        self, event_id: str, correlation: str, time: datetime, extra: Mapping[str, Any]
    ) -> dict[str, Any]:
        p = self.prefix
        out: dict[str, Any] = {
            p + "id": event_id,
            p + "type": self.model.name,
            p + "source": SOURCE,
            p + "specversion": "1.0",
            p + "time": format_time(time),
            "content-type": self.model.content_type,
        }
        if self.model.version is not None:
            out[p + "dataversion"] = self.model.version
        if self.model.correlation_header is not None:
            out[self.model.correlation_header] = correlation
        out.update(extra)
        return out

    def build(
        self,
        payload: Any,
        headers: dict[str, Any],
        *,
        example: str | None = None,
        covers: str | None = None,
    ) -> ContractMessage:
        key = self.key_of(payload, headers)
        if key is not None and self.model.has_key and self.prefix + "subject" not in headers:
            headers = {**headers, self.prefix + "subject": key}
        return ContractMessage(
            self.model.name, self.model.channel, payload, headers, key, example, covers
        )

    def fixed_headers(self, seed: str) -> dict[str, Any]:
        ident = str(uuid.uuid5(uuid.NAMESPACE_URL, f"eventwire:{self.model.name}:{seed}"))
        extra = {name: _gen.minimal(schema) for name, schema in self.extra_required.items()}
        return self.headers(ident, ident, _EPOCH, extra)

    def headers_strategy(self) -> st.SearchStrategy[dict[str, Any]]:
        extra = st.fixed_dictionaries(
            {n: _gen.payload_strategy(s) for n, s in self.extra_required.items()},
            optional={n: _gen.payload_strategy(s) for n, s in self.extra_optional.items()},
        )
        return st.builds(
            self.headers,
            st.uuids().map(str),
            st.uuids().map(str),
            st.datetimes(
                min_value=datetime(2000, 1, 1),
                max_value=datetime(2100, 1, 1),
                timezones=st.just(UTC),
            ),
            extra,
        )

    # -- the cases -----------------------------------------------------------------------

    def examples(self) -> list[ContractMessage]:
        out = []
        for name, payload, headers in self.model.examples:
            problems = list(self.validator.iter_errors(payload))
            if problems:
                raise ContractError(
                    f"example {name!r} of message {self.model.name!r} ({self.model.pointer}) "
                    f"breaks its own payload schema at {problems[0].json_path}: "
                    f"{problems[0].message}; fix the example or the schema"
                )
            given = dict(headers) if headers else self.fixed_headers(f"example:{name}")
            out.append(self.build(payload, given, example=name))
        return out

    def coverage(self) -> list[ContractMessage]:
        return [
            self.build(value, self.fixed_headers(f"covers:{label}"), covers=label)
            for label, value in _gen.usable_variants(self.model)
        ]

    def generated(self) -> st.SearchStrategy[ContractMessage]:
        return st.builds(
            self.build, _gen.payload_strategy(self.model.payload), self.headers_strategy()
        )

    def invalid(self, violation: _gen.Invalid, payload: Any, headers: dict[str, Any]) -> Any:
        broken = violation.apply(payload)
        if self.validator.is_valid(broken):
            return None
        return InvalidMessage(
            self.model.name,
            self.model.channel,
            broken,
            headers,
            self.key_of(broken, headers),
            violation.label,
            _gen.format_path(violation.path),
        )


def _header_prefix(schema: Mapping[str, Any] | None) -> str:
    names = set((schema or {}).get("properties") or {})
    for prefix in _PREFIXES:
        if prefix + "id" in names or prefix + "type" in names:
            return prefix
    return "ce_"


def _extra_headers(
    schema: Mapping[str, Any] | None, prefix: str, correlation: str | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The declared headers that are not the envelope's: (required, optional) schemas."""
    if not schema:
        return {}, {}
    required = set(schema.get("required") or ())
    mine: dict[str, Any] = {}
    optional: dict[str, Any] = {}
    for name, sub in (schema.get("properties") or {}).items():
        if name.startswith(prefix) or name in ("content-type", correlation):
            continue
        (mine if name in required else optional)[name] = sub
    return mine, optional


def example_messages(
    document: Document, message: str, *, channel: str | None = None
) -> list[ContractMessage]:
    """The document's examples of `message`, in document order."""
    return _Cases(document, message, channel).examples()


def coverage_messages(
    document: Document, message: str, *, channel: str | None = None
) -> list[ContractMessage]:
    """The examples, then one deterministic case per coverage target (``covers`` says which)."""
    cases = _Cases(document, message, channel)
    return [*cases.examples(), *cases.coverage()]


def valid_messages(
    document: Document, message: str, *, channel: str | None = None
) -> st.SearchStrategy[ContractMessage]:
    """Messages the contract accepts: examples, coverage cases, then generated payloads."""
    cases = _Cases(document, message, channel)
    fixed = [*cases.examples(), *cases.coverage()]
    generated = cases.generated()
    return st.one_of(st.sampled_from(fixed), generated) if fixed else generated


def invalid_cases(
    document: Document, message: str, *, channel: str | None = None
) -> list[InvalidMessage]:
    """One invalid message per violation, built on the simplest valid payload."""
    cases = _Cases(document, message, channel)
    out = []
    for violation in _gen.violations(cases.model.payload):
        payload = _gen.minimal(violation.schema)
        case = cases.invalid(violation, payload, cases.fixed_headers(violation.label))
        if case is not None:
            out.append(case)
    return out


def invalid_messages(
    document: Document, message: str, *, channel: str | None = None
) -> st.SearchStrategy[InvalidMessage]:
    """Messages that break the contract in one place each (``violation`` says where)."""
    cases = _Cases(document, message, channel)
    found = _gen.violations(cases.model.payload)
    if not found:
        raise UnsupportedSchemaError(
            f"message {cases.model.name!r}: its payload schema accepts every value, so no "
            "invalid message can be built"
        )

    def broken(violation: _gen.Invalid) -> st.SearchStrategy[Any]:
        return st.builds(
            lambda payload, headers: cases.invalid(violation, payload, headers),
            _gen.payload_strategy(violation.schema),
            cases.headers_strategy(),
        ).filter(lambda case: case is not None)

    return st.one_of([broken(violation) for violation in found])
