"""The reference system honours its contracts (``eventwire contracts test``, in process).

- the order service of ``contracts/reference_app.py`` against the reference contracts
  ``contracts/order-service.v1.yaml`` and ``.v2.yaml``;
- each service of ``docs/examples/order_processing`` against its contract in
  ``contracts/order-processing/`` (generated from the code, ``x-eventwire-emits`` included),
  which must also still match the code (``contracts check``).
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from eventwire.contracts import check_bus, load_document
from eventwire.contracts._bus_target import load_bus
from eventwire.testing.contract import assert_honours_contract

ROOT = Path(__file__).resolve().parents[2]
SERVICES = sorted((ROOT / "contracts" / "order-processing").glob("*.yaml"))


def _service(contract: Path) -> str:
    mode, service = contract.stem.split("-", 1)
    return f"docs.examples.order_processing.{mode}.{service}"


@pytest.mark.parametrize("contract", SERVICES, ids=[c.stem for c in SERVICES])
@pytest.mark.anyio
async def test_each_service_honours_its_contract(contract: Path) -> None:
    bus = importlib.import_module(_service(contract)).bus
    problems = check_bus(bus, load_document(contract))
    assert [p for p in problems if p.severity == "error"] == []
    await assert_honours_contract(bus, contract, max_cases=3, timeout=0.5)


@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.anyio
async def test_the_reference_order_service_honours_the_reference_contracts(version: str) -> None:
    bus = load_bus(f"{ROOT / 'contracts' / 'reference_app.py'}:bus")
    contract = ROOT / "contracts" / f"order-service.{version}.yaml"
    await assert_honours_contract(bus, contract, max_cases=3, timeout=0.5)
