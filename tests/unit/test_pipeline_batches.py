"""The pipeline's batch hand-over: `Consumer.take_many` (a backend hands a fetched batch) and
the runs a key's worker handles in one step with a `BatchIdempotencyStore` (one claim and
one completion round trip per run).

No broker: a `Consumer` is driven directly, as in ``test_pipeline.py``, with the in-memory
store wrapped to count its round trips.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from eventwire import NonRetryableError, RetryPolicy
from eventwire.backend import BatchReceiver
from eventwire.idempotency import BatchIdempotencyStore, Claim, MemoryIdempotencyStore
from eventwire.pipeline import Consumer, Route

from tests.unit.test_pipeline import FakeBackend, FakeInbound, Placed, settled

pytestmark = pytest.mark.anyio


class CountingStore(MemoryIdempotencyStore):
    """The in-memory store, counting its calls (each would be a round trip elsewhere)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, int]] = []

    async def claim(self, key: str, lease: float) -> Claim:
        self.calls.append(("claim", 1))
        return await super().claim(key, lease)

    async def claim_many(self, keys: Sequence[str], lease: float) -> list[Claim]:
        self.calls.append(("claim_many", len(keys)))
        return [await MemoryIdempotencyStore.claim(self, key, lease) for key in keys]

    async def complete_many(self, keys: Sequence[str], ttl: float) -> None:
        self.calls.append(("complete_many", len(keys)))
        await super().complete_many(keys, ttl)


def pipeline(
    handler: Any, store: MemoryIdempotencyStore, *, max_in_flight: int = 16, idempotent: bool = True
) -> tuple[Consumer, FakeBackend]:
    backend = FakeBackend()
    route = Route.for_handler(
        Placed,
        handler,
        retry=RetryPolicy(max_attempts=2, backoff=0.001, jitter=0),
        dead_letter=True,
        idempotent=idempotent,
    )
    made = Consumer(
        backend=backend,  # type: ignore[arg-type]  # the pipeline only publishes dead letters
        channel="orders",
        group="g",
        routes={Placed.__eventwire__.type: route},
        concurrency=4,
        max_in_flight=max_in_flight,
        store=store,
    )
    return made, backend


def inbounds(*keys: str) -> list[FakeInbound]:
    return [FakeInbound(Placed(order_id=key, n=n)) for n, key in enumerate(keys)]


async def test_take_many_takes_what_fits_and_keeps_key_order() -> None:
    seen: list[tuple[str, int]] = []
    gate = asyncio.Event()

    async def handle(event: Placed) -> None:
        await gate.wait()
        seen.append((event.order_id, event.n))

    pipe, _ = pipeline(handle, CountingStore(), max_in_flight=4, idempotent=False)
    assert isinstance(pipe, BatchReceiver)
    batch = inbounds("a", "a", "b", "a", "b", "c")
    assert pipe.take_many(batch) == 4  # the window holds four
    assert pipe.take_many(batch[4:]) == 0  # full: nothing more, no waiting
    room = asyncio.create_task(pipe.room())
    await asyncio.sleep(0.01)
    assert not room.done()  # waits while the window is full
    gate.set()
    assert await room
    assert pipe.take_many(batch[4:]) == 2
    await settled(*batch)
    assert [n for key, n in seen if key == "a"] == [0, 1, 3]
    assert [n for key, n in seen if key == "b"] == [2, 4]
    assert all(i.acks == 1 for i in batch)
    await pipe.drain(1.0)
    assert not await pipe.room()  # closing: the backend stops handing over
    assert pipe.take_many(inbounds("d")) == 0


async def test_a_key_run_is_claimed_and_completed_in_one_round_trip_each() -> None:
    gate = asyncio.Event()
    handled: list[int] = []

    async def handle(event: Placed) -> None:
        if event.n == 0:
            await gate.wait()  # the rest of the key queues up behind the first
        handled.append(event.n)

    store = CountingStore()
    pipe, _ = pipeline(handle, store)
    first, *rest = inbounds("a", "a", "a", "a", "a")
    assert pipe.take_many([first]) == 1
    await asyncio.sleep(0.01)
    assert pipe.take_many(rest) == 4
    gate.set()
    await settled(first, *rest)
    assert handled == [0, 1, 2, 3, 4]
    assert ("claim_many", 4) in store.calls and ("complete_many", 4) in store.calls
    for inbound in (first, *rest):  # every id is remembered as handled
        envelope_id = inbound.message.headers["ce_id"]
        assert await store.claim(f"g:{envelope_id}", 1) is Claim.DONE


async def test_a_duplicate_inside_a_run_runs_once_without_waiting_for_its_own_claim() -> None:
    handled: list[int] = []
    gate = asyncio.Event()

    async def handle(event: Placed) -> None:
        if event.n == 0:
            await gate.wait()
        handled.append(event.n)

    store = CountingStore()
    pipe, _ = pipeline(handle, store)
    first, second = inbounds("a", "a")
    copy = FakeInbound(Placed(order_id="a", n=1))
    copy.message = second.message  # the same event delivered twice (same id)
    pipe.take_many([first])
    await asyncio.sleep(0.01)
    pipe.take_many([second, copy])
    gate.set()
    async with asyncio.timeout(2):  # a claim waiting on its own run would take the lease (20 s)
        await settled(first, second, copy)
    assert handled == [0, 1]


