"""The dead-letter endpoints on every real broker: a letter's id is stable across reads and
replaying it by id reaches the handler (the bus's semantics, through each backend's browse)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.gateway._domain import AUTH, make_domain
from tests.gateway._letters import Refunds, fill
from tests.gateway.conftest import build_app, serve, until

pytestmark = [pytest.mark.anyio, pytest.mark.broker]

URLS = {
    "kafka": os.environ.get("EVENTWIRE_KAFKA_URL", "kafka://127.0.0.1:9092"),
    "rabbit": os.environ.get("EVENTWIRE_RABBIT_URL", "amqp://guest:guest@127.0.0.1:5672/"),
    "nats": os.environ.get("EVENTWIRE_NATS_URL", "nats://127.0.0.1:4222"),
}


@pytest.mark.parametrize("backend", sorted(URLS))
async def test_inspect_and_replay_one(backend: str, tmp_path: Path) -> None:
    url = URLS[backend]
    domain = make_domain(tmp_path)
    refunds = Refunds(url, domain)
    async with refunds.bus:
        await fill(url, domain, refunds, rejected=1, failed=1)
        async with serve(build_app(url, domain)) as client:
            base = f"/dead-letters/{domain.orders}"
            first = (await client.get(base)).json()
            again = (await client.get(base, params={"reason": "rejected"})).json()
            assert first["total"] == 2 and again["total"] == 1
            letter = again["items"][0]
            assert letter["id"] in {i["id"] for i in first["items"]}  # stable across reads
            one = (await client.get(f"{base}/{letter['id']}")).json()
            assert one["payload"] == {"order_id": "r-0", "reason": "customer-request"}
            assert one["reason"] == "rejected" and one["group"] == "refunds"
            refunds.healed = True
            replayed = await client.post(f"{base}/{letter['id']}/replay", headers=AUTH)
            assert replayed.json() == {"replayed": 1}, replayed.text
            await until(lambda: refunds.handled == ["r-0"], timeout=30)
