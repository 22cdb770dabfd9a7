"""The cost of checking a payload against an attached contract (``EventBus(contract=...)``).

Per event, `ContractValidator.errors` on valid payloads: the benchmark's own payload and an
``OrderPlaced`` shaped like the reference domain's (``contracts/reference_app.py``: nested
lines, decimals as strings, an enum, an RFC 3339 time). The contract is the one eventwire
generates for these models. Timed twice: as eventwire runs it (the compiled check answers)
and with jsonschema alone (what it cost before the compiled check).

The figure is the fastest of several rounds, as `timeit` advises for CPU-bound code: the
check does the same work every round, and what makes a round slower is other work on the
machine (after a drain, the broker's own clean-up shares the cores for a while).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Literal

from eventwire import Event, EventBus
from eventwire.contracts import generate_asyncapi
from eventwire.contracts._load import ContractValidator
from pydantic import BaseModel, Field

from eventwire_conformance.bench.eventwire_runner import channel_model
from eventwire_conformance.bench.model import PayloadFactory

__all__ = ["TARGET_US", "ValidationCost", "measure_validation"]

#: The target: under this many microseconds per event.
TARGET_US = 5.0


class _Line(BaseModel):
    sku: str = Field(min_length=1)
    quantity: int = Field(ge=1)
    unit_price: Decimal = Field(ge=0)


class _OrderPlaced(Event, channel="bench-validation-orders", key="order_id", type="OrderPlaced"):
    order_id: str
    customer_id: str
    lines: list[_Line] = Field(min_length=1)
    total: Decimal = Field(ge=0)
    currency: Literal["EUR", "USD", "GBP"] = "EUR"
    placed_at: datetime = Field(strict=True)


ORDER = {
    "order_id": "ord-7f3a",
    "customer_id": "cus-118",
    "lines": [{"sku": "SKU-1042", "quantity": 2, "unit_price": "19.90"}],
    "total": "39.80",
    "currency": "EUR",
    "placed_at": "2024-05-01T12:00:00Z",
}


@dataclasses.dataclass(frozen=True, slots=True)
class ValidationCost:
    """Microseconds per valid event (fastest of the rounds), per message."""

    #: message type -> (compiled, jsonschema alone)
    per_message: dict[str, tuple[float, float]]

    @property
    def worst(self) -> float:
        return max(compiled for compiled, _ in self.per_message.values())

    @property
    def met(self) -> bool:
        return self.worst < TARGET_US


def _time(validator: ContractValidator, kind: str, bodies: Sequence[bytes], rounds: int) -> float:
    errors = validator.errors
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for body in bodies:
            if errors(kind, body):
                raise AssertionError(f"{kind}: a valid payload was refused: {errors(kind, body)}")
        samples.append((time.perf_counter() - start) / len(bodies) * 1e6)
    return min(samples)


def measure_validation(payloads: PayloadFactory, events: int = 5_000) -> ValidationCost:
    """Time `ContractValidator.errors` on `events` valid payloads of each message."""
    bench = channel_model("bench-validation")
    bus = EventBus("memory://bench-validation", source="eventwire-bench")
    bus.declare(bench, _OrderPlaced)
    document = generate_asyncapi(bus)
    fast = ContractValidator(document, "<generated>")
    slow = ContractValidator(document, "<generated>")
    slow._compiled.clear()
    inputs = {
        "BenchEvent": [payloads.body(seq) for seq in range(events)],
        "OrderPlaced": [
            json.dumps({**ORDER, "order_id": f"ord-{i}"}).encode() for i in range(events)
        ],
    }
    result = {}
    for kind, bodies in inputs.items():
        compiled = _time(fast, kind, bodies, rounds=5)
        alone = _time(slow, kind, bodies[: max(1, len(bodies) // 10)], rounds=1)
        result[kind] = (compiled, alone)
    return ValidationCost(result)
