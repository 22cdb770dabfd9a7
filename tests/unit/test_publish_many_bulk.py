"""`publish_many`'s bulk encoding (`eventwire._bulk`) writes what one `publish` per event
writes, and refuses the same mistakes, before anything is sent."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import cast

import pytest
from eventwire import (
    Command,
    Event,
    EventBus,
    EventValidationError,
    MessageTooLargeError,
    _bulk,
)
from eventwire.envelope import format_time, parse_time

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]


def fresh() -> str:
    """A memory broker of its own (the default one is shared by the process)."""
    return f"memory://bulk-{uuid.uuid4().hex[:8]}"


class Placed(Event, channel="bulk-orders", key="order_id", version=2):
    order_id: str
    total: int


class Noted(Event, channel="bulk-notes"):
    text: str


class Ship(Command, channel="bulk-ship"):
    order_id: str


async def test_bulk_messages_equal_single_publishes_but_for_id_and_time() -> None:
    async with EventBus(fresh(), source="shop") as bus:
        single = await bus.publish(
            Placed(order_id="o-1", total=3), correlation_id="c-1", headers={"tenant": "t"}
        )
        many = await bus.publish_many(
            [Placed(order_id="o-2", total=4), Noted(text="hi"), Placed(order_id="o-3", total=5)],
            correlation_id="c-1",
            headers={"tenant": "t"},
        )
        orders = await bus.backend.browse("bulk-orders")
        notes = await bus.backend.browse("bulk-notes")
    assert [e.subject for e in many] == ["o-2", None, "o-3"]
    assert len({e.id for e in [single, *many]}) == 4
    # One clock reading per call, a microsecond apart: times follow publish order.
    assert [(e.time - many[0].time).microseconds for e in many] == [0, 1, 2]
    first, second, third = orders
    moving = {"ce_id", "ce_time", "ce_subject"}
    same = {k: v for k, v in first.headers.items() if k not in moving}
    assert {k: v for k, v in second.headers.items() if k not in moving} == same
    assert same["tenant"] == "t" and same["ce_correlationid"] == "c-1"
    assert same["ce_dataversion"] == "2"
    assert (second.key, second.headers["ce_subject"], second.headers["ce_id"]) == (
        "o-2",
        "o-2",
        many[0].id,
    )
    assert third.headers["ce_id"] == many[2].id
    assert second.body == b'{"order_id":"o-2","total":4}'
    (note,) = notes
    assert "ce_subject" not in note.headers and note.key is None
    assert note.headers["ce_type"] == "Noted" and note.headers["ce_id"] == many[1].id


@pytest.mark.parametrize("micros", [0, 1, 999_998])
async def test_each_time_header_is_the_rfc_3339_text_of_its_event_time(
    micros: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bulk path writes each ``ce_time`` from one text per call; it must read as the
    event's own time, also at a whole second and when the microseconds carry into the next
    second within the call."""
    reading = datetime(2026, 12, 31, 23, 59, 59, micros, tzinfo=UTC)

    class Clock(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> Clock:
            return cast(Clock, reading)

    monkeypatch.setattr(_bulk, "datetime", Clock)
    async with EventBus(fresh()) as bus:
        many = await bus.publish_many([Noted(text=str(i)) for i in range(4)])
        notes = await bus.backend.browse("bulk-notes")
    assert [n.headers["ce_time"] for n in notes] == [format_time(e.time) for e in many]
    assert [parse_time(n.headers["ce_time"]) for n in notes] == [e.time for e in many]
    assert many[0].time == reading


@pytest.mark.parametrize(
    ("events", "error", "text"),
    [
        ([Placed(order_id="a", total=1), "text"], EventValidationError, "got str"),
        ([Placed(order_id="a", total=1), Ship(order_id="b")], EventValidationError, "bus.send"),
        (
            [Placed(order_id="a", total=1), Placed.model_construct(order_id="b")],
            EventValidationError,
            "missing required field",
        ),
        ([Noted(text="x" * 9_000_000)], MessageTooLargeError, "over the memory backend's limit"),
    ],
)
async def test_one_bad_event_sends_nothing(
    events: list[object], error: type[Exception], text: str
) -> None:
    async with EventBus(fresh()) as bus:
        with pytest.raises(error, match=text):
            await bus.publish_many(events)  # type: ignore[arg-type]
        assert await bus.backend.browse("bulk-orders") == []
        assert await bus.backend.browse("bulk-notes") == []


async def test_reserved_user_headers_are_refused() -> None:
    async with EventBus(fresh()) as bus:
        with pytest.raises(EventValidationError, match="reserved for the CloudEvents"):
            await bus.publish_many([Noted(text="x")], headers={"ce_id": "mine"})


async def test_a_contract_checks_every_event_of_the_batch() -> None:
    class OrderPlaced(Event, channel="orders"):
        order_id: str
        customer_id: str

    contract = ROOT / "contracts" / "order-service.v1.yaml"
    async with EventBus(fresh(), contract=contract) as bus:
        with pytest.raises(EventValidationError, match="breaks its contract"):
            await bus.publish_many([OrderPlaced(order_id="o", customer_id="c")])
        assert await bus.backend.browse("orders") == []


async def test_the_usual_publish_writes_what_the_envelope_says_whatever_came_before() -> None:
    """A publish without correlation, causation or user headers is encoded from a template
    its bus keeps; the message must equal what `codec.encode` makes of its envelope, after
    publishes with ids and headers, for an event without a key, and after the source
    changed (and the same for `publish_many`)."""
    from eventwire.bindings import BINDINGS
    from eventwire.codec import encode

    async with EventBus(fresh(), source="shop") as bus:
        sent = [
            await bus.publish(Placed(order_id="o-1", total=1)),
            await bus.publish(
                Placed(order_id="o-2", total=2), correlation_id="c", headers={"t": "x"}
            ),
            await bus.publish(Placed(order_id="o-3", total=3)),
            await bus.publish(Noted(text="no key")),
        ]
        bus.source = "shop/v2"
        sent.append(await bus.publish(Placed(order_id="o-4", total=4)))
        sent += await bus.publish_many([Placed(order_id="o-5", total=5)], causation_id="k")
        sent += await bus.publish_many([Placed(order_id="o-6", total=6)])
        stored = [*await bus.backend.browse("bulk-orders"), *await bus.backend.browse("bulk-notes")]
        binding = bus.backend.binding
    events = [Placed(order_id=f"o-{n}", total=n) for n in (1, 2, 3)]
    expected = [
        encode(event, envelope, binding) for event, envelope in zip(events, sent[:3], strict=True)
    ]
    expected.append(encode(Noted(text="no key"), sent[3], binding))
    expected.append(encode(Placed(order_id="o-4", total=4), sent[4], binding))
    expected.append(encode(Placed(order_id="o-5", total=5), sent[5], binding))
    expected.append(encode(Placed(order_id="o-6", total=6), sent[6], binding))
    by_id = {m.headers[f"{BINDINGS[binding]}id"]: m for m in stored}
    for want, envelope in zip(expected, sent, strict=True):
        got = by_id[envelope.id]
        assert (got.body, dict(got.headers), got.key) == (want.body, dict(want.headers), want.key)
    assert [e.source for e in sent] == ["shop"] * 4 + ["shop/v2"] * 3
    assert "correlationid" not in str(by_id[sent[2].id].headers)  # nothing left from call 2
    assert "causationid" not in str(by_id[sent[6].id].headers)
    assert len({e.id for e in sent}) == 7


async def test_a_command_is_refused_by_publish_even_after_send_encoded_one() -> None:
    async with EventBus(fresh(), source="shop") as bus:
        await bus.send(Ship(order_id="o-1"))
        with pytest.raises(EventValidationError, match=r"use bus\.send"):
            await bus.publish(Ship(order_id="o-2"))
        await bus.send(Ship(order_id="o-3"))
        sent = await bus.backend.browse("bulk-ship")
    assert len(sent) == 2


async def test_the_usual_publish_follows_the_bus_to_another_backend() -> None:
    """A test bus swaps the backend and ``eventwire run --url`` rebinds it: the kept header
    templates must follow to the new backend's header binding."""
    from eventwire.plugins import create_backend

    bus = EventBus(fresh(), source="shop")
    async with bus:
        await bus.publish(Placed(order_id="o-1", total=1))
        before = await bus.backend.browse("bulk-orders")
    other = create_backend(fresh())
    other.binding = "nats"  # the NATS spelling of the headers: ce-id
    bus._renew(other)
    async with bus:
        envelope = await bus.publish(Placed(order_id="o-2", total=2))
        after = await bus.backend.browse("bulk-orders")
    assert "ce_id" in before[0].headers
    assert after[0].headers.get("ce-id") == envelope.id and "ce_id" not in after[0].headers


@pytest.mark.parametrize(
    ("event", "error", "text"),
    [
        ("text", EventValidationError, "got str"),
        (Ship(order_id="b"), EventValidationError, "bus.send"),
        (Placed.model_construct(order_id="b"), EventValidationError, "missing required field"),
        (
            Noted(text="x" * 9_000_000),
            MessageTooLargeError,
            r"encodes to \d+ bytes, over the memory",
        ),
    ],
)
@pytest.mark.parametrize(
    "extra",
    [{"correlation_id": "c"}, {"causation_id": "k"}, {"headers": {"tenant": "t"}}],
    ids=["correlation", "causation", "headers"],
)
async def test_a_publish_with_ids_or_headers_refuses_what_the_usual_one_refuses(
    event: object, error: type[Exception], text: str, extra: dict[str, object]
) -> None:
    async with EventBus(fresh()) as bus:
        with pytest.raises(error, match=text):
            await bus.publish(event, **extra)  # type: ignore[arg-type]
        assert await bus.backend.browse("bulk-orders") == []
        assert await bus.backend.browse("bulk-notes") == []
        assert await bus.backend.browse("bulk-ship") == []
