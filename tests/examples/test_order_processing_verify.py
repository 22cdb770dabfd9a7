"""Proof on the reference system: the order-processing example, running on a real broker,
sends only what its contract (``contracts/order-processing.yaml``) allows — ``contracts
verify`` watching its channels sees zero violations — while the same traffic, checked against
``contracts/order-service.v1.yaml`` (which predates the compensation messages), is not
accepted: the check can fail."""

from __future__ import annotations

import asyncio
import os
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from eventwire.cli import cli
from eventwire.contracts import VerifyReport, load_document, verify_live

from docs.examples.order_processing._logic import Payments
from docs.examples.order_processing.observer import Observer, wait_for
from docs.examples.order_processing.system import MODES, Mode, build, make_order

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


@pytest.mark.broker
@pytest.mark.parametrize("mode", MODES)
def test_live_traffic_of_the_example_conforms(mode: Mode) -> None:
    prefix = f"v{uuid.uuid4().hex[:6]}"
    orders = [
        make_order(n, "900.00" if n % 4 == 0 else "40.00", prefix=prefix) for n in range(ORDERS)
    ]
    ids = {o.order_id for o in orders}

    async def main() -> tuple[VerifyReport, VerifyReport]:
        stop, ready = asyncio.Event(), [asyncio.Event(), asyncio.Event()]
        watchers = [
            asyncio.create_task(
                verify_live(
                    load_document(doc),
                    NATS,
                    source=doc.name,
                    stop=stop,
                    duration=120,
                    on_ready=lambda _, e=event: e.set(),
                )
            )
            for doc, event in zip((SYSTEM, V1), ready, strict=True)
        ]
        for event in ready:
            await asyncio.wait_for(event.wait(), 60)
        seen = Observer(NATS, group=f"observer-{prefix}")
        async with seen.bus, build(mode, NATS, payments=Payments(limit=Decimal(500))) as system:
            for order in orders:
                await system.place(order)
            await wait_for(lambda: seen.finished(ids), timeout=60, what="every order ended")
            await asyncio.sleep(0.5)  # the last follow-ups reach the watchers
        stop.set()
        system_report, v1_report = await asyncio.gather(*watchers)
        return system_report, v1_report

    system_report, v1_report = asyncio.run(main())
    assert system_report.violations == [], [
        (s.channel, s.type, s.problems) for s in system_report.violations
    ]
    types = {s.type for s in system_report.seen}
    assert {
        "OrderPlaced",
        "OrderCompleted",
        "OrderCancelled",
        "InventoryReserved",
        "InventoryReleased",
        "PaymentCharged",
        "PaymentDeclined",
        "ItemShipped",
    } <= types
    assert len(system_report.seen) >= ORDERS * 5
    undeclared = {s.type for s in v1_report.violations if s.problems[0].rule == "type"}
    assert {"OrderCompleted", "InventoryReleased"} <= undeclared
