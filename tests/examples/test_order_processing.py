"""The reference system on memory://: all four services in one process, both versions."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from eventwire.saga import SqliteSagaStore

from docs.examples.order_processing._logic import Payments
from docs.examples.order_processing.observer import Observer, wait_for
from docs.examples.order_processing.orchestration.payment import PaymentService
from docs.examples.order_processing.system import MODES, Mode, build, make_order

pytestmark = pytest.mark.anyio


def _url() -> str:
    return f"memory://ex{uuid.uuid4().hex[:12]}"


@pytest.mark.parametrize("mode", MODES)
async def test_happy_path(mode: Mode) -> None:
    url = _url()
    system, seen = build(mode, url), Observer(url)
    async with seen.bus, system:
        await system.place(make_order(1))
        await wait_for(lambda: seen.finished({"ord-00001"}))
    assert seen.completed == {"ord-00001"} and not seen.cancelled
    assert system.payments.charges("ord-00001") == 1
    assert system.shipping.ledger.count("parcel", "ord-00001") == 1
    assert system.inventory.stock["SKU-1042"] == system.inventory.default_stock - 1


@pytest.mark.parametrize("mode", MODES)
async def test_declined_payment_releases_stock_and_cancels(mode: Mode) -> None:
    url = _url()
    system = build(mode, url, payments=Payments(limit=Decimal(100)))
    seen = Observer(url)
    async with seen.bus, system:
        await system.place(make_order(1, "250.00"))  # over the limit: declined
        await system.place(make_order(2, "20.00"))
        await wait_for(lambda: seen.finished({"ord-00001", "ord-00002"}))
        await wait_for(lambda: "ord-00001" in seen.released)
    assert seen.completed == {"ord-00002"} and set(seen.cancelled) == {"ord-00001"}
    assert system.payments.charges("ord-00001") == 0
    assert system.inventory.ledger.count("release", "ord-00001") == 1
    assert system.inventory.stock["SKU-1042"] == system.inventory.default_stock - 1


@pytest.mark.parametrize("mode", MODES)
async def test_duplicate_order_placed_charges_once(mode: Mode) -> None:
    url = _url()
    system, seen = build(mode, url), Observer(url)
    async with seen.bus, system:
        order = make_order(7)
        await system.place(order)
        await system.place(order)  # the same order published again (new event id)
        # and the very same event delivered twice (same id), as a redelivery does
        sent = await system.order.bus.backend.browse("orders", 10)
        await system.order.bus.backend.publish("orders", sent[:1])
        await wait_for(lambda: seen.finished({"ord-00007"}))
        await asyncio.sleep(0.2)
    assert system.payments.charges("ord-00007") == 1
    assert system.inventory.ledger.count("reservation", "ord-00007") == 1
    assert system.inventory.stock["SKU-1042"] == system.inventory.default_stock - 1
    assert len(seen.payment_ids["ord-00007"]) == 1


async def test_orchestrator_restarted_mid_saga_resumes(tmp_path: Path) -> None:
    url, db = _url(), tmp_path / "sagas.db"
    first = build("orchestration", url, saga_store=SqliteSagaStore(db))
    async with first.buses[1]:  # payment's group exists, then payment goes down
        pass
    seen = Observer(url)
    async with seen.bus:
        # everything but payment runs; the saga stops at the charge step
        for bus in (first.buses[0], first.buses[2], first.order.bus):
            await bus.start()
        await first.order.orchestrator.start()
        await first.place(make_order(3))
        await wait_for(lambda: first.inventory.ledger.count("reservation") == 1)
        await asyncio.sleep(0.1)
        assert await first.order.status("ord-00003") == "running"
        await first.order.orchestrator.close()
        await first.order.bus.abort()  # the order service crashes
        # payment comes up and charges; a new order service process resumes the saga
        payment_bus = PaymentService(url, first.payments).bus
        await payment_bus.start()
        second = build(
            "orchestration",
            url,
            saga_store=SqliteSagaStore(db),
            payments=first.payments,
            inventory=first.inventory,
        )
        async with second.order.bus, second.order.orchestrator:
            await wait_for(lambda: seen.finished({"ord-00003"}))
            assert await second.order.status("ord-00003") == "completed"
        for bus in (first.buses[0], first.buses[2], payment_bus):
            await bus.close()
    assert seen.completed == {"ord-00003"}
    assert first.payments.charges("ord-00003") == 1
