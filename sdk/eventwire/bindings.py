"""CloudEvents *binary content mode* headers, per protocol binding.

- ``kafka``: ``ce_<attribute>`` headers, ``content-type`` for ``datacontenttype``
  (the CloudEvents Kafka binding). Redis has no binding and uses the Kafka names.
- ``nats``: ``ce-<attribute>`` headers and ``content-type`` (the current NATS binding).
- ``amqp``: ``cloudEvents:<attribute>`` application properties and the ``content-type``
  property (the AMQP 1.0 binding). RabbitMQ speaks AMQP 0-9-1, whose message *headers*
  table plays the part of AMQP 1.0 application properties, so the same names are used as
  header keys; ``content-type`` travels as a header too, so that a message read from a
  dead-letter queue or by another client keeps it.

Headers that carry no prefix are user headers and are kept as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any, Literal

from eventwire.envelope import JSON, Envelope, assemble, format_time, parse_time
from eventwire.errors import DecodeError, EventValidationError

__all__ = [
    "BINDINGS",
    "READ_PREFIXES",
    "Binding",
    "from_headers",
    "to_headers",
    "user_headers",
]

Binding = Literal["kafka", "nats", "amqp"]
BINDINGS: Mapping[str, str] = {"kafka": "ce_", "nats": "ce-", "amqp": "cloudEvents:"}
#: Prefixes accepted when reading: AMQP 1.0 allows ``cloudEvents_`` too (the CloudEvents SDK
#: writes that one), and RabbitMQ's own binding (Knative) uses ``ce-``.
READ_PREFIXES: Mapping[str, tuple[str, ...]] = {
    "kafka": ("ce_",),
    "nats": ("ce-",),
    "amqp": ("cloudEvents:", "cloudEvents_", "ce-"),
}
CONTENT_TYPE = "content-type"
_REQUIRED = ("id", "type", "source", "specversion")
_REQUIRED_SET = frozenset(_REQUIRED)
_KNOWN = frozenset(
    {
        "id",
        "type",
        "source",
        "time",
        "specversion",
        "subject",
        "correlationid",
        "causationid",
        "dataversion",
    }
)


def _read_names(binding: str) -> dict[str, str]:
    """Header name (as written, and lower-cased) -> CloudEvents attribute, for one binding."""
    names = {CONTENT_TYPE: "datacontenttype"}
    for prefix in READ_PREFIXES[binding]:
        for attr in _KNOWN:
            names[prefix + attr] = attr
            names[(prefix + attr).lower()] = attr
    return names


_READ_NAMES: Mapping[str, Mapping[str, str]] = {b: _read_names(b) for b in READ_PREFIXES}
_WRITE_NAMES: Mapping[str, Mapping[str, str]] = {
    b: {attr: prefix + attr for attr in _KNOWN} for b, prefix in BINDINGS.items()
}
_OPTIONAL = ("subject", "correlationid", "causationid", "dataversion")
#: Per binding, what `from_headers` reads first: a getter of the required attributes' headers,
#: then the names of time, subject, correlationid, causationid and dataversion.
_FAST_NAMES: Mapping[
    str, tuple[Callable[[Mapping[str, str]], tuple[str, str, str, str]], str, str, str, str, str]
] = {
    binding: (
        itemgetter(*(names[attr] for attr in _REQUIRED)),
        names["time"],
        names["subject"],
        names["correlationid"],
        names["causationid"],
        names["dataversion"],
    )
    for binding, names in _WRITE_NAMES.items()
}
#: The time of a message that carries none (``time`` is optional in CloudEvents).
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


#: Header names that carry the envelope in some binding: never a user header.
_RESERVED = frozenset(name.lower() for names in _READ_NAMES.values() for name in names)


def user_headers(headers: Mapping[Any, Any] | None, binding: str) -> dict[str, str]:
    """A publish's own `headers` as text (``{}`` for none); `EventValidationError` if one
    takes a name the envelope uses."""
    if not headers:
        return {}
    user = {str(k): str(v) for k, v in headers.items()}
    taken = sorted(name for name in user if name.lower() in _RESERVED)
    if taken:
        raise EventValidationError(
            f"header(s) {', '.join(map(repr, taken))} are reserved for the CloudEvents "
            f"envelope (written as {BINDINGS[binding]}<attribute> and content-type); nothing "
            "was sent. Pass the id, correlation or causation through publish()'s own "
            "arguments, or rename the header"
        )
    return user


def _prefix(binding: str) -> str:
    try:
        return BINDINGS[binding]
    except KeyError:
        raise ValueError(
            f"unknown header binding {binding!r}; use one of {sorted(BINDINGS)}"
        ) from None


def to_headers(envelope: Envelope, binding: str = "kafka") -> dict[str, str]:
    """Protocol headers for `envelope` in binary content mode."""
    names = _WRITE_NAMES.get(binding)
    if names is None:
        raise ValueError(f"unknown header binding {binding!r}; use one of {sorted(BINDINGS)}")
    headers = dict(envelope.headers)
    headers[names["id"]] = envelope.id
    headers[names["type"]] = envelope.type
    headers[names["source"]] = envelope.source
    headers[names["specversion"]] = envelope.specversion
    headers[names["time"]] = format_time(envelope.time)
    headers[CONTENT_TYPE] = envelope.datacontenttype
    for attr in _OPTIONAL:
        value = getattr(envelope, attr)
        if value is not None:
            headers[names[attr]] = value
    return headers


def from_headers(headers: Mapping[str, str], binding: str = "kafka") -> Envelope:
    """Read an envelope from binary-mode headers; raise `DecodeError` when one is missing.

    Unknown CloudEvents extension attributes are kept as user headers (with their prefix),
    so nothing that arrives is lost.
    """
    # The usual message first: only the names this binding writes, all text. Anything else
    # (user headers, other spellings or prefixes, values that are not text, a missing
    # attribute) is read header by header, with the errors.
    fast = _FAST_NAMES.get(binding)
    if fast is not None:
        required, n_time, n_subject, n_correlation, n_causation, n_version = fast
        try:
            id_, type_, source, spec = required(headers)
        except KeyError:
            return _read_headers(headers, binding)
        get = headers.get
        text = get(n_time)
        content = get(CONTENT_TYPE)
        subject = get(n_subject)
        correlation = get(n_correlation)
        causation = get(n_causation)
        version = get(n_version)
        if (
            str is id_.__class__ is type_.__class__ is source.__class__ is spec.__class__
            and 4
            + (text is not None)
            + (content is not None)
            + (subject is not None)
            + (correlation is not None)
            + (causation is not None)
            + (version is not None)
            == len(headers)
            and (text is None or text.__class__ is str)
            and (content is None or content.__class__ is str)
            and (subject is None or subject.__class__ is str)
            and (correlation is None or correlation.__class__ is str)
            and (causation is None or causation.__class__ is str)
            and (version is None or version.__class__ is str)
        ):
            return _envelope(
                id_,
                type_,
                source,
                spec,
                text,
                content,
                subject,
                correlation,
                causation,
                version,
                {},
            )
    return _read_headers(headers, binding)


def _read_headers(headers: Mapping[str, str], binding: str) -> Envelope:
    """`from_headers`, header by header."""
    prefix = _prefix(binding)
    names = _READ_NAMES[binding]
    attrs: dict[str, str] = {}
    user: dict[str, str] = {}
    for name, value in headers.items():
        attr = names.get(name)
        if attr is None:
            attr = names.get(name.lower())
            if attr is None:
                user[name] = value
                continue
        attrs[attr] = value if value.__class__ is str else str(value)
    get = attrs.get
    if not attrs.keys() >= _REQUIRED_SET:
        missing = [a for a in _REQUIRED if a not in attrs]
        raise DecodeError(
            f"message has no CloudEvents {', '.join(missing)} header(s) "
            f"(expected {prefix}<attribute> headers of the {binding} binding)"
        )
    return _envelope(
        attrs["id"],
        attrs["type"],
        attrs["source"],
        attrs["specversion"],
        get("time"),
        get("datacontenttype"),
        get("subject"),
        get("correlationid"),
        get("causationid"),
        get("dataversion"),
        user,
    )


def _envelope(
    id: str,
    type: str,
    source: str,
    specversion: str,
    time: str | None,
    datacontenttype: str | None,
    subject: str | None,
    correlationid: str | None,
    causationid: str | None,
    dataversion: str | None,
    user: Mapping[str, str],
) -> Envelope:
    """The envelope of attributes read as text (``None``: absent)."""
    try:
        when = _EPOCH if time is None else _read_time(time)
    except (ValueError, OverflowError):
        raise DecodeError(f"CloudEvents time {time!r} is not RFC 3339") from None
    return assemble(
        id,
        type,
        source,
        when,
        specversion,
        JSON if datacontenttype is None else datacontenttype,
        subject,
        correlationid,
        causationid,
        dataversion,
        user,
    )


def _read_time(value: str) -> datetime:
    # AMQP may carry a native timestamp: milliseconds since the epoch.
    if value.isdigit():
        return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
    return parse_time(value)
