"""The `LeaseStore` promises the shard coordinator relies on, checked step by step on any
store: each backend's lease-store test runs `check_lease_store` on a store of its own."""

from __future__ import annotations

import asyncio

from eventwire.backendkit import Grant, LeaseRequest, LeaseStore

__all__ = ["check_lease_store"]


async def check_lease_store(store: LeaseStore) -> None:
    """Renew, acquire, deny, release (another member's lease left alone), leave, and a lease
    that expired while nobody took it: a renewal is denied, a take acquires it again. The
    store must start empty, with at least three shards."""
    assert await store.heartbeat("a", 5, alive=True) == ["a"]
    assert sorted(await store.heartbeat("b", 5, alive=True)) == ["a", "b"]
    asks = [LeaseRequest(0, True), LeaseRequest(1, True), LeaseRequest(2, False)]
    assert await store.leases("a", 5, asks) == [Grant.ACQUIRED] * 2 + [Grant.DENIED]
    assert await store.leases("b", 5, [LeaseRequest(0, True)]) == [Grant.DENIED]
    assert await store.leases("a", 5, [LeaseRequest(0, False)]) == [Grant.RENEWED]
    assert await store.leases("a", 5, [LeaseRequest(1, True)]) == [Grant.RENEWED]
    await store.release("b", [0])  # not b's: left alone
    await store.release("a", [1])
    assert await store.leases("b", 5, [LeaseRequest(0, True), LeaseRequest(1, True)]) == [
        Grant.DENIED,
        Grant.ACQUIRED,
    ]
    assert await store.leases("a", 0.05, [LeaseRequest(0, False)]) == [Grant.RENEWED]
    await asyncio.sleep(0.2)  # a's lease of shard 0 expired; nobody took it
    assert await store.leases("a", 5, [LeaseRequest(0, False)]) == [Grant.DENIED]
    assert await store.leases("a", 5, [LeaseRequest(0, True)]) == [Grant.ACQUIRED]
    assert await store.heartbeat("b", 5, alive=False) == ["a"]
