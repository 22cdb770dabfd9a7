"""``eventwire contracts lint`` and ``eventwire contracts codegen`` (with a round trip)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import Result
from eventwire.contracts import lint_document

from .conftest import V1, V2, V3


def _v1() -> dict[str, Any]:
    return yaml.safe_load(V1.read_text())  # type: ignore[no-any-return]


def test_reference_contracts_have_no_findings(run: Callable[..., Result]) -> None:
    result = run("contracts", "lint", V1, V2, V3)
    assert result.exit_code == 0, result.output
    assert result.output.count("no findings") == 3


def test_rules() -> None:
    doc = _v1()
    messages = doc["components"]["messages"]
    messages["OrderPlaced"]["x-eventwire-kind"] = "event"
    messages["OrderPlaced"]["name"] = "PlaceOrder"  # an event named like a command
    messages["ShipOrder"]["name"] = "OrderShipped"  # a command named like an event
    del messages["PaymentDeclined"]["x-eventwire-version"]
    del messages["PaymentCharged"]["traits"]
    messages["ItemShipped"]["examples"][0]["payload"]["carrier"] = 42
    del messages["InventoryReserved"]["examples"]
    found = {(f.rule, f.severity) for f in lint_document(doc)}
    assert ("event-past-tense", "error") in found
    assert ("command-imperative", "error") in found
    assert ("message-versioned", "error") in found
    assert ("envelope-headers", "error") in found
    assert ("examples-valid", "error") in found
    assert ("examples-present", "warning") in found
    paths = [f.path for f in lint_document(doc) if f.rule == "examples-valid"]
    assert paths == ["$.components.messages.ItemShipped.examples[0].payload.carrier"]


def test_cli_lint_exits_1_on_errors(run: Callable[..., Result], tmp_path: Path) -> None:
    doc = _v1()
    del doc["components"]["messages"]["PaymentDeclined"]["x-eventwire-version"]
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(doc))
    result = run("contracts", "lint", path)
    assert result.exit_code == 1
    assert "message-versioned" in result.output


@pytest.mark.parametrize("contract", [V1, V2, V3])
def test_codegen_round_trip(run: Callable[..., Result], tmp_path: Path, contract: Path) -> None:
    module = tmp_path / f"generated_{contract.stem.replace('.', '_').replace('-', '_')}.py"
    assert run("contracts", "codegen", contract, "-o", module).exit_code == 0
    again = tmp_path / "again.yaml"
    result = run("asyncapi", "generate", f"{module}:bus", "-o", again)
    assert result.exit_code == 0, result.output
    result = run("contracts", "diff", contract, again, "--mode", "full")
    assert result.exit_code == 0, result.output
    text = module.read_text()
    assert "class OrderPlaced(Event, channel='orders', key='order_id'" in text
    assert "class ShipOrder(Command, channel='shipping" in text
