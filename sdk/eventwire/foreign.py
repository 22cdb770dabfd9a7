"""Messages from producers that are not eventwire: which ones a subscription accepts, and the
envelope the SDK writes for them.

An eventwire subscriber reads CloudEvents in *binary* mode (the envelope in headers). Producers
that already exist publish other things; a subscription declares which of them it accepts,
and nothing else is ever guessed::

    @bus.subscribe(OrderPlaced, accept=[CloudEventsJSON(), PlainJSON(source="legacy-shop")])

- `CloudEventsJSON`: CloudEvents in *structured* mode, the whole event as one JSON document
  with content type ``application/cloudevents+json`` (the `cloudevents` SDK's default). It
  carries its own id, type, source and time; ``correlationid``, ``causationid`` and
  ``dataversion`` extensions are read as eventwire's.
- `PlainJSON`: a plain JSON payload, as FastStream apps, raw clients and generated clients
  send. Its type comes from a payload field (``type_field``), from a header
  (``type_header``), or, with neither, it is the only message type the subscription's
  group handles. The SDK writes the envelope: the id is the producer's message id
  (FastStream's ``message_id``, AMQP's ``message_id`` property, NATS ``Nats-Msg-Id``) or
  the broker's position of the message (Kafka topic/partition/offset, Redis stream entry,
  NATS stream sequence; `eventwire.backend.Origin`), the same on every redelivery, so the
  idempotency store recognises it; the time is the broker's timestamp; the source is
  `PlainJSON.source`; a ``correlation_id`` (FastStream's header and AMQP property) becomes
  the correlation id; the message key is the subject.

A message with eventwire's envelope headers is always read as eventwire's (a broken one stays
``invalid``). A message that matches none of the accepted forms, or fails its model, is
dead-lettered at once with reason ``invalid`` and a description naming what was expected
and which field or attribute was wrong.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Literal, TypeAlias, get_args

from eventwire._extras import install_hint
from eventwire.backend import Inbound, Located, Origin, WireMessage
from eventwire.bindings import READ_PREFIXES
from eventwire.envelope import JSON, SPEC_VERSION, Envelope
from eventwire.errors import ConfigurationError, DecodeError
from eventwire.events import Message

__all__ = [
    "EXTENSION",
    "STRUCTURED",
    "Accept",
    "CloudEventsJSON",
    "ForeignReader",
    "IdSource",
    "PlainJSON",
    "accept_forms",
    "describe_forms",
    "forms_from_document",
]

#: The AsyncAPI extension that lists the accepted forms: on a receive operation (what a
#: group accepts, written by ``eventwire asyncapi generate``) and on a channel of a contract
#: (what every subscription of the channel accepts unless it passes ``accept=``).
EXTENSION = "x-eventwire-accept"
#: The content type of a CloudEvent in structured mode (JSON event format).
STRUCTURED = "application/cloudevents+json"
#: Where the id of a plain message may come from, tried in the order given.
IdSource: TypeAlias = Literal["message-id", "position", "correlation-id", "field"]
_ID_SOURCES = frozenset(get_args(IdSource))
#: Header names a producer's own message id travels in (FastStream reads ``message_id``).
_MESSAGE_ID_HEADERS = ("message_id", "message-id")
_CORRELATION_HEADERS = ("correlation_id", "correlation-id")
_CONTENT_TYPE = "content-type"
_NO_NAMES: Mapping[str, type[Message]] = MappingProxyType({})


@dataclasses.dataclass(frozen=True, slots=True)
class CloudEventsJSON:
    """Accept CloudEvents in structured content mode (``application/cloudevents+json``).

    Read with the `cloudevents` SDK's JSON event format (``pip install
    'eventwire[cloudevents]'``). A missing or invalid required attribute (``id``,
    ``source``, ``type``, ``specversion`` 1.0) makes the message ``invalid``, naming it.
    An event whose ``type`` no handler of the group takes is acked and skipped, like an
    eventwire event of another type on the channel.
    """

    def __post_init__(self) -> None:
        try:
            import cloudevents.core.formats.json  # noqa: F401
        except ModuleNotFoundError as exc:
            raise ConfigurationError(install_hint(exc, "CloudEventsJSON()")) from None


@dataclasses.dataclass(frozen=True, slots=True)
class PlainJSON:
    """Accept plain JSON payloads and write their envelope (see the module docstring).

    - ``type_field``: the payload field whose value names the message type, or
    - ``type_header``: the header whose value names it; with neither, the group must handle
      exactly one message type, and every plain message is that type.
    - ``names``: values of that field or header for message classes whose type differs
      (``{"order_placed": OrderPlaced}``); a class's own type (its class name unless it
      declares ``type=``) is always accepted. Any other value is ``invalid``.
    - ``source``: the CloudEvents source of these messages (default ``foreign:<channel>``).
    - ``ids``: where the event id comes from, in order: ``"message-id"`` (the producer's
      message id) and ``"position"`` (the broker's position of the message), by default;
      ``"correlation-id"`` only when asked for (a producer that sets a fresh one per message and no
      message id; replies share their request's); ``"field"``: the payload field ``id_field``
      (a business key, such as an order id for the one ``OrderPlaced`` of an order), for
      producers that send nothing else. A message with none of them is ``invalid``: without a
      stable id a redelivery would run twice.
    - ``id_field``: the payload field of ``"field"``.
    """

    type_field: str | None = None
    type_header: str | None = None
    names: Mapping[str, type[Message]] = dataclasses.field(default_factory=lambda: _NO_NAMES)
    source: str | None = None
    ids: tuple[IdSource, ...] = ("message-id", "position")
    id_field: str | None = None

    def __post_init__(self) -> None:
        if self.type_field is not None and self.type_header is not None:
            raise ConfigurationError(
                "PlainJSON takes type_field= or type_header=, not both: say where the type is"
            )
        for label, value in (("type_field", self.type_field), ("type_header", self.type_header)):
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigurationError(f"PlainJSON {label} must be a non-empty string")
        if self.source is not None and (not isinstance(self.source, str) or not self.source):
            raise ConfigurationError(
                f"PlainJSON source must be a non-empty string, not {self.source!r}"
            )
        ids = tuple(self.ids)
        unknown = [i for i in ids if i not in _ID_SOURCES]
        if not ids or unknown:
            raise ConfigurationError(
                f"PlainJSON ids must name one or more of {sorted(_ID_SOURCES)}, got {self.ids!r}"
            )
        object.__setattr__(self, "ids", ids)
        if ("field" in ids) != (self.id_field is not None):
            raise ConfigurationError(
                "PlainJSON takes id_field= together with 'field' in ids=, e.g. "
                "PlainJSON(ids=('message-id', 'field'), id_field='order_id')"
            )
        if self.id_field is not None and (not isinstance(self.id_field, str) or not self.id_field):
            raise ConfigurationError("PlainJSON id_field must be a non-empty string")
        for name, model in dict(self.names).items():
            if not isinstance(model, type) or not issubclass(model, Message):
                raise ConfigurationError(
                    f"PlainJSON names[{name!r}] must be an Event or Command class, got {model!r}"
                )
        if self.names and self.type_field is None and self.type_header is None:
            raise ConfigurationError(
                "PlainJSON names= needs type_field= or type_header= (where the name is read)"
            )
        object.__setattr__(self, "names", MappingProxyType(dict(self.names)))

    @property
    def typed(self) -> bool:
        """True when the type is read from the message (a field or a header)."""
        return self.type_field is not None or self.type_header is not None


Accept: TypeAlias = CloudEventsJSON | PlainJSON


def accept_forms(accept: Accept | Sequence[Accept] | None) -> tuple[Accept, ...]:
    """``subscribe(accept=...)`` as a tuple of forms, at most one of each kind."""
    if accept is None:
        return ()
    forms: tuple[object, ...] = (
        (accept,) if isinstance(accept, CloudEventsJSON | PlainJSON) else tuple(accept)
    )
    seen: set[type] = set()
    for form in forms:
        if not isinstance(form, CloudEventsJSON | PlainJSON):
            raise ConfigurationError(
                f"accept= takes CloudEventsJSON() and/or PlainJSON(...), got {form!r}"
            )
        if type(form) in seen:
            raise ConfigurationError(f"accept= lists {type(form).__name__} twice; give it once")
        seen.add(type(form))
    return forms  # type: ignore[return-value]


def describe_forms(forms: Sequence[Accept]) -> list[dict[str, Any]]:
    """`forms` as the value of the `EXTENSION` (what `forms_from_document` reads back)."""
    out: list[dict[str, Any]] = []
    for form in forms:
        if isinstance(form, CloudEventsJSON):
            out.append({"form": "cloudevents", "contentType": STRUCTURED})
            continue
        entry: dict[str, Any] = {"form": "plain-json", "contentType": "application/json"}
        if form.type_field is not None:
            entry["typeField"] = form.type_field
        if form.type_header is not None:
            entry["typeHeader"] = form.type_header
        if form.names:
            entry["names"] = {k: m.__eventwire__.type for k, m in sorted(form.names.items())}
        if form.source is not None:
            entry["source"] = form.source
        entry["ids"] = list(form.ids)
        if form.id_field is not None:
            entry["idField"] = form.id_field
        out.append(entry)
    return out


_PLAIN_KEYS = {
    "typeField": "type_field",
    "typeHeader": "type_header",
    "source": "source",
    "idField": "id_field",
}


def forms_from_document(
    value: object, models: Mapping[str, type[Message]], where: str
) -> tuple[Accept, ...]:
    """The forms an `EXTENSION` value declares; ``names`` resolve among `models` (the group's
    message types). `ConfigurationError` naming `where` and the entry when it is not one."""
    if not isinstance(value, list) or not value:
        raise ConfigurationError(f"{where}: {EXTENSION} must be a non-empty list of forms")
    forms: list[Accept] = []
    for index, entry in enumerate(value):
        at = f"{where}.{EXTENSION}[{index}]"
        kind = entry.get("form") if isinstance(entry, dict) else None
        if kind == "cloudevents":
            forms.append(CloudEventsJSON())
        elif kind == "plain-json":
            assert isinstance(entry, dict)
            options: dict[str, Any] = {
                name: entry[key] for key, name in _PLAIN_KEYS.items() if key in entry
            }
            if "ids" in entry:
                options["ids"] = tuple(entry["ids"])
            names: dict[str, type[Message]] = {}
            for name, type_name in dict(entry.get("names") or {}).items():
                if type_name not in models:
                    raise ConfigurationError(
                        f"{at}: names maps {name!r} to {type_name!r}, which this group does not "
                        f"handle (it handles {', '.join(sorted(models))})"
                    )
                names[name] = models[type_name]
            try:
                forms.append(PlainJSON(names=names, **options))
            except (ConfigurationError, TypeError) as exc:
                raise ConfigurationError(f"{at}: {exc}") from None
        else:
            raise ConfigurationError(
                f"{at}: form must be 'cloudevents' or 'plain-json', got {kind!r}"
            )
    return accept_forms(forms)


class ForeignReader:
    """Reads, for one consumer, the foreign messages its subscription accepts."""

    def __init__(
        self, forms: Sequence[Accept], models: Mapping[str, type[Message]], channel: str
    ) -> None:
        self.channel = channel
        self.structured = any(isinstance(f, CloudEventsJSON) for f in forms)
        self.plain = next((f for f in forms if isinstance(f, PlainJSON)), None)
        self._names: dict[str, type[Message]] = dict(models)
        if self.plain is not None:
            handled = set(models.values())
            for name, model in self.plain.names.items():
                if model not in handled:
                    raise ConfigurationError(
                        f"PlainJSON names[{name!r}] is {model.__name__}, which this group on "
                        f"{channel!r} does not handle; subscribe a handler for it"
                    )
                self._names[name] = model
            if not self.plain.typed and len(models) != 1:
                raise ConfigurationError(
                    f"PlainJSON without type_field= or type_header= needs a group that handles "
                    f"one message type; this group on {channel!r} handles "
                    f"{', '.join(sorted(models))}: say where the type is"
                )
        self._only = next(iter(models.values())) if len(models) == 1 else None
        self._source = (self.plain.source if self.plain else None) or f"foreign:{channel}"

    def read(self, inbound: Inbound, binding: str, error: DecodeError) -> tuple[Envelope, bytes]:
        """The envelope and payload of `inbound`, which lacks eventwire's headers (`error`
        says how); `DecodeError` naming what was expected when it is not accepted."""
        message = inbound.message
        prefixes = READ_PREFIXES[binding]
        if any(name.lower().startswith(p.lower()) for name in message.headers for p in prefixes):
            raise error  # binary-mode CloudEvents headers, but broken: not a foreign message
        origin = inbound.origin if isinstance(inbound, Located) else Origin()
        content_type = _content_type(message, origin)
        if content_type.startswith(STRUCTURED):
            if not self.structured:
                raise DecodeError(
                    f"message is a structured CloudEvent (content-type {content_type!r}) but "
                    "this subscription does not accept them; add CloudEventsJSON() to accept="
                )
            return _structured(message)
        if self.plain is None:
            got = f"content-type {content_type!r}" if content_type else "no content-type"
            raise DecodeError(
                f"expected eventwire's CloudEvents headers or a structured CloudEvent "
                f"(content-type {STRUCTURED}); got {got} without CloudEvents headers"
            )
        return self._plain(self.plain, message, origin)

    # -- plain JSON ----------------------------------------------------------------------

    def _plain(
        self, form: PlainJSON, message: WireMessage, origin: Origin
    ) -> tuple[Envelope, bytes]:
        model = self._model(form, message)
        event_id = _event_id(form, message, origin)
        correlation = _correlation(message, origin)
        headers = {k: v for k, v in message.headers.items() if k.lower() != _CONTENT_TYPE}
        spec = model.__eventwire__
        envelope = Envelope(
            id=event_id,
            type=spec.type,
            source=self._source,
            time=origin.timestamp or datetime.now(UTC),
            subject=message.key,
            correlationid=correlation,
            headers=headers,
        )
        return envelope, message.body

    def _model(self, form: PlainJSON, message: WireMessage) -> type[Message]:
        if form.type_header is not None:
            value = _header(message.headers, form.type_header)
            if value is None:
                raise DecodeError(
                    f"plain message has no {form.type_header!r} header, which names its type "
                    f"(expected one of {self._expected()})"
                )
            where = f"header {form.type_header!r}"
        elif form.type_field is not None:
            try:
                document = json.loads(message.body)
            except ValueError as exc:
                raise DecodeError(f"plain message body is not JSON: {exc}") from None
            if not isinstance(document, dict):
                raise DecodeError(
                    f"plain message body is a JSON {type(document).__name__}, not an object "
                    f"with the type field {form.type_field!r}"
                )
            if form.type_field not in document:
                raise DecodeError(
                    f"plain message has no field {form.type_field!r}, which names its type "
                    f"(expected one of {self._expected()})"
                )
            value = document[form.type_field]
            where = f"field {form.type_field!r}"
        else:
            assert self._only is not None
            return self._only
        model = self._names.get(value) if isinstance(value, str) else None
        if model is None:
            raise DecodeError(
                f"{where} is {value!r}, which no message type of this subscription declares "
                f"(expected one of {self._expected()})"
            )
        return model

    def _expected(self) -> str:
        return ", ".join(repr(name) for name in sorted(self._names))


def _structured(message: WireMessage) -> tuple[Envelope, bytes]:
    """Read a structured-mode CloudEvent with the cloudevents SDK."""
    from cloudevents.core.exceptions import BaseCloudEventException, CloudEventValidationError
    from cloudevents.core.formats.json import JSONFormat

    try:
        event = JSONFormat().read(None, message.body)
    except CloudEventValidationError as exc:
        raise DecodeError(_describe(exc.errors)) from None
    except (BaseCloudEventException, ValueError, TypeError, AttributeError, KeyError) as exc:
        raise DecodeError(
            f"structured CloudEvent is not a CloudEvents JSON document: {exc}"
        ) from None
    attributes: dict[str, Any] = event.get_attributes()
    data = event.get_data()
    body = data if isinstance(data, bytes) else json.dumps(data).encode()
    extensions = {
        name: str(attributes[name])
        for name in ("correlationid", "causationid", "dataversion")
        if attributes.get(name) is not None
    }
    envelope = Envelope(
        id=event.get_id(),
        type=event.get_type(),
        source=event.get_source(),
        time=event.get_time() or datetime.now(UTC),
        specversion=event.get_specversion() or SPEC_VERSION,
        datacontenttype=event.get_datacontenttype() or JSON,
        subject=event.get_subject(),
        correlationid=extensions.get("correlationid"),
        causationid=extensions.get("causationid"),
        dataversion=extensions.get("dataversion"),
        headers={k: v for k, v in message.headers.items() if k.lower() != _CONTENT_TYPE},
    )
    return envelope, body


def _describe(errors: Mapping[str, Sequence[Exception]]) -> str:
    """One line naming every attribute of a structured CloudEvent that is missing or wrong."""
    from cloudevents.core.exceptions import MissingRequiredAttributeError

    missing = sorted(
        name
        for name, found in errors.items()
        if any(isinstance(e, MissingRequiredAttributeError) for e in found)
    )
    parts = []
    if missing:
        parts.append(f"missing required attribute(s) {', '.join(map(repr, missing))}")
    for name, found in sorted(errors.items()):
        if name not in missing and found:
            parts.append(f"attribute {name!r}: {found[0]}")
    return "structured CloudEvent is invalid: " + "; ".join(parts)


def _event_id(form: PlainJSON, message: WireMessage, origin: Origin) -> str:
    for source in form.ids:
        if source == "message-id":
            found = _first(message.headers, _MESSAGE_ID_HEADERS) or origin.properties.get(
                "message_id"
            )
        elif source == "correlation-id":
            found = _correlation(message, origin)
        elif source == "field":
            found = _field(message.body, form.id_field)
        else:
            found = origin.position
        if found:
            return found
    looked = {
        "message-id": "no producer message id (message_id header or property)",
        "position": "no broker position (this broker keeps none for a queued message)",
        "correlation-id": "no correlation_id",
        "field": f"no {form.id_field!r} field with a string or integer value",
    }
    raise DecodeError(
        f"plain message has no stable id: {', '.join(looked[s] for s in form.ids)}; have the "
        "producer set a message id (FastStream: publish(..., message_id=...)) so that a "
        "redelivery is recognised, or widen PlainJSON(ids=...)"
    )


def _field(body: bytes, name: str | None) -> str | None:
    try:
        document = json.loads(body)
    except ValueError:
        return None
    value = document.get(name) if isinstance(document, dict) else None
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    return str(value)


def _correlation(message: WireMessage, origin: Origin) -> str | None:
    found = _first(message.headers, _CORRELATION_HEADERS)
    return found or origin.properties.get("correlation_id")


def _content_type(message: WireMessage, origin: Origin) -> str:
    value = _header(message.headers, _CONTENT_TYPE) or origin.properties.get("content_type", "")
    return value.strip().lower()


def _first(headers: Mapping[str, str], names: Sequence[str]) -> str | None:
    for name in names:
        value = headers.get(name)
        if value:
            return value
    return None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), None)
