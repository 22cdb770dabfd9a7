"""The checks every backend makes before it talks to its broker, with one formula each."""

from __future__ import annotations

from collections.abc import Sequence

from eventwire._naming import check_name
from eventwire.backend import SubscriptionSpec, WireMessage
from eventwire.errors import ConfigurationError, MessageTooLargeError

__all__ = ["check_messages", "check_spec", "first_oversized", "message_size"]


def message_size(message: WireMessage) -> int:
    """The size a backend's limit is measured against: the UTF-8 bytes of the body, the key,
    and every header name and value."""
    size = len(message.body)
    if message.key is not None:
        size += len(message.key.encode())
    for name, value in message.headers.items():
        size += len(name.encode()) + len(value.encode())
    return size


def first_oversized(
    messages: Sequence[WireMessage], limit: int, overhead: int = 0
) -> tuple[int, int] | None:
    """The index and size (`message_size` plus `overhead`) of the first message over `limit`
    bytes; ``None`` if none is. A message whose size cannot exceed the limit, even if every
    character took four UTF-8 bytes, is passed without encoding anything (almost every
    message: this runs on every publish)."""
    for index, message in enumerate(messages):
        chars = 0 if message.key is None else len(message.key)
        for name, value in message.headers.items():
            chars += len(name) + len(value)
        if len(message.body) + 4 * chars + overhead <= limit:
            continue
        size = message_size(message) + overhead
        if size > limit:
            return index, size
    return None


def check_messages(
    backend: str, channel: str, messages: Sequence[WireMessage], limit: int | None
) -> None:
    """`MessageTooLargeError` naming the first message over `limit` bytes (``None``: no limit).

    Called before anything is sent, so a refused batch sends nothing.
    """
    if limit is None or (over := first_oversized(messages, limit)) is None:
        return
    index, size = over
    raise MessageTooLargeError(
        f"message {index} for channel {channel!r} is {size} bytes (body, key and "
        f"headers), over the {backend} backend's limit of {limit} bytes; nothing was "
        "sent. Publish a reference to the data instead of the data itself"
    )


def check_spec(spec: SubscriptionSpec) -> None:
    """`ConfigurationError` for a subscription no backend can run (bad names, max_in_flight)."""
    check_name("channel", spec.channel)
    check_name("group", spec.group)
    if spec.max_in_flight < 1:
        raise ConfigurationError(
            f"max_in_flight={spec.max_in_flight} for {spec.channel}/{spec.group} must be >= 1"
        )
