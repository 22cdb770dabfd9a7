"""A small domain for the gateway tests, on channels of its own (a tag per test)."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import yaml
from eventwire import Command, Event, EventBus
from eventwire.contracts import generate_asyncapi
from pydantic import Field

TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclasses.dataclass(frozen=True)
class Domain:
    tag: str
    # The classes are made at run time: their fields are not known to the type checker.
    OrderPlaced: type[Any]
    OrderCancelled: type[Any]
    ShipOrder: type[Any]
    contract: Path

    @property
    def orders(self) -> str:
        return f"{self.tag}.orders"


def make_domain(folder: Path, tag: str | None = None) -> Domain:
    """Event classes on ``<tag>.orders`` / ``<tag>.shipping.commands`` and their contract."""
    tag = tag or "gw-" + uuid.uuid4().hex[:10]

    class OrderPlaced(Event, channel=f"{tag}.orders", key="order_id", version=1):
        """A customer placed an order."""

        order_id: str = Field(min_length=1, max_length=40)
        total: Decimal = Field(ge=0)
        currency: Literal["EUR", "USD"] = "EUR"
        placed_at: datetime

    class OrderCancelled(Event, channel=f"{tag}.orders", key="order_id", version=1):
        """An order was cancelled."""

        order_id: str = Field(min_length=1, max_length=40)
        reason: Literal["out-of-stock", "customer-request"]

    class ShipOrder(Command, channel=f"{tag}.shipping.commands", key="order_id", version=1):
        """Ship an order."""

        order_id: str = Field(min_length=1, max_length=40)
        address: str = Field(min_length=1, max_length=200)

    bus = EventBus("memory://", source="shop")
    bus.declare(OrderPlaced, OrderCancelled, ShipOrder)
    document = generate_asyncapi(bus, title="Shop")
    contract = folder / f"{tag}.yaml"
    contract.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return Domain(tag, OrderPlaced, OrderCancelled, ShipOrder, contract)
