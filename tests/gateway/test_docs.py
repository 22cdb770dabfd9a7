"""Every curl example of docs/gateway.md, run against a gateway served by uvicorn."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eventwire import EventBus, NonRetryableError, RetryPolicy
from eventwire.gateway import GatewaySettings, create_app

from tests._tools import missing
from tests.gateway._domain import TOKEN
from tests.gateway.conftest import http_server, until

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "gateway.md"
CONTRACT = ROOT / "contracts" / "order-service.v1.yaml"
_BLOCK = re.compile(r"```sh\n(.*?)```", re.S)
_EXPECT = re.compile(r"^# → (\d{3}) ", re.M)


def _examples() -> list[tuple[str, int]]:
    out = []
    for block in _BLOCK.findall(DOC.read_text(encoding="utf-8")):
        expected = _EXPECT.findall(block)
        assert len(expected) == 1, f"a curl example says its status once ('# → 202 ...'):\n{block}"
        out.append((block, int(expected[0])))
    return out


def _reference() -> Any:
    spec = importlib.util.spec_from_file_location(
        "gateway_doc_reference", CONTRACT.parent / "reference_app.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves the annotations through it
    spec.loader.exec_module(module)
    return module


async def _fill(url: str) -> None:
    """Three letters in orders.dlq: two from 'billing' (max-attempts), one from 'audit'."""
    ref = _reference()
    bus = EventBus(url, source="order-service")

    @bus.subscribe(
        ref.OrderCancelled, group="billing", retry=RetryPolicy(max_attempts=3, backoff=0.01)
    )
    async def refund(event: Any) -> None:
        raise ValueError("refund service timed out")

    @bus.subscribe(ref.OrderPlaced, group="audit")
    async def audit(event: Any) -> None:
        raise NonRetryableError("audit log is read-only")

    async with bus:
        for n in (1, 2):
            await bus.publish(ref.OrderCancelled(order_id=f"ord-{n}", reason="out-of-stock"))
        await bus.publish(
            ref.OrderPlaced(
                order_id="ord-3",
                customer_id="cus-1",
                lines=[{"sku": "SKU-1", "quantity": 1, "unit_price": "5.00"}],
                total="5.00",
                placed_at=datetime(2026, 11, 30, 8, tzinfo=UTC),
            )
        )

        async def three() -> bool:
            return len(await bus.dead_letters("orders")) == 3

        await until(three, timeout=30)


def test_curl_examples(tmp_path: Path) -> None:
    if subprocess.run(["which", "curl"], capture_output=True).returncode != 0:
        missing("curl is not installed")
    examples = _examples()
    assert len(examples) >= 10
    url = f"memory://docs-{uuid.uuid4().hex[:8]}"
    # kept sync: the test runs blocking curl subprocesses against a server in a thread
    asyncio.run(_fill(url))
    app = create_app(url, [CONTRACT], GatewaySettings(token=TOKEN))
    with http_server(app) as base:
        env = {**os.environ, "GATEWAY": base, "TOKEN": TOKEN}
        for block, status in examples:
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", block],
                capture_output=True,
                text=True,
                env=env,
                cwd=tmp_path,
                timeout=60,
            )
            assert done.returncode == 0, f"{block}\n{done.stderr}"
            codes = re.findall(r"^HTTP/1\.1 (\d{3})", done.stdout, re.M)
            assert codes and int(codes[-1]) == status, f"{block}\n{done.stdout}"
            if status == 401:
                assert TOKEN not in done.stdout
