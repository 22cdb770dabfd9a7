"""`RedisIdempotencyStore` against a real Redis: the claim protocol, leases, concurrent
duplicates in one process, and two processes racing on the same event ids through their
own buses (each on its own in-memory broker: the store works with any backend)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from eventwire import Claim, IdempotencyStore
from eventwire.errors import BackendUnavailableError, ConfigurationError
from eventwire_redis import RedisIdempotencyStore

from tests._tools import run

pytestmark = [pytest.mark.broker, pytest.mark.anyio]

URL = os.environ.get("EVENTWIRE_REDIS_URL") or "redis://127.0.0.1:6379/0"
REPO_ROOT = Path(__file__).resolve().parents[2]


def prefix() -> str:
    return f"ewt-idem-{uuid.uuid4().hex[:10]}:"


async def forget(pattern_prefix: str) -> None:
    client = aioredis.Redis.from_url(URL)
    try:
        keys = [k async for k in client.scan_iter(pattern_prefix + "*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


async def test_claim_complete_release_and_lease_expiry() -> None:
    space = prefix()

    async with asyncio.timeout(60):
        store = RedisIdempotencyStore(URL, prefix=space)
        other = RedisIdempotencyStore(URL, prefix=space)
        assert isinstance(store, IdempotencyStore)
        try:
            assert await store.claim("g:1", 30) is Claim.ACQUIRED
            assert await other.claim("g:1", 30) is Claim.BUSY
            await other.release("g:1")  # not its claim: changes nothing
            assert await other.claim("g:1", 30) is Claim.BUSY
            await store.release("g:1")  # the handler failed: claimable again
            assert await other.claim("g:1", 30) is Claim.ACQUIRED
            await other.complete("g:1", 60)
            assert await store.claim("g:1", 30) is Claim.DONE
            await store.release("g:1")  # a DONE id is never released
            assert await other.claim("g:1", 30) is Claim.DONE
            # A crashed holder's claim expires after its lease.
            assert await store.claim("g:2", 0.2) is Claim.ACQUIRED
            assert await other.claim("g:2", 30) is Claim.BUSY
            await asyncio.sleep(0.3)
            assert await other.claim("g:2", 30) is Claim.ACQUIRED
            # ...and the late release of the crashed holder frees nothing.
            await store.release("g:2")
            assert await store.claim("g:2", 30) is Claim.BUSY
            # The TTL of a completed id is kept on the server.
            client = aioredis.Redis.from_url(URL)
            try:
                ttl = await client.pttl(space + "g:1")
                assert 0 < ttl <= 60_000
            finally:
                await client.aclose()
        finally:
            await store.close()
            await other.close()
            await forget(space)


async def test_concurrent_duplicates_in_one_process_acquire_once() -> None:
    space = prefix()

    async with asyncio.timeout(60):
        store = RedisIdempotencyStore(URL, prefix=space)
        try:
            answers = await asyncio.gather(*(store.claim("g:same", 30) for _ in range(50)))
            assert answers.count(Claim.ACQUIRED) == 1
            assert answers.count(Claim.BUSY) == 49
        finally:
            await store.close()
            await forget(space)


async def test_a_given_client_is_used_and_not_closed() -> None:
    space = prefix()

    async with asyncio.timeout(60):
        client = aioredis.Redis.from_url(URL)
        store = RedisIdempotencyStore(client, prefix=space)
        try:
            assert await store.claim("g:x", 30) is Claim.ACQUIRED
            await store.complete("g:x", 30)
            await store.close()
            assert await client.get(space + "g:x") == b"done"
        finally:
            await forget(space)
            await client.aclose()


async def test_the_backends_store_keeps_its_keys_under_the_backends_prefix() -> None:
    """The bus's default store of a redis backend with ``prefix=`` writes under that prefix
    (a user whose ACL grants only the prefix's keys can use it)."""
    from eventwire_redis import RedisBackend

    space = prefix()
    backend = RedisBackend(f"{URL}?prefix={space}")
    store = backend.shared_idempotency_store()
    client = aioredis.Redis.from_url(URL)
    try:
        async with asyncio.timeout(60):
            assert await store.claim("g:x", 30) is Claim.ACQUIRED
            await store.complete("g:x", 30)
            assert await client.get(space + "eventwire:idempotency:g:x") == b"done"
    finally:
        await store.close()
        await forget(space)
        await client.aclose()


def test_bad_configuration_and_no_secrets_in_repr() -> None:
    secret = "pw-" + uuid.uuid4().hex
    store = RedisIdempotencyStore(f"redis://:{secret}@127.0.0.1:6379/0", prefix="p:")
    assert secret not in repr(store)
    with pytest.raises(ConfigurationError) as info:
        RedisIdempotencyStore(URL, shards=4)
    assert "'shards'" in str(info.value) and "password" in str(info.value)
    with pytest.raises(ConfigurationError):
        RedisIdempotencyStore(aioredis.Redis.from_url(URL), db=1)


async def test_unreachable_store_fails_clearly() -> None:
    secret = "pw-" + uuid.uuid4().hex

    async with asyncio.timeout(60):
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        store = RedisIdempotencyStore(f"redis://:{secret}@127.0.0.1:{port}/0")
        started = time.monotonic()
        with pytest.raises(BackendUnavailableError) as info:
            await store.claim("g:1", 30)
        assert time.monotonic() - started < 10
        assert "idempotency store" in str(info.value) and secret not in str(info.value)


RACER = textwrap.dedent(
    """
    import asyncio, dataclasses, sys, time
    import redis.asyncio as aioredis
    from eventwire import Event, EventBus
    from eventwire.backend import WireMessage
    from eventwire.bindings import to_headers
    from eventwire.envelope import Envelope
    from eventwire_redis import RedisIdempotencyStore

    url, space, channel, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

    class Job(Event, channel=channel, key="key"):
        key: str
        n: int

    def wire(n: int) -> WireMessage:
        envelope = Envelope.new(type=Job.__eventwire__.type, source="racer", subject=f"k{n}")
        envelope = dataclasses.replace(envelope, id=f"{space}event-{n}")  # same ids in both
        body = Job(key=f"k{n}", n=n).model_dump_json().encode()
        return WireMessage(body=body, headers=to_headers(envelope, "kafka"), key=f"k{n}")

    async def main() -> None:
        client = aioredis.Redis.from_url(url)
        store = RedisIdempotencyStore(url, prefix=space + "claims:")
        # Each process has its own in-memory broker: only the store is shared.
        bus = EventBus("memory://racer", idempotency_store=store)
        handled = 0

        @bus.subscribe(Job, group="billing", idempotent=True, concurrency=8)
        async def charge(job: Job) -> None:
            nonlocal handled
            await client.incr(f"{space}effect:{job.n}")
            await asyncio.sleep(0.002)  # the effect takes a moment: duplicates overlap
            await client.sadd(space + "seen", job.n)
            handled += 1

        async with bus:
            messages = [wire(n) for n in range(count)]
            print("ready", flush=True)
            while not await client.exists(space + "go"):
                await asyncio.sleep(0.002)
            await bus.backend.publish(channel, messages)
            deadline = time.monotonic() + 30
            while await client.scard(space + "seen") < count and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            # Every id is done somewhere; wait until this process settled its copies.
            while bus.consumer_stats()[0]["in_flight"] and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        await store.close()
        await client.aclose()
        print("handled", handled, flush=True)

    asyncio.run(main())
    """
)


def test_two_processes_racing_on_the_same_ids_run_each_effect_once(tmp_path: Path) -> None:
    """Two processes, each with its own bus and broker, receive the same 200 event ids at
    the same moment; the shared store lets each effect run exactly once overall."""
    space = prefix()
    count = 200
    script = tmp_path / "racer.py"
    script.write_text(RACER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO_ROOT / "sdk"), str(REPO_ROOT / "plugins"), os.environ.get("PYTHONPATH", "")]
    )}  # fmt: skip
    racers = [
        subprocess.Popen(
            [sys.executable, str(script), URL, space, f"race-{uuid.uuid4().hex[:8]}", str(count)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    try:
        for racer in racers:
            assert racer.stdout is not None
            line = racer.stdout.readline()
            assert line.strip() == "ready", (line, racer.stderr.read() if racer.stderr else "")

        async def go_and_count() -> dict[int, int]:
            client = aioredis.Redis.from_url(URL)
            try:
                await client.set(space + "go", 1)
                counts: dict[int, int] = {}
                for racer in racers:
                    await asyncio.to_thread(racer.wait, 60)
                for n in range(count):
                    counts[n] = int(await client.get(f"{space}effect:{n}") or 0)
                return counts
            finally:
                await client.aclose()

        # kept sync: the test drives the two racer processes with blocking calls
        counts = run(go_and_count, timeout=90)
        outputs = [racer.communicate()[0] for racer in racers]
    finally:
        for racer in racers:
            if racer.poll() is None:
                racer.kill()
        run(lambda: forget(space))
    assert all(r.returncode == 0 for r in racers), [
        r.stderr.read() if r.stderr else "" for r in racers
    ]
    twice = {n: c for n, c in counts.items() if c != 1}
    assert not twice, f"effects not run exactly once: {dict(list(twice.items())[:10])}"
    handled = [int(out.split()[-1]) for out in outputs]
    assert sum(handled) == count, handled


async def test_claim_many_and_complete_many_answer_as_one_at_a_time() -> None:
    space = prefix()

    async with asyncio.timeout(60):
        store = RedisIdempotencyStore(URL, prefix=space)
        other = RedisIdempotencyStore(URL, prefix=space)
        try:
            assert await other.claim("g:busy", 30) is Claim.ACQUIRED
            await other.complete("g:done", 60)
            keys = ["g:new-1", "g:busy", "g:done", "g:new-2"]
            states = await store.claim_many(keys, 30)
            assert states == [Claim.ACQUIRED, Claim.BUSY, Claim.DONE, Claim.ACQUIRED]
            assert await other.claim("g:new-1", 30) is Claim.BUSY  # held by `store`
            await store.release("g:new-2")  # its own claim: released like a single claim
            assert await other.claim("g:new-2", 30) is Claim.ACQUIRED
            await store.complete_many(["g:new-1", "g:busy"], 60)
            assert await other.claim_many(["g:new-1", "g:busy"], 30) == [Claim.DONE, Claim.DONE]
            await store.release("g:new-1")  # completed: nothing to release any more
            assert await other.claim("g:new-1", 30) is Claim.DONE
        finally:
            await store.close()
            await other.close()
            await forget(space)
