"""Dead-letter messages: the headers eventwire adds, and reading them back."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime

from eventwire.backend import WireMessage
from eventwire.envelope import format_time, parse_time

__all__ = ["DLQ_SUFFIX", "DeadLetter", "dead_letter_channel", "make_dead_letter"]

DLQ_SUFFIX = ".dlq"
PREFIX = "eventwire-dlq-"
REASON = PREFIX + "reason"
ERROR_TYPE = PREFIX + "error-type"
ERROR = PREFIX + "error"
ATTEMPTS = PREFIX + "attempts"
GROUP = PREFIX + "group"
CHANNEL = PREFIX + "channel"
TIME = PREFIX + "time"
#: Set on a message published again by `EventBus.replay_dead_letters` (a fresh uuid per
#: replay), so brokers that drop duplicate event ids (NATS ``Nats-Msg-Id``) accept it.
REPLAY = "eventwire-replay"
MAX_ERROR_TEXT = 2000


def dead_letter_channel(channel: str) -> str:
    """``<channel>.dlq``."""
    return channel + DLQ_SUFFIX


def make_dead_letter(
    original: WireMessage,
    *,
    reason: str,
    error: BaseException | None,
    attempts: int,
    group: str,
    channel: str,
) -> WireMessage:
    """The DLQ message: original body, key and headers, plus the dead-letter metadata."""
    headers = dict(original.headers)
    headers.update(
        {
            REASON: reason,
            ERROR_TYPE: type(error).__qualname__ if error is not None else "",
            ERROR: str(error)[:MAX_ERROR_TEXT] if error is not None else "",
            ATTEMPTS: str(attempts),
            GROUP: group,
            CHANNEL: channel,
            TIME: format_time(datetime.now(UTC)),
        }
    )
    return WireMessage(body=original.body, headers=headers, key=original.key)


@dataclasses.dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message read back from a dead-letter channel."""

    reason: str
    error_type: str
    error: str
    attempts: int
    group: str
    channel: str
    time: datetime | None
    original: WireMessage

    @classmethod
    def from_wire(cls, message: WireMessage) -> DeadLetter:
        """Split a DLQ message into its metadata and the original message."""
        headers: Mapping[str, str] = message.headers
        original = {k: v for k, v in headers.items() if not k.startswith(PREFIX)}
        try:
            attempts = int(headers.get(ATTEMPTS, "0"))
        except ValueError:
            attempts = 0
        try:
            time = parse_time(headers[TIME]) if TIME in headers else None
        except ValueError:
            time = None
        return cls(
            reason=headers.get(REASON, ""),
            error_type=headers.get(ERROR_TYPE, ""),
            error=headers.get(ERROR, ""),
            attempts=attempts,
            group=headers.get(GROUP, ""),
            channel=headers.get(CHANNEL, ""),
            time=time,
            original=WireMessage(body=message.body, headers=original, key=message.key),
        )
