"""Proof on the reference system: the order-processing example, running on a real broker,
sends only what its contract (``contracts/order-processing.yaml``) allows — ``contracts
verify`` watching its channels sees zero violations — while the same traffic, checked against
``contracts/order-service.v1.yaml`` (which predates the compensation messages), is not
accepted: the check can fail."""

from __future__ import annotations

import asyncio
import functools
import os
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from eventwire.cli import cli
from eventwire.contracts import load_document, verify_live
from eventwire.contracts._verify import Seen

from docs.examples.order_processing._logic import Payments
from docs.examples.order_processing.observer import wait_for
from docs.examples.order_processing.system import MODES, Mode, build, make_order
from tests.examples._turns import one_run_at_a_time

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
SYSTEM = ROOT / "contracts/order-processing.yaml"
V1 = ROOT / "contracts/order-service.v1.yaml"
NATS = os.environ.get("EVENTWIRE_NATS_URL") or "nats://127.0.0.1:4222"
ORDERS = 8


def test_the_system_contract_is_the_one_generated_from_the_domain() -> None:
    result = CliRunner().invoke(
        cli, ["contracts", "check", "docs.examples.order_processing.contract:bus", str(SYSTEM)]
    )
    assert result.exit_code == 0, result.output


EXPECTED = {
    "OrderPlaced",
    "OrderCompleted",
    "OrderCancelled",
    "InventoryReserved",
    "InventoryReleased",
    "PaymentCharged",
    "PaymentDeclined",
    "ItemShipped",
}


@pytest.mark.broker
@pytest.mark.parametrize("mode", MODES)
async def test_live_traffic_of_the_example_conforms(mode: Mode) -> None:
    # the services' groups are fixed names: another run of them on this broker would take
    # this run's events (and this one theirs)
    with one_run_at_a_time(NATS):
        await _live_traffic_conforms(mode)


async def _live_traffic_conforms(mode: Mode) -> None:
    prefix = f"v{uuid.uuid4().hex[:6]}"
    orders = [
        make_order(n, "900.00" if n % 4 == 0 else "40.00", prefix=prefix) for n in range(ORDERS)
    ]
    ids = {o.order_id for o in orders}
    # the channels are shared with anything else running on the broker: look at this run's
    # messages (their key is the order id)
    ours: dict[str, list[Seen]] = {"system": [], "v1": []}

    def keep(name: str) -> Callable[[Seen], None]:
        return lambda seen: ours[name].append(seen) if (seen.key or "") in ids else None

    def types(name: str) -> set[str | None]:
        return {s.type for s in ours[name]}

    stop, ready = asyncio.Event(), [asyncio.Event(), asyncio.Event()]
    watchers = [
        asyncio.create_task(
            verify_live(
                load_document(doc),
                NATS,
                source=doc.name,
                stop=stop,
                duration=180,
                on_message=keep(name),
                on_ready=functools.partial(_set, event),
            )
        )
        for doc, name, event in zip((SYSTEM, V1), ours, ready, strict=True)
    ]
    for event in ready:
        await asyncio.wait_for(event.wait(), 60)
    async with build(mode, NATS, payments=Payments(limit=Decimal(500))) as system:
        for order in orders:
            await system.place(order)
        await wait_for(
            lambda: types("system") >= EXPECTED and types("v1") >= EXPECTED,
            timeout=120,
            what="every kind of message of the flow seen",
        )
    stop.set()
    await asyncio.gather(*watchers)
    bad = [(s.channel, s.type, s.problems) for s in ours["system"] if s.problems]
    assert bad == []
    assert len({s.key for s in ours["system"]}) == ORDERS
    undeclared = {s.type for s in ours["v1"] if s.problems and s.problems[0].rule == "type"}
    assert {"OrderCompleted", "InventoryReleased"} <= undeclared


def _set(event: asyncio.Event, _report: object) -> None:
    event.set()
