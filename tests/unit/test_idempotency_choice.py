"""Which idempotency store a bus uses: the backend's own by default, a URL or a store object
when given, an in-process one when the backend has none; and a bus closes only what it
opened."""

from __future__ import annotations

from pathlib import Path

import pytest
from eventwire import (
    Claim,
    ConfigurationError,
    Delivery,
    Event,
    EventBus,
    MemoryIdempotencyStore,
    UnknownBackendError,
)
from eventwire_nats import NatsIdempotencyStore
from eventwire_postgres import PostgresIdempotencyStore
from eventwire_redis import RedisIdempotencyStore
from eventwire_sqlite import SqliteIdempotencyStore

from ._helpers import memory_url, wait_for


class Charged(Event, channel="ewt-choice", key="order_id"):
    order_id: str


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("redis://127.0.0.1:6379/0", RedisIdempotencyStore),
        ("nats://127.0.0.1:4222", NatsIdempotencyStore),
        ("kafka://127.0.0.1:9092", MemoryIdempotencyStore),
        ("amqp://guest:guest@127.0.0.1:5672/", MemoryIdempotencyStore),
    ],
)
def test_each_backend_has_its_default_store(url: str, kind: type) -> None:
    assert type(EventBus(url).idempotency_store) is kind  # nothing connects yet


def test_sqlite_uses_a_table_in_its_own_file(tmp_path: Path) -> None:
    store = EventBus(f"sqlite://{tmp_path / 'events.db'}").idempotency_store
    assert isinstance(store, SqliteIdempotencyStore)
    assert store.settings.path == str(tmp_path / "events.db")


def test_buses_on_one_memory_broker_share_its_store() -> None:
    url = memory_url()
    first, second = EventBus(url), EventBus(url)
    assert first.idempotency_store is second.idempotency_store
    assert EventBus(memory_url()).idempotency_store is not first.idempotency_store


def test_a_store_url_or_object_wins(tmp_path: Path) -> None:
    assert isinstance(
        EventBus("redis://127.0.0.1:6379/0", idempotency_store="memory://").idempotency_store,
        MemoryIdempotencyStore,
    )
    bus = EventBus("kafka://127.0.0.1:9092", idempotency_store="postgresql://db.internal/app")
    assert isinstance(bus.idempotency_store, PostgresIdempotencyStore)
    mine = MemoryIdempotencyStore()
    assert EventBus(memory_url(), idempotency_store=mine).idempotency_store is mine


def test_bad_stores_are_refused_clearly() -> None:
    with pytest.raises(UnknownBackendError) as info:
        EventBus(memory_url(), idempotency_store="mongodb://db/ids")
    assert "'mongodb'" in str(info.value) and "postgresql://" in str(info.value)
    with pytest.raises(ConfigurationError) as bad:
        EventBus(memory_url(), idempotency_store=42)  # type: ignore[arg-type]
    assert "IdempotencyStore" in str(bad.value)


class _Closing(MemoryIdempotencyStore):
    closed = 0

    async def close(self) -> None:
        self.closed += 1


@pytest.mark.anyio
async def test_the_bus_closes_the_store_it_opened_only(tmp_path: Path) -> None:
    async def main() -> None:
        path = tmp_path / "ids.db"
        bus = EventBus(memory_url(), idempotency_store=f"sqlite://{path}")
        effects: list[str] = []

        @bus.subscribe(Charged, group="billing", idempotent=True)
        async def charge(event: Charged, delivery: Delivery) -> None:
            effects.append(delivery.id)

        async with bus:
            sent = await bus.publish(Charged(order_id="o-1"))
            await wait_for(lambda: bool(effects))
        store = bus.idempotency_store
        assert isinstance(store, SqliteIdempotencyStore)
        assert store._executor is None  # closed with the bus
        # The id was recorded in the file: another store on it sees it done.
        other = SqliteIdempotencyStore(f"sqlite://{path}")
        try:
            assert await other.claim(f"billing:{sent.id}", 30) is Claim.DONE
        finally:
            await other.close()

        mine = _Closing()
        async with EventBus(memory_url(), idempotency_store=mine):
            pass
        assert mine.closed == 0  # the caller's store stays open

    await main()
