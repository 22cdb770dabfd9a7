"""Middlewares around handling and publishing: order, context, outcome, errors, headers."""

from __future__ import annotations

import contextvars

import pytest
from eventwire import (
    ConfigurationError,
    ConsumeContext,
    Delivery,
    Disposition,
    Event,
    EventBus,
    EventValidationError,
    Middleware,
    PublishContext,
    RetryPolicy,
)
from eventwire.middleware import CallNext
from eventwire.testing import TestBus

from ._helpers import memory_url, wait_for

pytestmark = pytest.mark.anyio

REQUEST = contextvars.ContextVar[str]("request", default="")


class Placed(Event, channel="mw-orders", key="order_id"):
    order_id: str


class Trace(Middleware):
    """Logs entry and exit of both scopes with its name."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log

    async def consume(self, context: ConsumeContext, call_next: CallNext) -> None:
        self.log.append(f"{self.name}>")
        try:
            await call_next()
        finally:
            assert context.outcome is not None
            self.log.append(f"<{self.name}:{context.outcome.action}")

    async def publish(self, context: PublishContext, call_next: CallNext) -> None:
        self.log.append(f"pub {self.name}>")
        await call_next()
        self.log.append(f"pub <{self.name}")


async def test_bus_middlewares_wrap_subscription_middlewares_in_list_order() -> None:
    log: list[str] = []
    bus = EventBus(memory_url(), source="order", middlewares=[Trace("a", log), Trace("b", log)])

    @bus.subscribe(Placed, group="g", middlewares=[Trace("c", log)])
    async def handle(event: Placed) -> None:
        log.append("handler")

    async with bus:
        await bus.publish(Placed(order_id="o-1"))
        await wait_for(lambda: "<a:ack" in log)
    assert log == [
        "pub a>", "pub b>", "pub <b", "pub <a",
        "a>", "b>", "c>", "handler", "<c:ack", "<b:ack", "<a:ack",
    ]  # fmt: skip


class SetsRequest(Middleware):
    """Sets a context variable around the handler from a header, and adds the header at publish."""

    async def consume(self, context: ConsumeContext, call_next: CallNext) -> None:
        token = REQUEST.set(context.envelope.headers.get("x-request", "none"))
        try:
            await call_next()
        finally:
            REQUEST.reset(token)

    async def publish(self, context: PublishContext, call_next: CallNext) -> None:
        context.headers.setdefault("x-request", REQUEST.get() or "origin")
        await call_next()
        assert context.envelope.headers["x-request"] == context.headers["x-request"]


async def test_context_set_around_the_handler_and_headers_added_at_publish() -> None:
    seen: list[tuple[str, str, int, str, str | None]] = []
    bus = EventBus(memory_url(), source="order", middlewares=[SetsRequest()])

    @bus.subscribe(Placed, group="g")
    async def handle(event: Placed, delivery: Delivery) -> None:
        seen.append(
            (REQUEST.get(), delivery.headers["x-request"], delivery.attempt, delivery.group,
             delivery.correlation_id)
        )  # fmt: skip

    async with TestBus(bus, raise_handler_errors=True) as tb:
        await tb.publish(Placed(order_id="o-1"), correlation_id="c-1")
        await tb.publish(Placed(order_id="o-2"), headers={"x-request": "r-2"})
        assert [p.headers["x-request"] for p in tb.published] == ["origin", "r-2"]
    assert seen == [("origin", "origin", 1, "g", "c-1"), ("r-2", "r-2", 1, "g", None)]
    assert REQUEST.get() == ""


class Sees(Middleware):
    """Records what a middleware can see of each attempt."""

    def __init__(self) -> None:
        self.attempts: list[tuple[str, str, str, int, str, str | None, str]] = []

    async def consume(self, context: ConsumeContext, call_next: CallNext) -> None:
        try:
            await call_next()
        finally:
            assert context.outcome is not None
            self.attempts.append(
                (context.envelope.type, context.channel, context.group, context.attempt,
                 context.outcome.action, type(context.error).__name__ if context.error else None,
                 context.envelope.id)
            )  # fmt: skip


async def test_a_middleware_sees_envelope_attempt_and_the_pipelines_decision() -> None:
    sees = Sees()
    bus = EventBus(memory_url(), source="order", middlewares=[sees])

    @bus.subscribe(Placed, group="g", retry=RetryPolicy(max_attempts=2, backoff=0.01))
    async def handle(event: Placed) -> None:
        if event.order_id == "bad":
            raise ValueError("no")

    async with TestBus(bus) as tb:
        bad = await tb.publish(Placed(order_id="bad"))
        good = await tb.publish(Placed(order_id="good"))
        assert [a[-1] for a in sees.attempts] == [bad.id, bad.id, good.id]
    assert [a[:-1] for a in sees.attempts] == [
        ("Placed", "mw-orders", "g", 1, "retry", "ValueError"),
        ("Placed", "mw-orders", "g", 2, "dead_letter", "ValueError"),
        ("Placed", "mw-orders", "g", 1, "ack", None),
    ]


class Fails(Middleware):
    def __init__(self, when: str) -> None:
        self.when = when

    async def consume(self, context: ConsumeContext, call_next: CallNext) -> None:
        if self.when == "before":
            raise RuntimeError("middleware broke before the handler")
        await call_next()
        if self.when == "after":
            raise RuntimeError("middleware broke after the handler")


@pytest.mark.parametrize("when", ["before", "after"])
async def test_an_exception_in_a_middleware_is_retried_then_dead_lettered_like_a_handlers(
    when: str,
) -> None:
    sees = Sees()
    runs: list[int] = []
    bus = EventBus(memory_url(), source="order", middlewares=[sees])

    @bus.subscribe(
        Placed,
        group="g",
        retry=RetryPolicy(max_attempts=3, backoff=0.01),
        middlewares=[Fails(when)],
    )
    async def handle(event: Placed, delivery: Delivery) -> None:
        runs.append(delivery.attempt)

    async with TestBus(bus) as tb:
        await tb.publish(Placed(order_id="o-1"))
        [letter] = await tb.dead_letters(Placed)
        assert (letter.reason, letter.error_type, letter.attempts) == (
            "max-attempts", "RuntimeError", 3,
        )  # fmt: skip
    assert [(a[3], a[4], a[5]) for a in sees.attempts] == [
        (1, "retry", "RuntimeError"),
        (2, "retry", "RuntimeError"),
        (3, "dead_letter", "RuntimeError"),
    ]
    assert runs == ([] if when == "before" else [1, 2, 3])


class Decides(Middleware):
    """Swallows ValueError (ack) and turns KeyError into an immediate dead letter."""

    async def consume(self, context: ConsumeContext, call_next: CallNext) -> None:
        try:
            await call_next()
        except ValueError:
            return
        except KeyError:
            context.outcome = Disposition.dead_letter("unknown-key")
            raise


async def test_a_middleware_can_swallow_an_error_or_change_the_decision() -> None:
    sees = Sees()
    bus = EventBus(memory_url(), source="order", middlewares=[sees, Decides()])

    @bus.subscribe(Placed, group="g", retry=RetryPolicy(max_attempts=5, backoff=5))
    async def handle(event: Placed) -> None:
        raise ValueError("ignored") if event.order_id == "value" else KeyError("sku")

    async with TestBus(bus) as tb:
        await tb.publish(Placed(order_id="value"))
        await tb.publish(Placed(order_id="key"))
        assert [d.reason for d in await tb.dead_letters(Placed)] == ["unknown-key"]
    assert [(a[4], a[5]) for a in sees.attempts] == [("ack", None), ("dead_letter", "KeyError")]


class Refuses(Middleware):
    async def publish(self, context: PublishContext, call_next: CallNext) -> None:
        if context.event.order_id == "secret":  # type: ignore[attr-defined]
            raise PermissionError("not this one")
        await call_next()


class AddsReserved(Middleware):
    async def publish(self, context: PublishContext, call_next: CallNext) -> None:
        context.headers["ce_id"] = "forged"
        await call_next()


async def test_publish_middlewares_can_refuse_and_cannot_forge_the_envelope() -> None:
    bus = EventBus(memory_url(), source="order", middlewares=[Refuses()])
    forging = EventBus(memory_url(), source="order", middlewares=[AddsReserved()])

    async with TestBus(bus) as tb:
        with pytest.raises(PermissionError):
            await tb.publish(Placed(order_id="secret"))
        with pytest.raises(PermissionError):  # one refused: publish_many raises
            await bus.publish_many([Placed(order_id="a"), Placed(order_id="secret")])
        envelopes = await bus.publish_many([Placed(order_id="b"), Placed(order_id="c")])
        # The refused message stops alone; the others of the batch were sent.
        sent = [p.event.order_id for p in tb.published]  # type: ignore[attr-defined]
        assert sent == ["a", "b", "c"]
        assert [e.id for e in envelopes] == [p.id for p in tb.published[1:]]
    async with TestBus(forging) as tb:
        with pytest.raises(EventValidationError, match="'ce_id' are reserved"):
            await tb.publish(Placed(order_id="x"))
        assert tb.published == []


def test_middlewares_must_be_instances() -> None:
    with pytest.raises(ConfigurationError, match="pass an instance, not the class"):
        EventBus(memory_url(), middlewares=[Trace])  # type: ignore[list-item]
    with pytest.raises(ConfigurationError, match="must be a list"):
        EventBus(memory_url(), middlewares=Sees())  # type: ignore[arg-type]
    bus = EventBus(memory_url())
    with pytest.raises(ConfigurationError, match=r"is not an eventwire\.Middleware"):
        bus.subscribe(Placed, middlewares=[object()])  # type: ignore[list-item]
