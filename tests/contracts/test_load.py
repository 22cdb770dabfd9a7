"""load_validator: payload validation against a contract, and broken contract files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from eventwire import Event, EventBus, EventValidationError
from eventwire.contracts import load_validator
from eventwire.errors import ContractError

from .conftest import V1

pytestmark = pytest.mark.anyio

GOOD = {
    "order_id": "o-1",
    "customer_id": "c-1",
    "lines": [{"sku": "SKU-1", "quantity": 1, "unit_price": "9.90"}],
    "total": "9.90",
    "currency": "EUR",
    "placed_at": "2024-05-01T12:00:00Z",
}


def test_valid_payload_has_no_errors() -> None:
    validator = load_validator(V1)
    assert validator.errors("OrderPlaced", json.dumps(GOOD).encode()) == []


def test_errors_name_json_paths() -> None:
    bad = {**GOOD, "currency": "CHF", "lines": [{"sku": "", "quantity": 0, "unit_price": 1}]}
    del bad["order_id"]
    errors = load_validator(V1).errors("OrderPlaced", json.dumps(bad).encode())
    assert any(e.startswith("$.currency:") and "CHF" in e for e in errors)
    assert any(e.startswith("$.lines[0].quantity:") for e in errors)
    assert any(e.startswith("$.lines[0].sku:") for e in errors)
    assert any(e.startswith("$:") and "'order_id' is a required property" in e for e in errors)


def test_unknown_type_is_one_error_naming_type_and_file() -> None:
    errors = load_validator(V1).errors("OrderTeleported", b"{}")
    assert len(errors) == 1
    assert "OrderTeleported" in errors[0] and str(V1) in errors[0]


def test_not_json() -> None:
    assert (
        load_validator(V1).errors("OrderPlaced", b"{nope")[0].startswith("$: payload is not JSON")
    )


# -- broken contract files ---------------------------------------------------------------------


def _write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _v1() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(V1.read_text())
    return loaded


BROKEN = {
    "malformed-yaml": ("asyncapi: 3.0.0\ninfo: [unclosed\n", ["not valid YAML/JSON (line"]),
    "malformed-json": ('{"asyncapi": "3.0.0",\n "info": }', ["not valid JSON (line 2"]),
    "asyncapi-2": (
        "asyncapi: 2.6.0\ninfo: {title: x, version: '1'}\nchannels: {}\n",
        ["$.asyncapi is '2.6.0'", "3.0.0"],
    ),
    "not-a-mapping": ("- a\n- b\n", ["mapping"]),
    "no-asyncapi": ("info: {title: x}\n", ["not an AsyncAPI document"]),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_files_raise_contract_error(tmp_path: Path, case: str) -> None:
    text, expected = BROKEN[case]
    path = _write(tmp_path, text, "c.json" if case == "malformed-json" else "c.yaml")
    with pytest.raises(ContractError) as info:
        load_validator(path)
    message = str(info.value)
    assert str(path) in message
    for part in expected:
        assert part in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match="no such contract file"):
        load_validator(tmp_path / "absent.yaml")


def test_dangling_ref(tmp_path: Path) -> None:
    doc = _v1()
    doc["components"]["messages"]["OrderPlaced"]["payload"] = {
        "$ref": "#/components/schemas/Nowhere"
    }
    path = _write(tmp_path, yaml.safe_dump(doc))
    with pytest.raises(ContractError) as info:
        load_validator(path)
    assert str(path) in str(info.value)
    assert "$.components.messages.OrderPlaced.payload.$ref" in str(info.value)
    assert "Nowhere" in str(info.value)


def test_invalid_json_schema(tmp_path: Path) -> None:
    doc = _v1()
    doc["components"]["schemas"]["OrderPlaced"]["properties"]["total"] = {"type": "decimal"}
    path = _write(tmp_path, yaml.safe_dump(doc))
    with pytest.raises(ContractError) as info:
        load_validator(path)
    assert "$.components.schemas.OrderPlaced.properties.total" in str(info.value)


# -- EventBus(contract=...) --------------------------------------------------------------------


class OrderPlaced(Event, channel="orders", key="order_id"):
    order_id: str
    customer_id: str


async def test_bus_refuses_to_publish_what_breaks_the_contract() -> None:
    bus = EventBus("memory://contract-test", source="shop", contract=V1)
    async with bus:
        with pytest.raises(EventValidationError, match=r"breaks its contract.*\$: 'lines'"):
            await bus.publish(OrderPlaced(order_id="o-1", customer_id="c-1"))


def test_bus_with_broken_contract_fails_at_construction(tmp_path: Path) -> None:
    path = _write(tmp_path, "asyncapi: 2.0.0\ninfo: {title: x, version: '1'}\n")
    with pytest.raises(ContractError, match=r"2\.0\.0"):
        EventBus("memory://", contract=path)
