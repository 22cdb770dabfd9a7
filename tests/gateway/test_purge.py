"""Purging dead letters: ``bus.purge_dead_letters`` and ``POST /dead-letters/<channel>/purge``
on every backend. Each test makes channels of its own (the real brokers are shared)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from eventwire import EventBus
from eventwire.errors import UnsupportedOperationError

from tests.gateway._domain import AUTH, make_domain
from tests.gateway._letters import Refunds, fill
from tests.gateway.conftest import build_app, serve, until

pytestmark = pytest.mark.anyio

BROKERS = {
    "kafka": os.environ.get("EVENTWIRE_KAFKA_URL", "kafka://127.0.0.1:9092"),
    "rabbit": os.environ.get("EVENTWIRE_RABBIT_URL", "amqp://guest:guest@127.0.0.1:5672/"),
    "redis": os.environ.get("EVENTWIRE_REDIS_URL", "redis://127.0.0.1:6379"),
    "nats": os.environ.get("EVENTWIRE_NATS_URL", "nats://127.0.0.1:4222"),
}
BACKENDS = [
    "memory",
    "sqlite",
    *(pytest.param(name, marks=pytest.mark.broker) for name in sorted(BROKERS)),
]


def _url(backend: str, tmp_path: Path) -> str:
    if backend == "memory":
        return f"memory://purge-{tmp_path.name}"
    if backend == "sqlite":
        return f"sqlite://{tmp_path}/purge.db"
    return BROKERS[backend]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_purge(backend: str, tmp_path: Path) -> None:
    """Wrong token and read-only change nothing; a purge removes every letter and only them;
    letters dead-lettered afterwards are listed again."""
    url = _url(backend, tmp_path)
    domain = make_domain(tmp_path)
    refunds = Refunds(url, domain)
    async with refunds.bus:
        await fill(url, domain, refunds, rejected=2, failed=1)
        live = await refunds.bus.backend.browse(domain.orders)
        assert len(live) == 3
        base = f"/dead-letters/{domain.orders}"
        async with serve(build_app(url, domain, read_only=True)) as client:
            refused = await client.post(f"{base}/purge", headers=AUTH)
        assert refused.status_code == 403, refused.text
        assert refused.json()["type"].endswith("/read-only")
        async with serve(build_app(url, domain)) as client:
            wrong = await client.post(f"{base}/purge", headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401, wrong.text
            assert wrong.headers["content-type"].startswith("application/problem+json")
            assert (await client.get(base)).json()["total"] == 3
            purged = await client.post(f"{base}/purge", headers=AUTH)
            assert purged.status_code == 200, purged.text
            assert purged.json() == {"purged": 3}
            assert (await client.get(base)).json()["total"] == 0
            channels = (await client.get("/dead-letters")).json()["channels"]
            assert {"channel": domain.orders, "count": 0, "truncated": False} in channels
            assert await refunds.bus.backend.browse(domain.orders) == live  # the live channel
            assert await refunds.bus.purge_dead_letters(f"{domain.orders}-never") == 0
            again = await client.post(f"{base}/purge", headers=AUTH)
            assert again.json() == {"purged": 0}
            # The live channel still delivers, and new dead letters are kept and listed.
            await fill(url, domain, refunds, rejected=1, failed=0)
            after = (await client.get(base)).json()
            assert after["total"] == 1 and after["items"][0]["reason"] == "rejected"


async def test_purge_on_the_bus_by_message_class(tmp_path: Path) -> None:
    url = _url("memory", tmp_path)
    domain = make_domain(tmp_path)
    refunds = Refunds(url, domain)
    async with refunds.bus:
        await fill(url, domain, refunds, rejected=1, failed=1)
        assert await refunds.bus.purge_dead_letters(domain.OrderCancelled) == 2
        assert await refunds.bus.dead_letters(domain.OrderCancelled) == []


@pytest.fixture
def outside_backend() -> Iterator[str]:
    """A third-party backend without the purge ability (tests/outside_plugin), registered in
    this process for the test; yields a URL of it."""
    import importlib
    import sys
    import uuid

    from eventwire.plugins import get_plugin_manager

    sys.path.insert(0, str(Path(__file__).parents[1] / "outside_plugin" / "src"))
    try:
        module = importlib.import_module("eventwire_outside")
    finally:
        sys.path.pop(0)
    manager = get_plugin_manager()
    manager.register(module)
    try:
        yield f"outside://purge-{uuid.uuid4().hex[:8]}"
    finally:
        manager.unregister(module)


async def test_a_backend_that_cannot_purge_says_so(outside_backend: str, tmp_path: Path) -> None:
    async with EventBus(outside_backend, source="t") as bus:
        with pytest.raises(UnsupportedOperationError, match="the outside backend cannot purge"):
            await bus.purge_dead_letters("some.channel")
    domain = make_domain(tmp_path)
    async with serve(build_app(outside_backend, domain)) as client:
        response = await client.post(f"/dead-letters/{domain.orders}/purge", headers=AUTH)
    assert response.status_code == 501, response.text
    problem = response.json()
    assert problem["type"].endswith("/purge-unsupported")
    assert "outside backend cannot purge" in problem["detail"]


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
async def test_a_group_of_a_purged_channel_skips_what_was_purged(
    backend: str, tmp_path: Path
) -> None:
    """A group that was behind on a purged channel gets only what was published after."""
    import asyncio

    from eventwire.backend import ChannelPurger, Inbound, SubscriptionSpec, WireMessage
    from eventwire.plugins import create_backend

    channel = f"purged-{tmp_path.name[-20:]}".replace("_", "-")
    spec = SubscriptionSpec(channel, "late")
    got: list[bytes] = []

    async def handler(inbound: Inbound) -> None:
        got.append(inbound.message.body)
        await inbound.ack()

    target = create_backend(_url(backend, tmp_path))
    await target.connect()
    try:
        assert isinstance(target, ChannelPurger)
        await (await target.subscribe(spec, handler)).stop()  # the group exists, is behind
        await target.publish(channel, [WireMessage(b"old-%d" % i, {}) for i in range(3)])
        assert await target.purge_channel(channel) == 3
        assert await target.browse(channel) == []
        await target.publish(channel, [WireMessage(b"new", {})])
        assert [m.body for m in await target.browse(channel)] == [b"new"]
        await target.subscribe(spec, handler)
        await until(lambda: got)
        await asyncio.sleep(0.2)
        assert got == [b"new"]
    finally:
        await target.close()
