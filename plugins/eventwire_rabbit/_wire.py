"""`WireMessage` <-> AMQP 0-9-1 message: headers table, routing key, delivery count."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from aiormq.abc import DeliveredMessage
from eventwire.backend import Origin, WireMessage
from eventwire.backendkit import shard_of
from eventwire.deadletter import ATTEMPTS, CHANNEL, GROUP, REASON
from pamqp.commands import Basic

from eventwire_rabbit._info import SLOTS

#: A message as the broker takes it: body, routing key, properties.
Outgoing = tuple[bytes, str, Basic.Properties]

__all__ = [
    "KEY_HEADER",
    "MARKER_HEADER",
    "SLOT_HEADER",
    "delivery_count",
    "from_delivery",
    "origin_of",
    "properties",
    "routing_key",
    "slot",
]

#: The event key travels in this header (the routing key may be a hash of it).
KEY_HEADER = "eventwire-key"
#: Set on the position markers the backend writes into history streams (never delivered).
MARKER_HEADER = "eventwire-marker"
#: The slot of the message (a decimal string), set by the publisher: a group's exchange sends
#: slot ``s`` to its shard ``s mod shards`` (`eventwire_rabbit._topology.declare_router`).
SLOT_HEADER = "eventwire-slot"
#: Headers the broker adds that are not part of the event (names and name prefixes).
_BROKER_HEADERS = ("x-delivery-count", "x-death")
_BROKER_PREFIXES = ("x-first-death-", "x-last-death-", "x-stream-")
_ROUTING_KEY_LIMIT = 255
_unkeyed = itertools.count()


def routing_key(key: str | None) -> str:
    """The routing key: the key, or a spread value (messages without a slot are sharded by
    it)."""
    if key is None:
        return f"~{next(_unkeyed)}"  # spread unkeyed messages over every shard
    if len(key) * 4 <= _ROUTING_KEY_LIMIT or len(key.encode()) <= _ROUTING_KEY_LIMIT:
        return key
    return "#" + hashlib.sha256(key.encode()).hexdigest()


def slot(key: str | None) -> str:
    """The slot of `key` (CRC-32 of its UTF-8 bytes mod `SLOTS`: the same in every process
    and version); unkeyed messages are spread over every slot."""
    if key is None:
        return str(next(_unkeyed) % SLOTS)
    return str(shard_of(key, SLOTS))


def properties(message: WireMessage) -> Basic.Properties:
    """Persistent message properties carrying the headers (and the key and its slot) as a
    header table."""
    headers: dict[str, Any] = dict(message.headers)
    if message.key is not None:
        headers[KEY_HEADER] = message.key
    headers[SLOT_HEADER] = slot(message.key)
    return Basic.Properties(
        delivery_mode=2,
        headers=headers,
        content_type=message.headers.get("content-type"),
        message_id=message.headers.get("cloudEvents:id"),
    )


def _text(value: object) -> str:
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def delivery_count(headers: Mapping[str, Any] | None) -> int:
    """Deliveries so far: quorum queues count earlier ones in ``x-delivery-count``."""
    count = (headers or {}).get("x-delivery-count")
    return count + 1 if isinstance(count, int) and not isinstance(count, bool) else 1


def from_delivery(delivered: DeliveredMessage) -> WireMessage:
    """The `WireMessage` inside an AMQP delivery (header values become strings)."""
    raw: Mapping[str, Any] = delivered.header.properties.headers or {}
    headers: dict[str, str] = {}
    key: str | None = None
    for name, value in raw.items():
        if name == KEY_HEADER:
            key = _text(value)
        elif not (
            name == SLOT_HEADER or name in _BROKER_HEADERS or name.startswith(_BROKER_PREFIXES)
        ):
            headers[name] = value if type(value) is str else _text(value)
    if "x-death" in raw and REASON not in headers:
        _describe_broker_dead_letter(raw, headers)
    return WireMessage(body=delivered.body, headers=headers, key=key)


#: AMQP 0-9-1 message properties an `Origin` carries (the ones a producer sets about itself).
_ORIGIN_PROPERTIES = ("message_id", "correlation_id", "content_type", "message_type", "app_id")


def origin_of(props: Basic.Properties | None) -> Origin:
    """The `Origin` of a delivery with `props`: its properties as text, its timestamp."""
    if props is None:
        return Origin()
    properties: dict[str, str] = {}
    for name in _ORIGIN_PROPERTIES:
        value = getattr(props, name, None)
        if value is not None and value != "":
            properties["type" if name == "message_type" else name] = _text(value)
    stamp = props.timestamp
    if isinstance(stamp, datetime) and stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return Origin(timestamp=stamp if isinstance(stamp, datetime) else None, properties=properties)


def _describe_broker_dead_letter(raw: Mapping[str, Any], headers: dict[str, str]) -> None:
    """The broker dead-lettered this (``delivery_limit``): say so in eventwire's terms."""
    reason = _text(raw.get("x-first-death-reason", ""))
    queue = _text(raw.get("x-first-death-queue", ""))
    parts = queue.split(":")
    headers[REASON] = "max-deliveries" if reason == "delivery_limit" else f"broker-{reason}"
    if len(parts) >= 3:
        headers[CHANNEL] = parts[0]
        headers[GROUP] = parts[1]
    count = raw.get("x-delivery-count")
    if isinstance(count, int):
        headers[ATTEMPTS] = str(count)