async def test_a_failing_event_in_a_run_is_dead_lettered_and_the_others_complete() -> None:
    gate = asyncio.Event()

    async def handle(event: Placed) -> None:
        if event.n == 0:
            await gate.wait()
        if event.n == 2:
            raise RuntimeError("boom")

    store = CountingStore()
    pipe, backend = pipeline(handle, store)
    batch = inbounds("a", "a", "a", "a")
    pipe.take_many(batch[:1])
    await asyncio.sleep(0.01)
    pipe.take_many(batch[1:])
    gate.set()
    await settled(*batch)
    (letter,) = backend.dead_letters()
    assert letter.original.headers["ce_id"] == batch[2].message.headers["ce_id"]
    ids = [i.message.headers["ce_id"] for i in batch]
    states = [await store.claim(f"g:{i}", 1) for i in ids]
    # handled ones are remembered; the dead-lettered one was released (claimable again)
    assert states == [Claim.DONE, Claim.DONE, Claim.ACQUIRED, Claim.DONE]


async def test_closing_mid_run_settles_what_ran_and_releases_the_rest() -> None:
    started = asyncio.Event()
    gate = asyncio.Event()

    async def handle(event: Placed) -> None:
        if event.n == 0:
            await gate.wait()
        if event.n == 2:
            started.set()
            await asyncio.sleep(0.05)  # running while the consumer starts closing

    store = CountingStore()
    pipe, _ = pipeline(handle, store)
    batch = inbounds("a", "a", "a", "a", "a")
    pipe.take_many(batch[:1])
    await asyncio.sleep(0.01)
    pipe.take_many(batch[1:])
    gate.set()
    await started.wait()
    await pipe.drain(2.0)
    assert [i.acks for i in batch] == [1, 1, 1, 0, 0]
    ids = [i.message.headers["ce_id"] for i in batch]
    states = [await store.claim(f"g:{i}", 1) for i in ids]
    # what ran is remembered; what did not run is claimable at once by a redelivery
    assert states == [Claim.DONE, Claim.DONE, Claim.DONE, Claim.ACQUIRED, Claim.ACQUIRED]


def test_the_memory_store_claims_in_bulk() -> None:
    assert isinstance(MemoryIdempotencyStore(), BatchIdempotencyStore)


async def test_the_memory_store_answers_bulk_claims_like_single_ones_and_stays_bounded() -> None:
    store = MemoryIdempotencyStore(max_entries=4)
    await store.claim("done", 60)
    await store.complete("done", 60)
    await store.claim("busy", 60)
    await store.claim("expired", -1)  # a lease that has run out: claimable again
    states = await store.claim_many(["new", "done", "busy", "expired"], 60)
    assert states == [Claim.ACQUIRED, Claim.DONE, Claim.BUSY, Claim.ACQUIRED]
    assert len(store) == 4
    # Completing moves a key to the newest end: the oldest entries are evicted first.
    await store.complete_many(["done", "busy"], 60)
    assert await store.claim_many(["x", "y"], 60) == [Claim.ACQUIRED, Claim.ACQUIRED]
    assert len(store) == 4
    assert [await store.claim(key, 60) for key in ("done", "busy")] == [Claim.DONE, Claim.DONE]
    assert await store.claim("new", 60) is Claim.ACQUIRED  # evicted, as the oldest


class BulkInbound(FakeInbound):
    """A delivery whose class acks in bulk (`eventwire.backend.BulkAck`), recording each call."""

    bulk_calls: list[int] = []

    @staticmethod
    async def ack_many(inbounds: Sequence[FakeInbound]) -> None:
        BulkInbound.bulk_calls.append(len(inbounds))
        for inbound in inbounds:
            inbound.acks += 1


async def test_a_handled_run_is_acked_in_one_step_where_the_class_acks_in_bulk() -> None:
    BulkInbound.bulk_calls = []
    gate = asyncio.Event()

    async def handle(event: Placed) -> None:
        if event.n == 0:
            await gate.wait()  # the rest of the key queues up behind the first
        if event.n == 3:
            raise NonRetryableError("bad")  # dead-lettered: acked on its own, after the dlq

    pipe, backend = pipeline(handle, CountingStore())
    batch = [BulkInbound(Placed(order_id="a", n=n)) for n in range(5)]
    assert pipe.take_many(batch[:1]) == 1
    await asyncio.sleep(0.01)
    assert pipe.take_many(batch[1:]) == 4
    gate.set()
    await settled(*batch)
    assert all(i.acks == 1 for i in batch)  # each settled once
    # The first ran alone (acked by `ack`); the run behind it acked its three handled in one.
    assert BulkInbound.bulk_calls == [3]
    assert len(backend.published) == 1  # the dead letter


async def test_mixed_delivery_classes_are_acked_one_by_one() -> None:
    BulkInbound.bulk_calls = []

    async def handle(event: Placed) -> None:
        pass

    pipe, _ = pipeline(handle, CountingStore())
    batch = [BulkInbound(Placed(order_id="a", n=0)), FakeInbound(Placed(order_id="a", n=1))]
    await pipe._ack_all(batch)
    assert [i.acks for i in batch] == [1, 1]
    assert BulkInbound.bulk_calls == []
