"""What a `TestBus` records: messages published and handler calls."""

from __future__ import annotations

import builtins
import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from eventwire.delivery import Delivery, Disposition
from eventwire.envelope import Envelope
from eventwire.events import Message

__all__ = ["Call", "Published"]


@dataclasses.dataclass(frozen=True, slots=True)
class Published:
    """One message published through a bus under test (the broker confirmed it)."""

    channel: str
    type: str
    event: Message
    payload: Mapping[str, Any]
    envelope: Envelope
    source: str

    @property
    def model(self) -> builtins.type[Message]:
        return type(self.event)

    @property
    def headers(self) -> Mapping[str, str]:
        """The user headers it was sent with (middlewares' additions included)."""
        return self.envelope.headers

    @property
    def id(self) -> str:
        return self.envelope.id

    @property
    def correlation_id(self) -> str | None:
        return self.envelope.correlationid

    @property
    def causation_id(self) -> str | None:
        return self.envelope.causationid

    @property
    def key(self) -> str | None:
        return self.envelope.subject

    def __str__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.payload.items())
        return f"{self.type} on {self.channel!r} ({fields})"


@dataclasses.dataclass(slots=True)
class Call:
    """One attempt of a handler: what it got and how the attempt ended.

    ``outcome`` is ``None`` while the handler runs, then ``"ack"``, ``"retry"`` or
    ``"dead_letter"`` (the pipeline's decision); ``error`` is what the attempt raised.
    """

    handler: Callable[..., Awaitable[Any]]
    event: Message
    delivery: Delivery
    outcome: str | None = None
    error: BaseException | None = None
    disposition: Disposition | None = None

    @property
    def attempt(self) -> int:
        return self.delivery.attempt

    @property
    def group(self) -> str:
        return self.delivery.group

    def __str__(self) -> str:
        name = getattr(self.handler, "__name__", repr(self.handler))
        state = self.outcome or "running"
        error = f", {type(self.error).__name__}: {self.error}" if self.error else ""
        return (
            f"{name}({self.delivery.envelope.type} id={self.delivery.id}, "
            f"attempt {self.attempt}) -> {state}{error}"
        )
