"""The events the suite publishes, made per test so every test has its own channel.

An event class declares its channel when the class statement runs, so the suite builds a
fresh class for each unique channel. The crash-consumer process builds the same class from
the same channel name, so both sides agree on the type and the schema.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from eventwire import Event

__all__ = ["Blob", "Ping", "Rich", "blob_model", "ping_model", "rich_model"]


class Ping(Event):
    """The workhorse: an ordering key, a sequence number and some free text."""

    key: str
    seq: int
    tag: str = ""


class Rich(Event):
    """Every JSON-ish field type a payload commonly carries (for the round trip)."""

    key: str
    text: str
    number: int
    ratio: float
    amount: Decimal
    flag: bool
    when: datetime
    tags: list[str]
    attrs: dict[str, int]
    nothing: str | None = None


class Blob(Event):
    """A large payload."""

    key: str
    data: str


def ping_model(channel: str, *, keyed: bool = True, type_name: str = "Ping") -> type[Ping]:
    """A `Ping` class on `channel` (ordered by ``key`` unless ``keyed=False``)."""
    if keyed:

        class KeyedPing(Ping, channel=channel, key="key", type=type_name):
            pass

        return KeyedPing

    class UnkeyedPing(Ping, channel=channel, type=type_name):
        pass

    return UnkeyedPing


def rich_model(channel: str) -> type[Rich]:
    """A `Rich` class on `channel`, keyed by ``key``."""

    class RichEvent(Rich, channel=channel, key="key", type="Rich"):
        pass

    return RichEvent


def blob_model(channel: str) -> type[Blob]:
    """A `Blob` class on `channel`, keyed by ``key``."""

    class BlobEvent(Blob, channel=channel, key="key", type="Blob"):
        pass

    return BlobEvent
