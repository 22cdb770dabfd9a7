"""Mistakes that used to pass silently fail early, with a message that says what to do."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from eventwire import (
    BusClosedError,
    ConfigurationError,
    Delivery,
    Event,
    EventBus,
    EventDefinitionError,
    EventValidationError,
    InvalidURLError,
)
from eventwire.testing import TestBus

from ._helpers import memory_url

pytestmark = pytest.mark.anyio


class Shipped(Event, channel="sm-shipping", key="order_id"):
    order_id: str
    carrier: str


# -- handler signatures, at subscribe ------------------------------------------------------


async def no_arguments() -> None: ...


async def three(event: Shipped, delivery: Delivery, extra: int) -> None: ...


async def keyword_only(event: Shipped, *, tenant: str) -> None: ...


@pytest.mark.parametrize(
    ("handler", "problem"),
    [
        (no_arguments, "takes no arguments, so it cannot receive the event"),
        (three, "requires 3 arguments (event, delivery, extra); it gets at most two"),
        (keyword_only, "requires keyword-only argument(s) tenant"),
    ],
)
def test_a_handler_that_cannot_be_called_is_refused_at_subscribe(
    handler: Any, problem: str
) -> None:
    bus = EventBus(memory_url())
    with pytest.raises(ConfigurationError) as info:
        bus.subscribe(Shipped, group="g")(handler)
    assert problem in str(info.value)
    assert f"handler {handler.__name__} for Shipped" in str(info.value)
    assert "'async def" in str(info.value) and "(event: Shipped, delivery: Delivery)" in str(
        info.value
    )
    assert bus.subscriptions == {}


def test_handlers_that_fit_are_accepted() -> None:
    bus = EventBus(memory_url())

    async def one(event: Shipped) -> None: ...

    async def two(event: Shipped, delivery: Delivery) -> None: ...

    async def defaults(event: Shipped, delivery: Delivery, retries: int = 3) -> None: ...

    async def variadic(*args: Any) -> None: ...

    async def optional(event: Shipped, flag: int = 1) -> None: ...

    handlers: list[Callable[..., Awaitable[None]]] = [one, two, defaults, variadic, optional]
    for number, handler in enumerate(handlers):
        bus.subscribe(Shipped, group=f"g{number}")(handler)
    takes_delivery = [info.routes["Shipped"].takes_delivery for info in bus.subscriptions.values()]
    assert takes_delivery == [False, True, True, False, False]


# -- model_construct and reserved headers, at publish --------------------------------------


async def test_an_event_built_with_model_construct_missing_a_field_is_not_sent() -> None:
    bus = EventBus(source="shop")

    async with TestBus(bus) as tb:
        with pytest.raises(EventValidationError) as info:
            await tb.publish(Shipped.model_construct(order_id="o-1"))
        assert "Shipped is missing required field(s) carrier" in str(info.value)
        assert "model_construct()" in str(info.value)
        await tb.publish(Shipped.model_construct(order_id="o-2", carrier="dhl"))  # complete
        assert [p.payload for p in tb.published] == [{"order_id": "o-2", "carrier": "dhl"}]


@pytest.mark.parametrize("name", ["ce_id", "ce_type", "CE_SOURCE", "ce-id", "content-type"])
async def test_user_headers_with_an_envelope_name_are_refused(name: str) -> None:
    bus = EventBus(source="shop")

    async with TestBus(bus) as tb:
        with pytest.raises(EventValidationError, match="reserved for the CloudEvents"):
            await tb.publish(Shipped(order_id="o", carrier="c"), headers={name: "x"})
        await tb.publish(Shipped(order_id="o", carrier="c"), headers={"x-trace": "t"})
        assert [dict(p.headers) for p in tb.published] == [{"x-trace": "t"}]


# -- class keywords, at class definition ---------------------------------------------------


def test_an_unknown_class_keyword_names_the_valid_ones() -> None:
    with pytest.raises(EventDefinitionError) as info:

        class Placed(Event, topic="orders"):
            order_id: str

    text = str(info.value)
    assert text.startswith("Placed: unknown class keyword(s) 'topic'")
    assert "did you mean 'topic' -> channel?" in text
    assert "channel=, key=, version= and type=" in text


def test_pydantic_class_keywords_still_work() -> None:
    class Strict(Event, channel="sm-strict", extra="forbid"):
        order_id: str

    with pytest.raises(ValueError, match="Extra inputs are not permitted"):
        Strict(order_id="o", surprise=1)  # type: ignore[call-arg]


# -- dead letters, before start -------------------------------------------------------------


async def test_dead_letters_before_start_says_to_start_the_bus() -> None:
    bus = EventBus(memory_url())
    with pytest.raises(BusClosedError) as info:
        await bus.dead_letters(Shipped)
    assert str(info.value) == (
        "dead_letters() reads from the broker, and the bus is new; call it inside "
        "'async with bus' (or after bus.start())"
    )
    async with bus:
        assert await bus.dead_letters(Shipped) == []
    with pytest.raises(BusClosedError, match="the bus is closed"):
        await bus.dead_letters(Shipped)


# -- URLs without a host --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "example"),
    [
        ("kafka://", "kafka://127.0.0.1:9092"),
        ("nats://", "nats://127.0.0.1:4222"),
        ("redis://", "redis://127.0.0.1:6379"),
        ("redis://:secret@/0", "redis://127.0.0.1:6379"),
        ("amqp://", "amqp://127.0.0.1:5672"),
    ],
)
def test_every_broker_url_must_name_its_host(url: str, example: str) -> None:
    with pytest.raises(InvalidURLError) as info:
        EventBus(url)
    scheme = url.split(":", 1)[0]
    assert f"names no broker host; write {scheme}://host:" in str(info.value)
    assert example in str(info.value)
    assert "secret" not in str(info.value)
