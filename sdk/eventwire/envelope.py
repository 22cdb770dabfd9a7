"""The envelope: CloudEvents 1.0 attributes around every event's data."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Self

from eventwire._random import random_bits

__all__ = ["JSON", "SPEC_VERSION", "Envelope", "assemble", "format_time", "new_id", "parse_time"]

SPEC_VERSION = "1.0"
#: The content type of an event's data unless it says otherwise (what eventwire writes).
JSON = "application/json"
_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclasses.dataclass(frozen=True, slots=True)
class Envelope:
    """CloudEvents attributes of one message, plus eventwire's extensions and user headers.

    ``subject`` carries the ordering key. ``correlationid``, ``causationid`` and
    ``dataversion`` are CloudEvents extension attributes. ``headers`` are user headers that
    travel as plain protocol headers.
    """

    id: str
    type: str
    source: str
    time: datetime
    specversion: str = SPEC_VERSION
    datacontenttype: str = JSON
    subject: str | None = None
    correlationid: str | None = None
    causationid: str | None = None
    dataversion: str | None = None
    headers: Mapping[str, str] = dataclasses.field(default_factory=lambda: _EMPTY)

    @classmethod
    def new(
        cls,
        *,
        type: str,
        source: str,
        subject: str | None = None,
        correlationid: str | None = None,
        causationid: str | None = None,
        dataversion: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Self:
        """A fresh envelope with a new uuid4 ``id`` and the current UTC ``time`` (of the
        class it is called on)."""
        attributes = (
            new_id(),
            type,
            source,
            datetime.now(UTC),
            SPEC_VERSION,
            JSON,
            subject,
            correlationid,
            causationid,
            dataversion,
            MappingProxyType(dict(headers)) if headers else _EMPTY,
        )
        if cls is Envelope:
            return assemble(*attributes)  # type: ignore[return-value]
        return cls(*attributes)

    def attributes(self) -> dict[str, str]:
        """The CloudEvents attributes that are set, as strings (``time`` in RFC 3339)."""
        out = {
            "id": self.id,
            "type": self.type,
            "source": self.source,
            "specversion": self.specversion,
            "time": format_time(self.time),
            "datacontenttype": self.datacontenttype,
        }
        for name in ("subject", "correlationid", "causationid", "dataversion"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


_SET_ID, _SET_TYPE, _SET_SOURCE, _SET_TIME, _SET_SPEC, _SET_CONTENT, _SET_SUBJECT = (
    getattr(Envelope, name).__set__
    for name in ("id", "type", "source", "time", "specversion", "datacontenttype", "subject")
)
_SET_CORRELATION, _SET_CAUSATION, _SET_DATAVERSION, _SET_HEADERS = (
    getattr(Envelope, name).__set__
    for name in ("correlationid", "causationid", "dataversion", "headers")
)


def assemble(
    id: str,
    type: str,
    source: str,
    time: datetime,
    specversion: str,
    datacontenttype: str,
    subject: str | None,
    correlationid: str | None,
    causationid: str | None,
    dataversion: str | None,
    headers: Mapping[str, str],
) -> Envelope:
    """The `Envelope` of these attributes, all given, built without the frozen dataclass's
    ``__init__`` (which sets each field through ``object.__setattr__``; the slots' own
    setters are several times cheaper): the decoder builds one per delivery, the publish
    path one per event."""
    envelope: Envelope = object.__new__(Envelope)
    _SET_ID(envelope, id)
    _SET_TYPE(envelope, type)
    _SET_SOURCE(envelope, source)
    _SET_TIME(envelope, time)
    _SET_SPEC(envelope, specversion)
    _SET_CONTENT(envelope, datacontenttype)
    _SET_SUBJECT(envelope, subject)
    _SET_CORRELATION(envelope, correlationid)
    _SET_CAUSATION(envelope, causationid)
    _SET_DATAVERSION(envelope, dataversion)
    _SET_HEADERS(envelope, headers)
    return envelope


def new_id() -> str:
    """A random (version 4) UUID as text.

    Drawn from `random_bits` and formatted directly (the text `uuid.UUID` would print,
    without building one); several times cheaper than ``str(uuid.uuid4())`` on the publish
    path. Event ids need to be unique, not secret.
    """
    h = f"{random_bits(128) & _V4_MASK | _V4_BITS:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_V4_MASK = ~(0xF000 << 64 | 0xC000 << 48) & (1 << 128) - 1
_V4_BITS = 0x4000 << 64 | 0x8000 << 48


def format_time(value: datetime) -> str:
    """RFC 3339 in UTC with a ``Z`` suffix."""
    if value.tzinfo is UTC:  # the usual case (every publish): ends in "+00:00"
        return value.isoformat()[:-6] + "Z"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    """Parse an RFC 3339 timestamp (``Z`` or an offset)."""
    return datetime.fromisoformat(text)
