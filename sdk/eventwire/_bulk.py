"""Encoding events for ``EventBus.publish_many`` and ``EventBus.publish``.

The same checks and the same wire messages as one `EventBus.publish` per event, with the work
that is equal for every event of a call done once: the clock is read once (each event's
``time`` is that reading plus its index in microseconds, so times still follow publish order,
as they do for single publishes; the reading's text is made once, to the second), and the
CloudEvents headers of each message type are built once as a template that each event
copies, adding its own ``id``, ``time`` and ``subject``.

``EventBus.publish`` encodes its one event from the same templates. Each bus has an
`Encoder`, which keeps the templates of the usual publish (no correlation or causation id,
no user headers) from one call to the next; a publish with ids, its own headers or header
hooks goes through `Encoder.custom`, with the same checks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

from eventwire.backend import Backend, WireMessage
from eventwire.bindings import BINDINGS, to_headers
from eventwire.codec import JSON, PayloadValidator, encode, encode_body
from eventwire.envelope import SPEC_VERSION, Envelope, assemble, format_time, new_id
from eventwire.errors import EventValidationError, MessageTooLargeError
from eventwire.events import Message, MessageSpec

__all__ = ["Encoded", "Encoder"]

_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclasses.dataclass(slots=True)
class Encoded:
    """What `Encoder.many` built: the wire messages per channel, in order, and the envelopes
    (one per event, in the order of the events)."""

    batches: dict[str, list[WireMessage]]
    envelopes: list[Envelope]
    models: dict[str, type[Message]]


@dataclasses.dataclass(slots=True)
class _Kind:
    """What the events of one message class share in a call (or, kept by an `Encoder`, in
    every usual publish): the CloudEvents headers (`template`) and the names of the three
    each event adds."""

    spec: MessageSpec
    channel: str
    version: str
    template: dict[str, str]
    id_name: str
    time_name: str
    subject_name: str


#: Templates per message class.
Kinds = dict[type[Message], _Kind]


@dataclasses.dataclass(slots=True, frozen=True)
class _Call:
    """What one publish call sets for all its events."""

    source: str
    binding: str
    validator: PayloadValidator | None
    max_bytes: int | None
    backend_name: str
    correlationid: str | None = None
    causationid: str | None = None
    headers: Mapping[str, str] = dataclasses.field(default_factory=lambda: _EMPTY)
    allow_command: bool = False


class Encoder:
    """Encodes the events of one bus for one backend (its header binding, its size limit)
    from one source, keeping the templates of the usual publish from one call to the next.
    A bus makes a new one when its source or its backend changes."""

    def __init__(self, source: str, backend: Backend, validator: PayloadValidator | None) -> None:
        self.source = source
        self.backend = backend
        self._usual = _Call(
            source,
            backend.binding,
            validator,
            backend.capabilities.max_message_bytes,
            backend.name,
        )
        self._command = dataclasses.replace(self._usual, allow_command=True)
        self._kinds: Kinds = {}
        self._command_kinds: Kinds = {}  # EventBus.send's

    def one(self, event: Message, allow_command: bool = False) -> tuple[str, WireMessage, Envelope]:
        """`event` without correlation or causation id or user headers: its channel, wire
        message and envelope (``EventValidationError`` / ``MessageTooLargeError``)."""
        call, kind = self._kind(event, allow_command)
        now = datetime.now(UTC)
        wire, envelope = _encode(event, kind, now, format_time(now), call)
        return kind.channel, wire, envelope

    def custom(
        self,
        event: Message,
        allow_command: bool,
        correlationid: str | None,
        causationid: str | None,
        user: dict[str, str],
        enrich: Callable[..., object] | None,
    ) -> tuple[str, WireMessage, Envelope]:
        """`event` with correlation or causation ids or `user` headers (checked by
        `bindings.user_headers`), and with `enrich` (the ``eventwire_enrich_headers`` hooks)
        if any: they see the envelope and may add to `user` before the headers are written."""
        call, kind = self._kind(event, allow_command)
        envelope = Envelope.new(
            type=kind.spec.type,
            source=call.source,
            subject=event.message_key(),
            correlationid=correlationid,
            causationid=causationid,
            dataversion=kind.version,
            headers=user,
        )
        if enrich is not None:
            enrich(event=event, envelope=envelope, headers=user)
            envelope = dataclasses.replace(envelope, headers=user)
        wire = encode(event, envelope, call.binding, call.validator)
        _check_size(kind.spec, len(wire.body), call)
        return kind.channel, wire, envelope

    def _kind(self, event: Message, allow_command: bool) -> tuple[_Call, _Kind]:
        """The call settings and the kept template for `event` (``publish`` or ``send``)."""
        call, kinds = (
            (self._command, self._command_kinds) if allow_command else (self._usual, self._kinds)
        )
        return call, kinds.get(type(event)) or _kind_of(event, kinds, call)

    def many(
        self,
        events: Iterable[Message],
        correlationid: str | None = None,
        causationid: str | None = None,
        user: Mapping[str, str] | None = None,
    ) -> Encoded:
        """Encode `events` (``EventValidationError`` / ``MessageTooLargeError``: none is
        sent)."""
        call, kinds = self._usual, self._kinds
        if correlationid is not None or causationid is not None or user:
            call = dataclasses.replace(
                call,
                correlationid=correlationid,
                causationid=causationid,
                headers=MappingProxyType(dict(user)) if user else _EMPTY,
            )
            kinds = {}
        now = datetime.now(UTC)
        first = format_time(now)
        stem = first[:19]  # to the second
        out = Encoded({}, [], {})
        envelopes = out.envelopes
        last: type[Message] | None = None
        for index, event in enumerate(events):
            if type(event) is not last:
                last = type(event)
                kind = kinds.get(last) or _kind_of(event, kinds, call)
                out.models.setdefault(kind.spec.type, last)
                batch = out.batches.setdefault(kind.channel, [])
            if index:
                micros = now.microsecond + index
                time = now + timedelta(microseconds=index)
                text = f"{stem}.{micros:06d}Z" if micros < 1_000_000 else format_time(time)
            else:
                time, text = now, first
            wire, envelope = _encode(event, kind, time, text, call)
            batch.append(wire)
            envelopes.append(envelope)
        return out


def _encode(
    event: Message, kind: _Kind, time: datetime, text: str, call: _Call
) -> tuple[WireMessage, Envelope]:
    """`event` as a wire message and its envelope, at `time` (`text`: the same in RFC 3339)."""
    spec = kind.spec
    subject = event.message_key()
    envelope = assemble(
        new_id(),
        spec.type,
        call.source,
        time,
        SPEC_VERSION,
        JSON,
        subject,
        call.correlationid,
        call.causationid,
        kind.version,
        call.headers,
    )
    body = encode_body(event, spec.type, call.validator)
    if call.max_bytes is not None and len(body) > call.max_bytes:  # no call per fitting event
        _check_size(spec, len(body), call)
    headers = kind.template.copy()
    headers[kind.id_name] = envelope.id
    headers[kind.time_name] = text
    if subject is not None:
        headers[kind.subject_name] = subject
    return WireMessage(body, headers, subject), envelope


def _check_size(spec: MessageSpec, size: int, call: _Call) -> None:
    """`MessageTooLargeError` if a body of `size` bytes is over the backend's limit."""
    if call.max_bytes is not None and size > call.max_bytes:
        raise MessageTooLargeError(
            f"{spec.type} encodes to {size} bytes, over the {call.backend_name} backend's "
            f"limit of {call.max_bytes} bytes; nothing was sent. Send a reference to the data "
            "instead (a 'thin' event) or raise the broker's limit"
        )


def _kind_of(event: object, kinds: Kinds, call: _Call) -> _Kind:
    """The template of `event`'s class, made for `call` and put in `kinds` (which holds
    only the templates made for calls like it); ``EventValidationError`` for what is not a
    message, or a command outside ``send``."""
    if not isinstance(event, Message):
        raise EventValidationError(
            f"publish() takes an eventwire Event, got {type(event).__name__}"
        )
    spec = type(event).__eventwire__
    if spec.kind == "command" and not call.allow_command:
        raise EventValidationError(
            f"{spec.type} is a Command; use bus.send() so it reaches its one handling group"
        )
    version = str(spec.version)
    template = Envelope(
        id="",
        type=spec.type,
        source=call.source,
        time=datetime.now(UTC),
        correlationid=call.correlationid,
        causationid=call.causationid,
        dataversion=version,
        headers=call.headers,
    )
    prefix = BINDINGS[call.binding]
    kind = kinds[type(event)] = _Kind(
        spec,
        spec.require_channel(),
        version,
        to_headers(template, call.binding),
        prefix + "id",
        prefix + "time",
        prefix + "subject",
    )
    return kind
