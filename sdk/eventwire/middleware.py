"""Middlewares: code that wraps every handler call and every publish of a bus.

A middleware subclasses `Middleware` and overrides `consume`, `publish` or both; each gets a
context and ``call_next``, and must await ``call_next()`` exactly once to go on (or raise to
stop). Configure them per bus (``EventBus(..., middlewares=[...])``) and per subscription
(``bus.subscribe(..., middlewares=[...])``).

Order: the bus's middlewares wrap the subscription's, each list outermost first. With
``EventBus(middlewares=[a, b])`` and ``subscribe(..., middlewares=[c])`` one attempt runs::

    a.consume -> b.consume -> c.consume -> handler -> c returns -> b returns -> a returns

Publishing runs the bus's middlewares in the same order (``a.publish -> b.publish -> send``).

Consuming: `consume` runs once per attempt, in the task that runs the handler, so a context
variable set before ``call_next()`` is seen by the handler. When ``call_next()`` returns or
raises, ``context.outcome`` says what the pipeline will do with the delivery (ack, retry
after a delay, dead-letter) and ``context.error`` holds the exception. An exception raised
by a middleware is handled exactly like one raised by the handler (retry, then dead-letter).
A middleware that catches the exception and returns makes the attempt succeed (ack); one
that assigns ``context.outcome`` and re-raises the same exception changes the decision.

Batch handlers (``subscribe(..., batch=BatchPolicy(...))``): `consume_batch` runs once per
call of the handler with a `BatchConsumeContext` (the events and their deliveries, in the
order the handler gets them). When ``call_next()`` returns or raises, ``context.failed``
maps the index of each failed event to its exception (empty: all handled) and
``context.error`` holds what the handler raised (a `BatchError` or anything else); a
middleware that catches it and returns makes the whole call succeed. `consume` is not called
for batch handlers, nor `consume_batch` for single-event ones: a middleware meant for both
overrides both (the bus's tracing and metrics do).

Publishing: `publish` runs once per message, after the message was validated and encoded,
around the broker's confirm. Headers set in ``context.headers`` before ``call_next()``
travel with the message (user headers; the envelope's reserved names are refused).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

from eventwire.delivery import Delivery, Disposition
from eventwire.envelope import Envelope
from eventwire.errors import ConfigurationError
from eventwire.events import Message

__all__ = ["BatchConsumeContext", "CallNext", "ConsumeContext", "Middleware", "PublishContext"]

CallNext = Callable[[], Awaitable[None]]


@dataclasses.dataclass(slots=True)
class ConsumeContext:
    """One attempt to handle one delivery, as middlewares see it.

    ``outcome`` and ``error`` are set when ``call_next()`` returns or raises. ``state`` is
    free for middlewares to share values during the attempt.
    """

    event: Message
    delivery: Delivery
    handler: Callable[..., Awaitable[Any]]
    outcome: Disposition | None = None
    error: BaseException | None = None
    state: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def envelope(self) -> Envelope:
        """Id, type, source, time, subject (key), correlation and causation ids, headers."""
        return self.delivery.envelope

    @property
    def channel(self) -> str:
        return self.delivery.channel

    @property
    def group(self) -> str:
        return self.delivery.group

    @property
    def attempt(self) -> int:
        return self.delivery.attempt


@dataclasses.dataclass(slots=True)
class BatchConsumeContext:
    """One call of a batch handler, as middlewares see it.

    ``failed`` and ``error`` are set when ``call_next()`` returns or raises: the index of
    each failed event with its exception, and the exception the call raised. ``state`` is
    free for middlewares to share values during the call.
    """

    events: list[Message]
    deliveries: list[Delivery]
    handler: Callable[..., Awaitable[Any]]
    channel: str
    group: str
    failed: dict[int, Exception] | None = None
    error: BaseException | None = None
    state: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(slots=True)
class PublishContext:
    """One message on its way to the broker, as middlewares see it.

    ``headers`` starts as the user headers the message was published with; what a
    middleware adds before ``call_next()`` is sent. ``envelope`` is the envelope as
    published (its ``headers`` include the additions once ``call_next()`` returned).
    """

    event: Message
    channel: str
    envelope: Envelope
    headers: dict[str, str]
    state: dict[str, Any] = dataclasses.field(default_factory=dict)


class Middleware:
    """Base class of middlewares: override `consume`, `publish` or both.

    The defaults only call ``call_next()``; a method left as the default costs nothing (the
    bus skips it).
    """

    async def consume(self, context: ConsumeContext, call_next: CallNext) -> None:
        """Wrap one handler attempt; await ``call_next()`` to run the rest of the chain."""
        await call_next()

    async def consume_batch(self, context: BatchConsumeContext, call_next: CallNext) -> None:
        """Wrap one call of a batch handler; await ``call_next()`` to run the rest."""
        await call_next()

    async def publish(self, context: PublishContext, call_next: CallNext) -> None:
        """Wrap one publish; await ``call_next()`` to send the message."""
        await call_next()


def consuming(middlewares: tuple[Middleware, ...]) -> tuple[Middleware, ...]:
    """The middlewares that override `Middleware.consume`, in order."""
    return tuple(m for m in middlewares if type(m).consume is not Middleware.consume)


def consuming_batches(middlewares: tuple[Middleware, ...]) -> tuple[Middleware, ...]:
    """The middlewares that override `Middleware.consume_batch`, in order."""
    return tuple(m for m in middlewares if type(m).consume_batch is not Middleware.consume_batch)


def publishing(middlewares: tuple[Middleware, ...]) -> tuple[Middleware, ...]:
    """The middlewares that override `Middleware.publish`, in order."""
    return tuple(m for m in middlewares if type(m).publish is not Middleware.publish)


def check_middlewares(middlewares: object, where: str) -> tuple[Middleware, ...]:
    """`middlewares` as a tuple; `ConfigurationError` if one is not a `Middleware`."""
    if middlewares is None:
        return ()
    if isinstance(middlewares, Middleware) or not isinstance(middlewares, list | tuple):
        raise ConfigurationError(
            f"{where} middlewares must be a list of eventwire.Middleware instances, "
            f"got {middlewares!r}"
        )
    for item in middlewares:
        if not isinstance(item, Middleware):
            hint = " (pass an instance, not the class)" if isinstance(item, type) else ""
            raise ConfigurationError(
                f"{where} middleware {item!r} is not an eventwire.Middleware instance{hint}; "
                "subclass eventwire.Middleware and override consume() and/or publish()"
            )
    return tuple(middlewares)
