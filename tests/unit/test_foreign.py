"""Foreign messages on the embedded broker: what `subscribe(accept=...)` reads, the envelope it
writes, and every bad input dead-lettered as ``invalid`` with the field named.

The foreign producer is the broker itself (`Backend.publish` of raw bytes and headers), as a
raw client would write them; the cloudevents SDK writes the structured events.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from typing import Any

import pytest
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from eventwire import (
    Claim,
    CloudEventsJSON,
    ConfigurationError,
    Delivery,
    Event,
    EventBus,
    PlainJSON,
    WireMessage,
)
from eventwire.deadletter import DeadLetter
from eventwire.idempotency import MemoryIdempotencyStore
from eventwire_conformance.suite.test_idempotency import Ledger, RecordingStore

from tests.unit._helpers import memory_url, wait_for

pytestmark = pytest.mark.anyio


class OrderPlaced(Event, channel="orders", key="order_id"):
    order_id: str
    total: int


class OrderCancelled(Event, channel="orders", key="order_id"):
    order_id: str
    reason: str


class ShipmentSent(Event, channel="shipments"):
    order_id: str


JSON = {"content-type": "application/json"}


def plain(
    document: Any, headers: dict[str, str] | None = None, key: str | None = None
) -> WireMessage:
    return WireMessage(json.dumps(document).encode(), {**JSON, **(headers or {})}, key)


def structured(attributes: dict[str, Any], data: Any) -> WireMessage:
    event = CloudEvent(attributes=attributes, data=data)
    return WireMessage(JSONFormat().write(event), {"content-type": "application/cloudevents+json"})


def structured_raw(document: dict[str, Any]) -> WireMessage:
    """A structured event the SDK would refuse to build (a required attribute left out)."""
    return WireMessage(
        json.dumps(document).encode(), {"content-type": "application/cloudevents+json"}
    )


class Harness:
    """A bus on its own embedded broker, recording what each handler got."""

    def __init__(self, **bus: Any) -> None:
        self.bus = EventBus(memory_url(), source="shop", **bus)
        self.handled: list[tuple[str, Any, Delivery]] = []

    def record(self, name: str) -> Any:
        async def handler(event: Any, delivery: Delivery) -> None:
            self.handled.append((name, event, delivery))

        handler.__name__ = name
        return handler

    async def send(self, channel: str, *messages: WireMessage) -> None:
        await self.bus.backend.publish(channel, list(messages))

    async def dead_letters(self, channel: str, count: int) -> list[DeadLetter]:
        found: list[DeadLetter] = []

        async def enough() -> bool:
            nonlocal found
            found = await self.bus.dead_letters(channel)
            return len(found) >= count

        for _ in range(500):
            if await enough():
                return found
            await asyncio.sleep(0.01)
        raise AssertionError(f"expected {count} dead letters on {channel}, got {len(found)}")


async def test_plain_json_is_the_groups_only_type_with_a_synthesized_envelope() -> None:
    h = Harness()
    h.bus.subscribe(OrderPlaced, group="billing", accept=PlainJSON(source="legacy-shop"))(
        h.record("bill")
    )
    async with h.bus:
        await h.send(
            "orders",
            plain({"order_id": "o-1", "total": 3}, {"correlation_id": "req-7"}, key="o-1"),
        )
        await wait_for(lambda: len(h.handled) == 1)
    _, event, delivery = h.handled[0]
    assert event == OrderPlaced(order_id="o-1", total=3)
    envelope = delivery.envelope
    assert envelope.type == "OrderPlaced"
    assert envelope.source == "legacy-shop"
    assert envelope.correlationid == "req-7"
    assert envelope.subject == "o-1"
    assert envelope.id == "orders/0"  # the broker position: the channel's first message


async def test_a_producer_message_id_is_the_event_id_and_duplicates_run_once() -> None:
    h = Harness()
    h.bus.subscribe(OrderPlaced, group="billing", idempotent=True, accept=PlainJSON())(
        h.record("bill")
    )
    async with h.bus:
        copy = plain({"order_id": "o-1", "total": 3}, {"message_id": "m-1"})
        await h.send("orders", copy, copy, plain({"order_id": "o-2", "total": 1}))
        await wait_for(lambda: any(e.order_id == "o-2" for _, e, _ in h.handled))
        await asyncio.sleep(0.05)
    ids = Counter(d.envelope.id for _, _, d in h.handled)
    assert ids == {"m-1": 1, "orders/2": 1}


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
@pytest.mark.parametrize("idempotent", [True, False])
async def test_a_redelivery_keeps_its_position_id_so_the_store_recognises_it(
    idempotent: bool, backend: str, tmp_path: Any
) -> None:
    url = memory_url() if backend == "memory" else f"sqlite://{tmp_path}/events.db"
    ledger = Ledger()
    store = RecordingStore(MemoryIdempotencyStore(), ledger)  # one store both members share
    effects: list[str] = []
    first = EventBus(url, source="shop", idempotency_store=store, close_timeout=0.2)
    second = EventBus(url, source="shop", idempotency_store=store)
    for bus in (first, second):

        @bus.subscribe(OrderPlaced, group="billing", idempotent=idempotent, accept=PlainJSON())
        async def bill(event: OrderPlaced, delivery: Delivery) -> None:
            effects.append(delivery.envelope.id)
            if ledger.stall and not idempotent:  # no store step to stall in: stall here
                await asyncio.Event().wait()

    await first.start()
    ledger.stall = True
    await first.backend.publish("orders", [plain({"order_id": "o-1", "total": 3})])
    await wait_for(lambda: len(effects) == 1)
    if idempotent:
        await wait_for(lambda: len(ledger.completed) == 1)
    await first.close()  # the effect ran; the member went away before acking
    ledger.stall = False
    [position] = set(effects)  # memory: orders/<index>, sqlite: orders/<row>
    assert position in ("orders/0", "orders/1")
    async with second:
        if idempotent:
            await wait_for(lambda: ledger.count(position, Claim.DONE) == 1)
        else:
            await wait_for(lambda: len(effects) == 2)
    assert effects == [position] * (1 if idempotent else 2)


async def test_discriminator_field_and_names_route_to_the_right_handler() -> None:
    h = Harness()
    accept = PlainJSON(type_field="kind", names={"order_cancelled": OrderCancelled})
    h.bus.subscribe(OrderPlaced, group="g", accept=accept)(h.record("placed"))
    h.bus.subscribe(OrderCancelled, group="g", accept=accept)(h.record("cancelled"))
    async with h.bus:
        await h.send(
            "orders",
            plain({"kind": "OrderPlaced", "order_id": "o-1", "total": 3}),
            plain({"kind": "order_cancelled", "order_id": "o-1", "reason": "late"}),
        )
        await wait_for(lambda: len(h.handled) == 2)
    assert [(name, type(event)) for name, event, _ in h.handled] == [
        ("placed", OrderPlaced),
        ("cancelled", OrderCancelled),
    ]


async def test_type_header_routes_to_the_right_handler() -> None:
    h = Harness()
    accept = PlainJSON(type_header="x-type")
    h.bus.subscribe(OrderPlaced, group="g", accept=accept)(h.record("placed"))
    h.bus.subscribe(OrderCancelled, group="g", accept=accept)(h.record("cancelled"))
    async with h.bus:
        await h.send(
            "orders",
            plain({"order_id": "o-1", "reason": "late"}, {"x-type": "OrderCancelled"}),
        )
        await wait_for(lambda: len(h.handled) == 1)
    assert h.handled[0][0] == "cancelled"


async def test_structured_cloudevents_keep_their_own_attributes() -> None:
    h = Harness()
    h.bus.subscribe(OrderPlaced, group="g", accept=CloudEventsJSON())(h.record("placed"))
    async with h.bus:
        await h.send(
            "orders",
            structured(
                {
                    "type": "OrderPlaced",
                    "source": "/legacy/shop",
                    "id": "ce-1",
                    "subject": "o-1",
                    "correlationid": "req-1",
                },
                {"order_id": "o-1", "total": 5},
            ),
        )
        await wait_for(lambda: len(h.handled) == 1)
    _, event, delivery = h.handled[0]
    assert event == OrderPlaced(order_id="o-1", total=5)
    assert (delivery.envelope.id, delivery.envelope.source) == ("ce-1", "/legacy/shop")
    assert delivery.envelope.correlationid == "req-1"
    assert delivery.envelope.subject == "o-1"


async def test_eventwire_events_still_flow_next_to_foreign_ones() -> None:
    h = Harness()
    h.bus.subscribe(OrderPlaced, group="g", accept=PlainJSON())(h.record("placed"))
    async with h.bus:
        sent = await h.bus.publish(OrderPlaced(order_id="o-1", total=1))
        await wait_for(lambda: len(h.handled) == 1)
    assert h.handled[0][2].envelope.id == sent.id
    assert h.handled[0][2].envelope.source == "shop"


# -- bad input: dead-lettered as invalid, naming what was wrong --------------------------------


async def _one_invalid(h: Harness, channel: str, message: WireMessage) -> DeadLetter:
    async with h.bus:
        await h.send(channel, message)
        [letter] = await h.dead_letters(channel, 1)
    assert h.handled == [], "a bad message reached a handler"
    assert letter.reason == "invalid"
    assert letter.attempts == 1
    assert letter.original.body == message.body
    return letter


async def test_structured_event_missing_a_required_attribute_is_invalid() -> None:
    h = Harness()
    h.bus.subscribe(OrderPlaced, group="g", accept=CloudEventsJSON())(h.record("placed"))
    letter = await _one_invalid(
        h,
        "orders",
        structured_raw(
            {"specversion": "1.0", "type": "OrderPlaced", "id": "x", "data": {"order_id": "o"}}
        ),
    )
    assert "missing required attribute(s) 'source'" in letter.error


async def test_discriminator_value_no_model_declares_is_invalid() -> None:
    h = Harness()
    accept = PlainJSON(type_field="kind")
    h.bus.subscribe(OrderPlaced, group="g", accept=accept)(h.record("placed"))
    h.bus.subscribe(OrderCancelled, group="g", accept=accept)(h.record("cancelled"))
    letter = await _one_invalid(
        h, "orders", plain({"kind": "OrderShipped", "order_id": "o-1", "reason": "x"})
    )
    assert "field 'kind' is 'OrderShipped'" in letter.error
    assert "'OrderCancelled', 'OrderPlaced'" in letter.error


async def test_plain_payload_failing_the_model_is_invalid_naming_the_field() -> None:
    h = Harness()
    h.bus.subscribe(OrderPlaced, group="g", accept=PlainJSON())(h.record("placed"))
    letter = await _one_invalid(h, "orders", plain({"order_id": "o-1", "total": "lots"}))
    assert "not a valid OrderPlaced" in letter.error
    assert "total" in letter.error


async def test_unknown_header_named_type_is_invalid() -> None:
    h = Harness()
    h.bus.subscribe(OrderPlaced, group="g", accept=PlainJSON(type_header="x-type"))(
        h.record("placed")
    )
    letter = await _one_invalid(
        h, "orders", plain({"order_id": "o-1", "total": 1}, {"x-type": "OrderRefunded"})
    )
    assert "header 'x-type' is 'OrderRefunded'" in letter.error
    assert "'OrderPlaced'" in letter.error


async def test_missing_type_header_is_invalid() -> None:
    h = Harness()
    h.bus.subscribe(OrderPlaced, group="g", accept=PlainJSON(type_header="x-type"))(
        h.record("placed")
    )
    letter = await _one_invalid(h, "orders", plain({"order_id": "o-1", "total": 1}))
    assert "no 'x-type' header" in letter.error


async def test_structured_event_without_accepting_them_is_invalid() -> None:
    h = Harness()
    h.bus.subscribe(OrderPlaced, group="g", accept=PlainJSON())(h.record("placed"))
    message = structured(
        {"type": "OrderPlaced", "source": "/s", "id": "1"}, {"order_id": "o", "total": 1}
    )
    letter = await _one_invalid(h, "orders", message)
    assert "add CloudEventsJSON() to accept=" in letter.error


async def test_plain_json_without_accepting_it_is_invalid_saying_what_was_expected() -> None:
    h = Harness()
    h.bus.subscribe(OrderPlaced, group="g", accept=CloudEventsJSON())(h.record("placed"))
    letter = await _one_invalid(h, "orders", plain({"order_id": "o-1", "total": 1}))
    assert "expected eventwire's CloudEvents headers or a structured CloudEvent" in letter.error
    assert "'application/json'" in letter.error


async def test_without_accept_a_foreign_message_stays_invalid() -> None:
    h = Harness()
    h.bus.subscribe(OrderPlaced, group="g")(h.record("placed"))
    letter = await _one_invalid(h, "orders", plain({"order_id": "o-1", "total": 1}))
    assert "no CloudEvents" in letter.error


async def test_broken_binary_mode_headers_are_not_read_as_plain_json() -> None:
    h = Harness()
    h.bus.subscribe(OrderPlaced, group="g", accept=PlainJSON())(h.record("placed"))
    message = plain({"order_id": "o-1", "total": 1}, {"ce_id": "1", "ce_source": "s"})
    letter = await _one_invalid(h, "orders", message)
    assert "no CloudEvents type, specversion header(s)" in letter.error


async def test_a_plain_message_without_a_stable_id_is_invalid() -> None:
    h = Harness()
    h.bus.subscribe(OrderPlaced, group="g", accept=PlainJSON(ids=("message-id",)))(
        h.record("placed")
    )
    letter = await _one_invalid(h, "orders", plain({"order_id": "o-1", "total": 1}))
    assert "no stable id: no producer message id (message_id header or property);" in letter.error


async def test_discriminator_on_a_non_object_body_is_invalid() -> None:
    h = Harness()
    h.bus.subscribe(OrderPlaced, group="g", accept=PlainJSON(type_field="kind"))(h.record("placed"))
    letter = await _one_invalid(h, "orders", plain([1, 2]))
    assert "JSON list, not an object with the type field 'kind'" in letter.error


# -- declarations ----------------------------------------------------------------------------


def test_untyped_plain_json_in_a_group_with_two_types_is_refused() -> None:
    bus = EventBus(memory_url())
    bus.subscribe(OrderPlaced, group="g", accept=PlainJSON())(Harness().record("a"))
    with pytest.raises(ConfigurationError, match="can handle one message type only"):
        bus.subscribe(OrderCancelled, group="g", accept=PlainJSON())(Harness().record("b"))


def test_handlers_of_one_group_declare_the_same_forms() -> None:
    bus = EventBus(memory_url())
    accept = PlainJSON(type_field="kind")
    bus.subscribe(OrderPlaced, group="g", accept=accept)(Harness().record("a"))
    with pytest.raises(ConfigurationError, match="every handler of a group accepts the same"):
        bus.subscribe(OrderCancelled, group="g")(Harness().record("b"))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: PlainJSON(type_field="a", type_header="b"), "not both"),
        (lambda: PlainJSON(ids=("offset",)), "ids must name"),  # type: ignore[arg-type]
        (lambda: PlainJSON(names={"x": OrderPlaced}), "needs type_field= or type_header="),
        (lambda: PlainJSON(type_field="k", names={"x": dict}), "must be an Event or Command"),  # type: ignore[dict-item]
        (lambda: PlainJSON(source=""), "source must be a non-empty string"),
    ],
)
def test_bad_declarations_say_what_to_do(make: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        make()


def test_accept_takes_only_the_forms() -> None:
    bus = EventBus(memory_url())
    with pytest.raises(ConfigurationError, match="accept= takes CloudEventsJSON"):
        bus.subscribe(OrderPlaced, accept="plain")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="lists PlainJSON twice"):
        bus.subscribe(OrderPlaced, accept=[PlainJSON(), PlainJSON()])


async def test_names_for_a_type_the_group_does_not_handle_fail_at_start() -> None:
    bus = EventBus(memory_url())
    accept = PlainJSON(type_field="kind", names={"shipped": ShipmentSent})
    bus.subscribe(OrderPlaced, group="g", accept=accept)(Harness().record("a"))
    with pytest.raises(ConfigurationError, match="does not handle; subscribe a handler"):
        await bus.start()


async def test_a_payload_field_can_be_the_event_id_when_the_producer_sends_nothing_else() -> None:
    h = Harness()
    accept = PlainJSON(ids=("message-id", "field"), id_field="order_id")
    h.bus.subscribe(OrderPlaced, group="g", idempotent=True, accept=accept)(h.record("placed"))
    async with h.bus:
        copy = plain({"order_id": "o-1", "total": 3})
        await h.send("orders", copy, copy, plain({"order_id": "o-2", "total": 1}))
        await wait_for(lambda: any(e.order_id == "o-2" for _, e, _ in h.handled))
        await asyncio.sleep(0.05)
    assert [d.envelope.id for _, _, d in h.handled] == ["o-1", "o-2"]


async def test_a_missing_id_field_is_invalid_naming_it() -> None:
    h = Harness()
    accept = PlainJSON(ids=("field",), id_field="order_ref")
    h.bus.subscribe(OrderPlaced, group="g", accept=accept)(h.record("placed"))
    letter = await _one_invalid(h, "orders", plain({"order_id": "o-1", "total": 1}))
    assert "no 'order_ref' field with a string or integer value" in letter.error


def test_id_field_and_field_go_together() -> None:
    with pytest.raises(ConfigurationError, match="id_field= together with 'field'"):
        PlainJSON(id_field="order_id")
    with pytest.raises(ConfigurationError, match="id_field= together with 'field'"):
        PlainJSON(ids=("field",))


# -- in AsyncAPI documents ---------------------------------------------------------------------


def _receive_operation(document: dict[str, Any], group: str) -> dict[str, Any]:
    return next(
        op for op in document["operations"].values() if op.get("x-eventwire-group") == group
    )


def test_the_generated_document_says_what_a_group_accepts() -> None:
    from eventwire.contracts import generate_asyncapi, validate_document

    bus = EventBus(memory_url(), source="shop")
    accept: list[CloudEventsJSON | PlainJSON] = [
        CloudEventsJSON(),
        PlainJSON(type_field="kind", names={"placed": OrderPlaced}),
    ]
    bus.subscribe(OrderPlaced, group="g", accept=accept)(Harness().record("a"))
    bus.subscribe(OrderCancelled, group="other")(Harness().record("b"))
    document = generate_asyncapi(bus)
    assert _receive_operation(document, "g")["x-eventwire-accept"] == [
        {"form": "cloudevents", "contentType": "application/cloudevents+json"},
        {
            "form": "plain-json",
            "contentType": "application/json",
            "typeField": "kind",
            "names": {"placed": "OrderPlaced"},
            "ids": ["message-id", "position"],
        },
    ]
    assert "x-eventwire-accept" not in _receive_operation(document, "other")
    assert [p for p in validate_document(document) if p.severity == "error"] == []


def _contract(tmp_path: Any, accept: Any) -> Any:
    import yaml
    from eventwire.contracts import generate_asyncapi

    bus = EventBus(memory_url(), source="shop")
    bus.subscribe(OrderPlaced, group="g")(Harness().record("a"))
    bus.subscribe(OrderCancelled, group="g")(Harness().record("b"))
    document = generate_asyncapi(bus)
    document["channels"]["orders"]["x-eventwire-accept"] = accept
    path = tmp_path / "orders.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


async def test_a_contract_channel_declares_what_its_subscriptions_accept(tmp_path: Any) -> None:
    accept = [{"form": "plain-json", "typeHeader": "x-type", "names": {"cancel": "OrderCancelled"}}]
    h = Harness(contract=_contract(tmp_path, accept))
    h.bus.subscribe(OrderPlaced, group="g")(h.record("placed"))
    h.bus.subscribe(OrderCancelled, group="g")(h.record("cancelled"))
    async with h.bus:
        await h.send("orders", plain({"order_id": "o-1", "reason": "late"}, {"x-type": "cancel"}))
        await wait_for(lambda: len(h.handled) == 1)
    assert h.handled[0][0] == "cancelled"


@pytest.mark.parametrize(
    ("accept", "message"),
    [
        ([{"form": "xml"}], "form must be 'cloudevents' or 'plain-json', got 'xml'"),
        ([{"form": "plain-json", "typeField": "k", "names": {"x": "Nope"}}], "'Nope', which"),
        ([{"form": "plain-json"}], "can handle one message type only|needs a group that handles"),
        ({"form": "plain-json"}, "must be a non-empty list"),
    ],
)
async def test_a_bad_contract_declaration_fails_the_start_naming_it(
    tmp_path: Any, accept: Any, message: str
) -> None:
    h = Harness(contract=_contract(tmp_path, accept))
    h.bus.subscribe(OrderPlaced, group="g")(h.record("placed"))
    h.bus.subscribe(OrderCancelled, group="g")(h.record("cancelled"))
    with pytest.raises(ConfigurationError, match=message) as info:
        await h.bus.start()
    assert "orders.yaml: channel 'orders'" in str(info.value)


def test_cloudevents_json_without_the_sdk_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "cloudevents" or m.startswith("cloudevents.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "cloudevents", None)  # import cloudevents fails
    with pytest.raises(ConfigurationError) as info:
        CloudEventsJSON()
    assert str(info.value) == (
        "CloudEventsJSON() needs 'cloudevents', which is not installed: "
        "pip install 'eventwire[cloudevents]'"
    )
