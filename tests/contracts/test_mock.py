"""``eventwire contracts mock``: the messages a contract sends, published as a producer would,
are received by an eventwire consumer and pass ``contracts verify``."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from eventwire import Event, EventBus
from eventwire.contracts._load import load_document
from eventwire.contracts._mock import GENERATED_PER_MESSAGE, plan, run_mock
from eventwire.contracts._verify import VerifyReport, verify_live

from tests.contracts._live import contract

pytestmark = pytest.mark.anyio

NATS = os.environ.get("EVENTWIRE_NATS_URL") or "nats://127.0.0.1:4222"


async def _verify(path: Path, url: str, count: int) -> VerifyReport:
    return await verify_live(
        load_document(path), url, from_beginning=True, count=count, duration=30
    )


async def test_examples_reach_an_eventwire_consumer(tmp_path: Path) -> None:
    path, orders, _ = contract(tmp_path)
    url = f"memory://mock-{uuid.uuid4().hex[:8]}"

    class OrderPlaced(Event, channel=orders, key="order_id"):
        order_id: str
        total: float
        currency: str

    class OrderCancelled(Event, channel=orders, key="order_id"):
        order_id: str
        reason: str

    received: list[tuple[Event, str | None]] = []

    bus = EventBus(url, source="shop-frontend")

    @bus.subscribe(OrderPlaced, group="frontend", from_beginning=True)
    async def placed(event: OrderPlaced) -> None:
        received.append((event, event.message_key()))

    @bus.subscribe(OrderCancelled, group="frontend", from_beginning=True)
    async def cancelled(event: OrderCancelled) -> None:
        received.append((event, event.message_key()))

    async with bus:
        report = await run_mock(load_document(path), url, source=str(path))
        assert report.total == 2
        for _ in range(200):
            if len(received) == 2:
                break
            await asyncio.sleep(0.02)
    assert sorted(type(e).__name__ for e, _ in received) == ["OrderCancelled", "OrderPlaced"]
    order = next(e for e, _ in received if isinstance(e, OrderPlaced))
    assert (order.order_id, order.total, order.currency) == ("ord-1", 12.5, "EUR")
    assert {key for _, key in received} == {"ord-1"}


async def test_count_and_generated_messages_conform(tmp_path: Path) -> None:
    path, _, _ = contract(tmp_path)
    url = f"memory://mock-{uuid.uuid4().hex[:8]}"
    document = load_document(path)
    cycled = await run_mock(document, url, count=5)
    assert cycled.total == 5
    planned = plan(document, generated=True)
    # every enum member and both messages, beyond the two examples
    assert {m.payload.get("currency") for m in planned if m.name == "OrderPlaced"} >= {
        "EUR",
        "USD",
    }
    assert {m.payload["reason"] for m in planned if m.name == "OrderCancelled"} == {
        "out-of-stock",
        "customer",
    }
    assert len(planned) >= 2 + 2 * GENERATED_PER_MESSAGE
    assert len({json.dumps(m.payload, sort_keys=True) for m in planned}) == len(planned)
    six = plan(document, generated=True, count=6)
    assert [m.name for m in six[:2]] == ["OrderPlaced", "OrderCancelled"]  # the examples
    assert len(six) == 6 and len({json.dumps(m.payload, sort_keys=True) for m in six}) == 6
    generated = await run_mock(document, url, messages=planned)
    assert generated.total == len(planned)
    report = await _verify(path, url, 5 + generated.total)
    assert len(report.seen) == 5 + generated.total
    assert report.violations == [], [s.problems for s in report.violations]
    assert len({s.id for s in report.seen}) == len(report.seen)  # fresh ids


def test_cli_progress_and_summary(tmp_path: Path, run: Callable[..., Result]) -> None:
    path, orders, _ = contract(tmp_path)
    url = f"memory://mock-{uuid.uuid4().hex[:8]}"
    result = run("contracts", "mock", path, url, "--count", "4", "--rate", "200")
    assert result.exit_code == 0, result.output
    assert f"{orders}: 2 x OrderPlaced" in result.output
    assert f"{orders}: 2 x OrderCancelled" in result.output
    assert "published 4 message(s)" in result.output
    # kept sync: the CLI starts its own event loop, which cannot run inside a running one
    assert asyncio.run(_verify(path, url, 4)).exit_code() == 0


def test_bad_input(tmp_path: Path, run: Callable[..., Result]) -> None:
    path, _, _ = contract(tmp_path)
    receive_only = tmp_path / "receive-only.yaml"
    receive_only.write_text(path.read_text().replace("action: send", "action: receive"))
    for args, says in (
        ((receive_only, "memory://"), "no send operation"),
        ((path, "kafka://127.0.0.1:1"), "kafka"),
    ):
        result = run("contracts", "mock", *args)
        assert result.exit_code == 2, result.output
        assert says in result.output.lower()
        assert len(result.output.strip().splitlines()) == 1, result.output


@pytest.mark.broker
async def test_nats_mock_while_verify_watches(tmp_path: Path) -> None:
    path, _, _ = contract(tmp_path)
    document = load_document(path)

    ready = asyncio.Event()
    watching = asyncio.create_task(
        verify_live(document, NATS, count=12, duration=60, on_ready=lambda _: ready.set())
    )
    await asyncio.wait_for(ready.wait(), 60)
    await run_mock(document, NATS, generated=True, count=12)
    report = await watching
    assert len(report.seen) == 12
    assert report.violations == []
