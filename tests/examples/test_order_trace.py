"""One trace per order across the reference system's processes, on each real broker.

The orchestration version's four services run as processes exporting their spans to files
(`docs/examples/order_processing/trace.py`); this process places a completed and a
declined order. The exported spans must form, per order, one connected trace holding every
service the order went through, with the saga's compensation of the declined payment in
its causal chain.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from docs.examples.order_processing.trace import CLIENT, Span, load, run, to_svg, trace_of
from tests.examples._turns import one_run_at_a_time

pytestmark = [pytest.mark.broker, pytest.mark.slow]

URLS = {
    "kafka": ("EVENTWIRE_KAFKA_URL", "kafka://127.0.0.1:9092", "kafka"),
    "nats": ("EVENTWIRE_NATS_URL", "nats://127.0.0.1:4222", "nats"),
    "rabbit": ("EVENTWIRE_RABBIT_URL", "amqp://guest:guest@127.0.0.1:5672/", "rabbitmq"),
    "redis": ("EVENTWIRE_REDIS_URL", "redis://127.0.0.1:6379/0", "redis"),
}

#: The declined order's causal chain: (service, span name, message type), root first,
#: down to the order service announcing the cancellation.
DECLINED_CHAIN = [
    (CLIENT, "send orders", "OrderPlaced"),
    ("order", "process orders", "OrderPlaced"),
    ("order", "saga order reserve", ""),
    ("order", "send inventory.commands", "ReserveInventory"),
    ("inventory", "process inventory.commands", "ReserveInventory"),
    ("inventory", "send inventory", "InventoryReserved"),
    ("order", "process inventory", "InventoryReserved"),
    ("order", "saga order charge", ""),
    ("order", "send payments.commands", "ChargePayment"),
    ("payment", "process payments.commands", "ChargePayment"),
    ("payment", "send payments", "PaymentDeclined"),
    ("order", "process payments", "PaymentDeclined"),
    ("order", "saga order compensate reserve", ""),
    ("order", "send inventory.commands", "ReleaseInventory"),
    ("inventory", "process inventory.commands", "ReleaseInventory"),
    ("inventory", "send inventory", "InventoryReleased"),
    ("order", "process inventory", "InventoryReleased"),
    ("order", "saga order failed", ""),
    ("order", "send orders", "OrderCancelled"),
]
#: The consumer groups of each service (the order service's orchestrator takes the starting
#: event in ``<group>.<saga>``, the replies in ``<group>``).
GROUPS = {
    "order": {"order", "order.order"},
    "inventory": {"inventory"},
    "payment": {"payment"},
    "shipping": {"shipping"},
}


def _chain_to(spans: list[Span], leaf: Span) -> list[Span]:
    by_id = {s.span_id: s for s in spans}
    chain = [leaf]
    while chain[-1].parent_id is not None:
        parent = by_id.get(chain[-1].parent_id)
        assert parent is not None, f"{chain[-1].name} has a parent outside the trace"
        chain.append(parent)
    return chain[::-1]


def _check_connected(spans: list[Span]) -> None:
    roots = [s for s in spans if s.parent_id is None]
    assert [(r.service, r.name) for r in roots] == [(CLIENT, "send orders")]
    ids = {s.span_id for s in spans}
    dangling = [s.name for s in spans if s.parent_id is not None and s.parent_id not in ids]
    assert not dangling, f"spans whose parent is not in the trace: {dangling}"


@pytest.mark.parametrize("broker", sorted(URLS))
def test_one_trace_per_order_across_the_service_processes(broker: str, tmp_path: Path) -> None:
    variable, default, system = URLS[broker]
    url = os.environ.get(variable) or default
    with one_run_at_a_time(url):
        completed_id, declined_id = run(url, tmp_path)
    spans = load(tmp_path.glob("*.jsonl"))

    completed = trace_of(spans, completed_id)
    _check_connected(completed)
    assert {s.service for s in completed} == {CLIENT, "order", "inventory", "payment", "shipping"}

    declined = trace_of(spans, declined_id)
    _check_connected(declined)
    assert {s.service for s in declined} == {CLIENT, "order", "inventory", "payment"}
    (cancelled,) = [s for s in declined if s.message_type == "OrderCancelled"]
    chain = _chain_to(declined, cancelled)
    assert [(s.service, s.name, s.message_type) for s in chain] == DECLINED_CHAIN
    for span in declined:
        if span.kind in ("PRODUCER", "CONSUMER"):
            assert span.attributes["messaging.system"] == system
            assert span.attributes["messaging.message.conversation_id"] == declined_id
        if span.kind == "CONSUMER":
            assert span.attributes["messaging.consumer.group.name"] in GROUPS[span.service]
        if span.name.startswith("saga "):
            assert span.kind == "INTERNAL"
            assert span.attributes["eventwire.saga.id"] == declined_id
    svg = to_svg(declined, "t")
    assert svg.count("<title>") == len(declined) and "compensate reserve" in svg
