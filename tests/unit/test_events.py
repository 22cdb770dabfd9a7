from decimal import Decimal

import pytest
from eventwire import Command, Event, EventDefinitionError
from pydantic import ValidationError


class OrderPlaced(Event, channel="shop.orders", key="order_id", version=2):
    order_id: str
    total: Decimal


class ReserveStock(Command, channel="inventory.commands", key="sku"):
    sku: str


def test_declaration_is_read_from_class_keywords() -> None:
    spec = OrderPlaced.__eventwire__
    assert (spec.type, spec.kind, spec.channel, spec.key, spec.version) == (
        "OrderPlaced",
        "event",
        "shop.orders",
        "order_id",
        2,
    )
    assert ReserveStock.__eventwire__.kind == "command"


def test_key_is_read_from_the_instance() -> None:
    assert OrderPlaced(order_id="o-7", total=Decimal("1.5")).message_key() == "o-7"


def test_events_are_immutable() -> None:
    event = OrderPlaced(order_id="o-1", total=Decimal(1))
    with pytest.raises(ValidationError):
        event.order_id = "o-2"


def test_subclass_inherits_channel_and_key_and_may_rename_type() -> None:
    class OrderPlacedV3(OrderPlaced, type="OrderPlaced.v3", version=3):
        coupon: str | None = None

    spec = OrderPlacedV3.__eventwire__
    assert (spec.type, spec.channel, spec.key, spec.version) == (
        "OrderPlaced.v3",
        "shop.orders",
        "order_id",
        3,
    )


def test_unknown_key_field_is_an_error_at_definition() -> None:
    with pytest.raises(EventDefinitionError, match=r"key='orderid' is not a field.*order_id"):

        class Bad(Event, channel="orders", key="orderid"):
            order_id: str


@pytest.mark.parametrize(
    "channel", ["or ders", "orders*", "orders.>", "", ".orders", "a..b", "x" * 201]
)
def test_channel_a_broker_would_reject_is_an_error(channel: str) -> None:
    with pytest.raises(EventDefinitionError):

        class Bad(Event, channel=channel):
            x: int


def test_dlq_suffix_is_reserved() -> None:
    with pytest.raises(EventDefinitionError, match="dead-letter"):

        class Bad(Event, channel="orders.dlq"):
            x: int


@pytest.mark.parametrize("version", [0, -1, "2", True])
def test_bad_version_is_an_error(version: object) -> None:
    with pytest.raises(EventDefinitionError, match="version"):

        class Bad(Event, channel="orders", version=version):
            x: int
