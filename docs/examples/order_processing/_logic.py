"""What the services do, apart from messaging: stock, charges, parcels, in a small ledger.

Each service records its effects per order in a `Ledger` (SQLite: a file, or memory). The
ledger makes the effects idempotent by business key: a second ``OrderPlaced`` for the same
order, or a redelivery after a crash, finds the first outcome and repeats it instead of
reserving, charging or shipping again.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
import zlib
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from docs.examples.order_processing.domain import OrderLine

NAMESPACE = uuid.UUID("6f1c1d3e-6d0c-4b7e-9a55-0c9d8f1e2a10")


class Ledger:
    """Effects per (kind, order id), append-only, in SQLite (``":memory:"`` by default)."""

    def __init__(self, path: str = ":memory:") -> None:
        self._db = sqlite3.connect(path, isolation_level=None, timeout=30.0)
        if path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS ledger (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
            "kind TEXT NOT NULL, order_id TEXT NOT NULL, record TEXT NOT NULL)"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS ledger_order ON ledger(kind, order_id)")

    def get(self, kind: str, order_id: str) -> dict[str, Any] | None:
        """The first record of `kind` for `order_id`."""
        row = self._db.execute(
            "SELECT record FROM ledger WHERE kind = ? AND order_id = ? ORDER BY seq LIMIT 1",
            (kind, order_id),
        ).fetchone()
        return json.loads(row[0]) if row is not None else None

    def add(self, kind: str, order_id: str, record: dict[str, Any]) -> None:
        """Append a record (committed at once)."""
        self._db.execute(
            "INSERT INTO ledger (kind, order_id, record) VALUES (?, ?, ?)",
            (kind, order_id, json.dumps(record, default=str)),
        )

    def count(self, kind: str, order_id: str | None = None) -> int:
        """How many records of `kind` (for `order_id`) there are."""
        if order_id is None:
            row = self._db.execute("SELECT COUNT(*) FROM ledger WHERE kind = ?", (kind,))
        else:
            row = self._db.execute(
                "SELECT COUNT(*) FROM ledger WHERE kind = ? AND order_id = ?", (kind, order_id)
            )
        return int(row.fetchone()[0])


class Inventory:
    """Stock per SKU; one reservation per order."""

    def __init__(
        self,
        ledger: Ledger | None = None,
        stock: dict[str, int] | None = None,
        default_stock: int = 1_000_000,
    ) -> None:
        self.ledger = ledger or Ledger()
        self.stock = dict(stock or {})
        self.default_stock = default_stock

    def _available(self, sku: str) -> int:
        return self.stock.setdefault(sku, self.default_stock)

    def reserve(self, order_id: str, lines: Sequence[OrderLine]) -> dict[str, Any]:
        """Reserve every line, or nothing: ``{"reserved": bool, "reservation_id", "missing"}``."""
        known = self.ledger.get("reservation", order_id)
        if known is not None:
            return known
        missing = [line.sku for line in lines if self._available(line.sku) < line.quantity]
        if missing:
            outcome = {"reserved": False, "missing": missing}
        else:
            for line in lines:
                self.stock[line.sku] -= line.quantity
            outcome = {
                "reserved": True,
                "reservation_id": str(uuid.uuid5(NAMESPACE, "reservation:" + order_id)),
                "lines": [line.model_dump(mode="json") for line in lines],
            }
        self.ledger.add("reservation", order_id, outcome)
        return outcome

    def release(self, order_id: str) -> bool:
        """Give back the reservation of `order_id`; False if there was none to give back."""
        known = self.ledger.get("reservation", order_id)
        if known is None or not known["reserved"] or self.ledger.get("release", order_id):
            return False
        for line in known["lines"]:
            self.stock[line["sku"]] = self._available(line["sku"]) + int(line["quantity"])
        self.ledger.add("release", order_id, {"released": True})
        return True


class Payments:
    """Charges customers. Declines deterministically: an amount over `limit`, and a
    `failure_rate` share of the other orders, picked by a hash of the order id and `seed`
    (so a redelivery or a restarted process takes the same decision)."""

    def __init__(
        self,
        ledger: Ledger | None = None,
        *,
        limit: Decimal = Decimal(1000),
        failure_rate: float = 0.0,
        seed: str = "eventwire",
    ) -> None:
        self.ledger = ledger or Ledger()
        self.limit = limit
        self.failure_rate = failure_rate
        self.seed = seed

    def decline_reason(self, order_id: str, amount: Decimal) -> str | None:
        """Why a charge of `amount` for `order_id` would be declined, or None."""
        if amount > self.limit:
            return f"amount {amount} over the limit of {self.limit}"
        draw = zlib.crc32(f"{self.seed}:{order_id}".encode()) / 2**32
        if draw < self.failure_rate:
            return "card declined by the issuer"
        return None

    def charge(self, order_id: str, customer_id: str, amount: Decimal) -> dict[str, Any]:
        """Charge once per order: ``{"charged": bool, "payment_id" | "reason"}``."""
        known = self.ledger.get("charge", order_id)
        if known is not None:
            return known
        reason = self.decline_reason(order_id, amount)
        if reason is not None:
            outcome: dict[str, Any] = {"charged": False, "reason": reason}
        else:
            outcome = {
                "charged": True,
                "payment_id": "pay-" + uuid.uuid4().hex[:12],
                "customer_id": customer_id,
                "amount": str(amount),
            }
        self.ledger.add("charge", order_id, outcome)
        return outcome

    def refund(self, order_id: str) -> bool:
        """Refund the charge of `order_id`; False if there was nothing to refund."""
        known = self.ledger.get("charge", order_id)
        if known is None or not known["charged"] or self.ledger.get("refund", order_id):
            return False
        self.ledger.add("refund", order_id, {"payment_id": known["payment_id"]})
        return True

    def charges(self, order_id: str) -> int:
        """Successful charges recorded for `order_id` (1 at most when all is well)."""
        rows = self.ledger._db.execute(
            "SELECT record FROM ledger WHERE kind = 'charge' AND order_id = ?", (order_id,)
        ).fetchall()
        return sum(1 for (record,) in rows if json.loads(record)["charged"])


class Shipping:
    """Hands parcels to a carrier; one parcel per order."""

    def __init__(self, ledger: Ledger | None = None, carrier: str = "DHL") -> None:
        self.ledger = ledger or Ledger()
        self.carrier = carrier

    def ship(self, order_id: str) -> dict[str, Any]:
        """Ship `order_id` once: ``{"carrier", "tracking_number"}``."""
        known = self.ledger.get("parcel", order_id)
        if known is not None:
            return known
        outcome = {
            "carrier": self.carrier,
            "tracking_number": uuid.uuid5(NAMESPACE, "parcel:" + order_id).hex[:16],
        }
        self.ledger.add("parcel", order_id, outcome)
        return outcome
