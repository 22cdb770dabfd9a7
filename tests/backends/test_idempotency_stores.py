"""The shared idempotency stores against their real servers: SQLite file, PostgreSQL, NATS
JetStream KV and Redis, each opened by URL as ``EventBus(..., idempotency_store=URL)`` does.

The same claim protocol for each (`eventwire.idempotency`), and two processes racing on the
same 100 ids through their own connections: each id is acquired exactly once overall.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from eventwire import Claim, IdempotencyStore
from eventwire.errors import BackendUnavailableError, ConfigurationError
from eventwire.plugins import open_idempotency_store

POSTGRES = (
    os.environ.get("EVENTWIRE_POSTGRES_URL") or "postgresql://eventwire@127.0.0.1:5433/postgres"
)
NATS = os.environ.get("EVENTWIRE_NATS_URL") or "nats://127.0.0.1:4222"
REDIS = os.environ.get("EVENTWIRE_REDIS_URL") or "redis://127.0.0.1:6379/0"
STORES = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.broker),
    pytest.param("nats", id="nats", marks=pytest.mark.broker),
    pytest.param("redis", id="redis", marks=pytest.mark.broker),
]


@pytest.fixture
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    kind = request.param
    if kind == "sqlite":
        return f"sqlite://{tmp_path / 'ids.db'}"
    return {"postgres": POSTGRES, "nats": NATS, "redis": REDIS}[kind]


async def closing(*stores: IdempotencyStore) -> None:
    for store in stores:
        await store.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize("store_url", STORES, indirect=True)
@pytest.mark.anyio
async def test_claim_protocol_and_lease_expiry(store_url: str) -> None:
    space = f"g-{uuid.uuid4().hex}:"

    async with asyncio.timeout(60):
        store, other = open_idempotency_store(store_url), open_idempotency_store(store_url)
        assert isinstance(store, IdempotencyStore)
        try:
            assert await store.claim(space + "1", 30) is Claim.ACQUIRED
            assert await other.claim(space + "1", 30) is Claim.BUSY
            await other.release(space + "1")  # not its claim: changes nothing
            assert await other.claim(space + "1", 30) is Claim.BUSY
            await store.release(space + "1")  # the handler failed: claimable again
            assert await other.claim(space + "1", 30) is Claim.ACQUIRED
            await other.complete(space + "1", 600)
            assert await store.claim(space + "1", 30) is Claim.DONE
            await store.release(space + "1")  # a done id is never released
            assert await other.claim(space + "1", 30) is Claim.DONE
            # A crashed holder's claim expires after its lease...
            assert await store.claim(space + "2", 0.3) is Claim.ACQUIRED
            assert await other.claim(space + "2", 30) is Claim.BUSY
            await asyncio.sleep(0.5)
            assert await other.claim(space + "2", 30) is Claim.ACQUIRED
            # ...and its late release frees nothing.
            await store.release(space + "2")
            assert await store.claim(space + "2", 30) is Claim.BUSY
            # Concurrent copies over two connections: one acquires.
            answers = await asyncio.gather(
                *(s.claim(space + "3", 30) for s in (store, other) for _ in range(20))
            )
            assert answers.count(Claim.ACQUIRED) == 1, answers
            assert answers.count(Claim.BUSY) == 39
        finally:
            await closing(store, other)


RACER = textwrap.dedent(
    """
    import asyncio, json, os, sys, time
    from eventwire import Claim
    from eventwire.plugins import open_idempotency_store

    url, space, go, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

    async def main() -> None:
        store = open_idempotency_store(url)
        await store.claim(space + "warm-" + str(os.getpid()), 30)  # connected before the race
        print("ready", flush=True)
        while not os.path.exists(go):
            await asyncio.sleep(0.002)
        acquired = []

        async def one(n: int) -> None:
            key = f"{space}{n}"
            if await store.claim(key, 30) is Claim.ACQUIRED:
                acquired.append(n)
                await store.complete(key, 600)

        await asyncio.gather(*(one(n) for n in range(count)))
        await store.close()
        print(json.dumps(acquired), flush=True)

    asyncio.run(main())
    """
)


@pytest.mark.parametrize("store_url", STORES, indirect=True)
def test_two_processes_racing_on_the_same_ids_acquire_each_once(
    store_url: str, tmp_path: Path
) -> None:
    space = f"race-{uuid.uuid4().hex}:"
    count = 100
    script = tmp_path / "racer.py"
    script.write_text(RACER)
    go = tmp_path / "go"
    racers = [
        subprocess.Popen(
            [sys.executable, str(script), store_url, space, str(go), str(count)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        for racer in racers:
            assert racer.stdout is not None
            line = racer.stdout.readline()
            assert line.strip() == "ready", (line, racer.stderr.read() if racer.stderr else "")
        go.touch()
        outputs = [racer.communicate(timeout=90) for racer in racers]
    finally:
        for racer in racers:
            if racer.poll() is None:
                racer.kill()
    assert all(r.returncode == 0 for r in racers), [err for _, err in outputs]
    first, second = (set(json.loads(out.strip().splitlines()[-1])) for out, _ in outputs)
    assert not first & second, f"ids acquired by both processes: {sorted(first & second)[:10]}"
    assert first | second == set(range(count))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.anyio
async def test_an_unreachable_postgres_fails_clearly_without_the_password() -> None:
    secret = "pw-" + uuid.uuid4().hex
    store = open_idempotency_store(f"postgresql://app:{secret}@127.0.0.1:{_free_port()}/db")
    assert secret not in repr(store)
    started = time.monotonic()
    async with asyncio.timeout(60):
        with pytest.raises(BackendUnavailableError) as info:
            await store.claim("g:1", 30)
        assert "idempotency store" in str(info.value) and secret not in str(info.value)
    assert time.monotonic() - started < 30


def test_a_missing_postgres_client_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "asyncpg", None)
    with pytest.raises(ConfigurationError) as info:
        open_idempotency_store("postgresql://127.0.0.1/db")
    assert "pip install 'eventwire[postgres]'" in str(info.value)


def test_bad_postgres_table_name_is_refused() -> None:
    from eventwire_postgres import PostgresIdempotencyStore

    with pytest.raises(ConfigurationError) as info:
        PostgresIdempotencyStore(POSTGRES, table="ids; DROP TABLE x")
    assert "plain SQL name" in str(info.value)


@pytest.mark.broker
@pytest.mark.anyio
async def test_a_postgres_store_on_a_borrowed_pool_claims_and_leaves_the_pool_open() -> None:
    """A backend's own pool: the store creates its table there, claims through it, and its
    ``close`` leaves the pool to its owner."""
    import asyncpg
    from eventwire_postgres import PostgresIdempotencyStore

    table = f"ids_{uuid.uuid4().hex[:8]}"
    pool = await asyncpg.create_pool(POSTGRES, min_size=1, max_size=2)
    try:
        store = PostgresIdempotencyStore(pool=pool, table=table)
        other = PostgresIdempotencyStore(POSTGRES, table=table)  # the same table by URL
        assert await store.claim("k", 30) is Claim.ACQUIRED
        assert await other.claim("k", 30) is Claim.BUSY
        await store.complete("k", 60)
        assert await other.claim("k", 30) is Claim.DONE
        await closing(store, other)
        assert await pool.fetchval(f"SELECT count(*) FROM {table}") == 1  # still open
        assert "borrowed pool" in repr(store)
    finally:
        await pool.execute(f"DROP TABLE IF EXISTS {table}")
        await pool.close()


def test_a_postgres_store_takes_a_url_or_a_pool_not_both_nor_neither() -> None:
    from eventwire_postgres import PostgresIdempotencyStore

    for bad in ({}, {"url": POSTGRES, "pool": object()}):
        with pytest.raises(ConfigurationError, match="a postgresql:// URL or an asyncpg pool"):
            PostgresIdempotencyStore(**bad)  # type: ignore[arg-type]
