"""Encoding many events at once for ``EventBus.publish_many``.

The same checks and the same wire messages as one `EventBus.publish` per event, with the work
that is equal for every event of a call done once: the clock is read once (each event's
``time`` is that reading plus its index in microseconds, so times still follow publish order,
as they do for single publishes; the reading's text is made once, to the second), and the
CloudEvents headers of each message type are built once as a template that each event
copies, adding its own ``id``, ``time`` and ``subject``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

from eventwire.backend import WireMessage
from eventwire.bindings import BINDINGS, to_headers
from eventwire.codec import JSON, PayloadValidator, encode_body
from eventwire.envelope import SPEC_VERSION, Envelope, assemble, format_time, new_id
from eventwire.errors import EventValidationError, MessageTooLargeError
from eventwire.events import Message, MessageSpec

__all__ = ["Encoded", "encode_many"]

_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclasses.dataclass(slots=True)
class Encoded:
    """What `encode_many` built: the wire messages per channel, in order, and the envelopes
    (one per event, in the order of the events)."""

    batches: dict[str, list[WireMessage]]
    envelopes: list[Envelope]
    models: dict[str, type[Message]]


@dataclasses.dataclass(slots=True)
class _Kind:
    spec: MessageSpec
    channel: str
    version: str
    headers: dict[str, str]


def encode_many(
    events: Iterable[Message],
    *,
    source: str,
    binding: str,
    validator: PayloadValidator | None,
    max_bytes: int | None,
    backend_name: str,
    correlationid: str | None,
    causationid: str | None,
    user: Mapping[str, str],
) -> Encoded:
    """Encode `events` (``EventValidationError`` / ``MessageTooLargeError``: none is sent)."""
    now = datetime.now(UTC)
    stem = now.replace(microsecond=0, tzinfo=None).isoformat()  # format_time, to the second
    prefix = BINDINGS[binding]
    id_name, subject_name, time_name = prefix + "id", prefix + "subject", prefix + "time"
    headers = MappingProxyType(dict(user)) if user else _EMPTY
    kinds: dict[type[Message], _Kind] = {}
    out = Encoded({}, [], {})
    for index, event in enumerate(events):
        time = now + timedelta(microseconds=index)
        model = type(event)
        kind = kinds.get(model)
        if kind is None:
            kind = kinds[model] = _kind(
                event, source, now, correlationid, causationid, headers, binding
            )
            out.models.setdefault(kind.spec.type, model)
        spec = kind.spec
        subject = event.message_key()
        envelope = assemble(
            new_id(),
            spec.type,
            source,
            time,
            SPEC_VERSION,
            JSON,
            subject,
            correlationid,
            causationid,
            kind.version,
            headers,
        )
        body = encode_body(event, spec.type, validator)
        if max_bytes is not None and len(body) > max_bytes:
            raise MessageTooLargeError(
                f"{spec.type} encodes to {len(body)} bytes, over the {backend_name} "
                f"backend's limit of {max_bytes} bytes; nothing was sent. Send a reference to "
                "the data instead (a 'thin' event) or raise the broker's limit"
            )
        wire_headers = kind.headers.copy()
        wire_headers[id_name] = envelope.id
        micros = now.microsecond + index
        wire_headers[time_name] = (
            f"{stem}.{micros:06d}Z" if 0 < micros < 1_000_000 else format_time(time)
        )
        if subject is not None:
            wire_headers[subject_name] = subject
        batch = out.batches.get(kind.channel)
        if batch is None:
            batch = out.batches[kind.channel] = []
        batch.append(WireMessage(body, wire_headers, subject))
        out.envelopes.append(envelope)
    return out


def _kind(
    event: object,
    source: str,
    now: datetime,
    correlationid: str | None,
    causationid: str | None,
    headers: Mapping[str, str],
    binding: str,
) -> _Kind:
    if not isinstance(event, Message):
        raise EventValidationError(
            f"publish() takes an eventwire Event, got {type(event).__name__}"
        )
    spec = type(event).__eventwire__
    if spec.kind == "command":
        raise EventValidationError(
            f"{spec.type} is a Command; use bus.send() so it reaches its one handling group"
        )
    channel = spec.require_channel()
    version = str(spec.version)
    template = Envelope(
        id="",
        type=spec.type,
        source=source,
        time=now,
        correlationid=correlationid,
        causationid=causationid,
        dataversion=version,
        headers=headers,
    )
    return _Kind(spec, channel, version, to_headers(template, binding))
