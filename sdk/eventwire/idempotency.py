"""Idempotency stores: remember which event ids a group has already handled.

The pipeline claims ``<group>:<event id>`` before running a handler:

- ``ACQUIRED``: nobody handled it: run the handler, then ``complete`` (or ``release`` when
  it failed, so a redelivery may try again);
- ``DONE``: already handled: settle without running the handler;
- ``BUSY``: another delivery of the same id is being handled right now (a concurrent
  duplicate): wait and claim again. A claim is a *lease*: if its holder crashed, it expires
  after ``lease`` seconds and the id can be claimed again, so a crash never loses an event.

A store may also implement `BatchIdempotencyStore` (``claim_many`` / ``complete_many``):
the pipeline then claims a key's run of fetched events, and completes the handled ones, in
one round trip each instead of one per event.
"""

from __future__ import annotations

import enum
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

__all__ = ["BatchIdempotencyStore", "Claim", "IdempotencyStore", "MemoryIdempotencyStore"]


class Claim(enum.Enum):
    """The answer of `IdempotencyStore.claim`."""

    ACQUIRED = "acquired"
    DONE = "done"
    BUSY = "busy"


@runtime_checkable
class IdempotencyStore(Protocol):
    """Where handled event ids are remembered. Implementations must be atomic per key."""

    async def claim(self, key: str, lease: float) -> Claim:
        """Claim `key` for `lease` seconds unless it is done or claimed by someone else."""
        ...

    async def complete(self, key: str, ttl: float) -> None:
        """Mark `key` as handled; remember it for `ttl` seconds."""
        ...

    async def release(self, key: str) -> None:
        """Give up a claim (the handler failed): the key may be claimed again."""
        ...


@runtime_checkable
class BatchIdempotencyStore(Protocol):
    """Optional: a store that claims and completes many keys in one round trip.

    Each key is answered exactly as `IdempotencyStore.claim` / ``complete`` would answer it
    alone (atomic per key; the keys need not be atomic together)."""

    async def claim_many(self, keys: Sequence[str], lease: float) -> list[Claim]:
        """`claim` each of `keys` (distinct); the answers in the same order."""
        ...

    async def complete_many(self, keys: Sequence[str], ttl: float) -> None:
        """`complete` each of `keys`."""
        ...


class MemoryIdempotencyStore:
    """A bounded in-process store with TTL (the default; one process only).

    Keeps at most `max_entries` keys, evicting the oldest first. Correct under concurrent
    duplicates within the process because asyncio runs each call without interleaving.
    """

    def __init__(self, max_entries: int = 100_000) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries}")
        self._max = max_entries
        # key -> (done, expires_at)
        self._entries: OrderedDict[str, tuple[bool, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    async def claim(self, key: str, lease: float) -> Claim:
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None and entry[1] > now:
            return Claim.DONE if entry[0] else Claim.BUSY
        self._put(key, False, now + lease)
        return Claim.ACQUIRED

    async def complete(self, key: str, ttl: float) -> None:
        self._put(key, True, time.monotonic() + ttl)

    async def claim_many(self, keys: Sequence[str], lease: float) -> list[Claim]:
        now = time.monotonic()
        claimed = (False, now + lease)
        entries = self._entries
        states = []
        for key in keys:
            entry = entries.get(key)
            if entry is None:  # a new key goes to the end: no move needed
                entries[key] = claimed
                states.append(Claim.ACQUIRED)
            elif entry[1] > now:
                states.append(Claim.DONE if entry[0] else Claim.BUSY)
            else:
                entries[key] = claimed
                entries.move_to_end(key)
                states.append(Claim.ACQUIRED)
        self._trim()
        return states

    async def complete_many(self, keys: Sequence[str], ttl: float) -> None:
        done = (True, time.monotonic() + ttl)
        entries = self._entries
        for key in keys:
            entries[key] = done
            entries.move_to_end(key)
        self._trim()

    async def release(self, key: str) -> None:
        entry = self._entries.get(key)
        if entry is not None and not entry[0]:
            del self._entries[key]

    def _put(self, key: str, done: bool, expires: float) -> None:
        self._entries[key] = (done, expires)
        self._entries.move_to_end(key)
        self._trim()

    def _trim(self) -> None:
        """Evict the oldest entries beyond `max_entries`."""
        entries = self._entries
        while len(entries) > self._max:
            entries.popitem(last=False)
