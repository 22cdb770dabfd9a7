"""`eventwire flow`: the graph, the Mermaid text and the SVG picture."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from click.testing import CliRunner
from eventwire.flow import (
    NOBODY,
    build_graph,
    participant_from_asyncapi,
    participant_from_bus,
    to_mermaid,
    to_svg,
)
from eventwire.flow.cli import flow

E = "docs.examples.order_processing"
CHOREOGRAPHY = [f"{E}.choreography.{s}:bus" for s in ("order", "inventory", "payment", "shipping")]
ORCHESTRATION = [
    f"{E}.orchestration.{s}:bus" for s in ("order", "inventory", "payment", "shipping")
]


def test_choreography_graph_connects_publishers_to_consumers() -> None:
    from docs.examples.order_processing.choreography import inventory, order, payment

    graph = build_graph(participant_from_bus(m.bus) for m in (order, inventory, payment))
    pairs = {(e.source, e.target, m) for e in graph.edges for m in e.messages}
    assert ("order", "inventory", "OrderPlaced") in pairs
    assert ("payment", "inventory", "PaymentDeclined") in pairs
    assert ("payment", "order", "PaymentDeclined") in pairs
    assert ("payment", NOBODY, "PaymentCharged") in pairs  # shipping not given
    assert all(e.kind == "event" for e in graph.edges)


def test_mermaid_text_of_the_orchestration(tmp_path: Path) -> None:
    result = CliRunner().invoke(flow, [*ORCHESTRATION, "--format", "mermaid", "--no-unconsumed"])
    assert result.exit_code == 0, result.output
    text = result.output
    assert text.startswith("flowchart LR\n")
    assert 'order -.->|"ChargePayment<br/>RefundPayment"| payment' in text
    assert 'payment -->|"PaymentCharged<br/>PaymentDeclined<br/>PaymentRefunded"| order' in text
    assert "no_consumer" not in text


def test_svg_picture_is_well_formed_and_names_everything(tmp_path: Path) -> None:
    out = tmp_path / "flow.svg"
    result = CliRunner().invoke(flow, [*CHOREOGRAPHY, "-o", str(out), "--title", "T"])
    assert result.exit_code == 0, result.output
    root = ET.fromstring(out.read_text())
    texts = {t.text for t in root.iter("{http://www.w3.org/2000/svg}text")}
    assert {
        "order",
        "inventory",
        "payment",
        "shipping",
        "OrderPlaced",
        "ItemShipped",
        "InventoryReservationFailed",
        NOBODY,
    } <= texts
    paths = [
        p
        for p in root.iter("{http://www.w3.org/2000/svg}path")
        if p.get("marker-end") == "url(#arrow-event)"
    ]
    assert len(paths) >= 9  # one per arrow, plus the legend


def test_asyncapi_documents_are_read_like_buses() -> None:
    doc = {
        "asyncapi": "3.0.0",
        "info": {"title": "billing", "version": "1"},
        "channels": {
            "orders": {
                "address": "orders",
                "messages": {"OrderPlaced": {"name": "OrderPlaced", "payload": {"type": "object"}}},
            },
            "bills": {"address": "bills", "messages": {"Billed": {"payload": {}}}},
        },
        "operations": {
            "onOrder": {
                "action": "receive",
                "channel": {"$ref": "#/channels/orders"},
                "messages": [{"$ref": "#/channels/orders/messages/OrderPlaced"}],
            },
            "sendBilled": {"action": "send", "channel": {"$ref": "#/channels/bills"}},
        },
    }
    billing = participant_from_asyncapi(doc)
    assert billing.name == "billing"
    assert billing.consumes == {"OrderPlaced": "event"}
    assert billing.publishes == {"Billed": "event"}
    from docs.examples.order_processing.choreography import order

    graph = build_graph([participant_from_bus(order.bus), billing], unconsumed=False)
    assert any(
        e.source == "order" and e.target == "billing" and "OrderPlaced" in e.messages
        for e in graph.edges
    )
    assert "billing" in to_mermaid(graph) and "<svg" in to_svg(graph)


def test_flow_reads_the_reference_contracts() -> None:
    contracts = sorted(Path("contracts").glob("order-service.v1.yaml"))
    if not contracts:
        return
    result = CliRunner().invoke(
        flow, [str(contracts[0]), *ORCHESTRATION[1:], "--format", "mermaid"]
    )
    assert result.exit_code == 0, result.output
    assert "ReserveInventory" in result.output


def test_a_bad_source_is_a_clear_error() -> None:
    result = CliRunner().invoke(flow, ["no_such_module:bus"])
    assert result.exit_code != 0
    assert "cannot import" in str(result.exception)
