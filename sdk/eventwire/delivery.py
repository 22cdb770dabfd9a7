"""What a handler sees (`Delivery`) and how a failure is settled (`Failure`, `Disposition`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Literal

from eventwire.envelope import Envelope
from eventwire.retry import RetryPolicy

__all__ = ["Delivery", "Disposition", "Failure"]


@dataclasses.dataclass(frozen=True, slots=True)
class Delivery:
    """One delivery of an event to a handler: envelope, attempt number, where it came from.

    ``attempt`` is 1 on the first try and grows with every retry, including retries after
    the event was redelivered by the broker (a crashed member, a restart).
    """

    envelope: Envelope
    attempt: int
    channel: str
    group: str

    @property
    def id(self) -> str:
        """The event id (CloudEvents ``id``)."""
        return self.envelope.id

    @property
    def headers(self) -> Mapping[str, str]:
        """The user headers the event was published with."""
        return self.envelope.headers

    @property
    def correlation_id(self) -> str | None:
        """The correlation id the event was published with, if any."""
        return self.envelope.correlationid


@dataclasses.dataclass(frozen=True, slots=True)
class Failure:
    """A handler raised: what the ``eventwire_consume_error`` hook decides about."""

    error: BaseException
    attempt: int
    policy: RetryPolicy
    envelope: Envelope
    channel: str
    group: str


Action = Literal["ack", "retry", "dead_letter"]


@dataclasses.dataclass(frozen=True, slots=True)
class Disposition:
    """The outcome of a failed attempt: retry after a delay, dead-letter, or ack."""

    action: Action
    delay: float = 0.0
    reason: str = ""

    @classmethod
    def retry(cls, delay: float) -> Disposition:
        """Try the handler again after `delay` seconds (in place: key order is kept)."""
        return cls("retry", delay=max(0.0, delay))

    @classmethod
    def dead_letter(cls, reason: str = "failed") -> Disposition:
        """Move the event to ``<channel>.dlq`` with `reason`, then settle it."""
        return cls("dead_letter", reason=reason)

    @classmethod
    def ack(cls) -> Disposition:
        """Settle the event as handled although the handler raised."""
        return cls("ack")
