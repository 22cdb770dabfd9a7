"""The lease-store protocol the shard coordinator runs on, and an in-memory implementation.

A backend implements `LeaseStore` with its broker's native primitive: Redis ``SET NX PX``
plus a sorted set of heartbeats, NATS KV revisions, SQL rows, ... Three calls, each may be
one round trip; all take the member id so one store can serve every member of a group.
`MemoryLeaseStore` is the reference: the coordinator's tests run on it, and it is what a
single-process backend can use as it is.
"""

from __future__ import annotations

import dataclasses
import enum
import time
from collections.abc import Callable, Sequence
from typing import Protocol

__all__ = ["Grant", "LeaseRequest", "LeaseStore", "MemoryLeaseStore"]


class Grant(enum.Enum):
    """The answer to one lease request."""

    #: The lease was this member's and is renewed.
    RENEWED = "renewed"
    #: Nobody held the lease (free, or the holder's expired): it is this member's now.
    ACQUIRED = "acquired"
    #: Another member holds the lease (or, for a renewal, this member's lease is gone).
    DENIED = "denied"


@dataclasses.dataclass(frozen=True, slots=True)
class LeaseRequest:
    """Renew the lease of `shard`; with `take`, also acquire it when nobody holds it."""

    shard: int
    take: bool


class LeaseStore(Protocol):
    """Leases on the shards of one (channel, group), and the group's live members.

    Every lease and registration expires `ttl` seconds after it was last written unless
    renewed; "expired" is judged by the store (the server's clock), never by the caller.
    """

    async def heartbeat(self, member: str, ttl: float, *, alive: bool) -> Sequence[str]:
        """Register `member` as live for `ttl` seconds (``alive``) or unregister it (not
        ``alive``); return the ids of the live members, `member` included when ``alive``."""
        ...

    async def leases(
        self, member: str, ttl: float, requests: Sequence[LeaseRequest]
    ) -> Sequence[Grant]:
        """Answer each request, in order (the coordinator lists them in shard order, so
        stores that lock rows take them in one order): `Grant.RENEWED` when `member` held the lease
        (now renewed for `ttl` seconds); `Grant.ACQUIRED` when the request may ``take`` it
        and nobody held it (free or expired); `Grant.DENIED` otherwise. A renewal of a
        lease that expired and is free is `Grant.ACQUIRED` with ``take``, else denied."""
        ...

    async def release(self, member: str, shards: Sequence[int]) -> None:
        """Give back `member`'s leases of `shards` at once (those it does not hold are left
        alone), so another member can acquire them without waiting for expiry."""
        ...


class MemoryLeaseStore:
    """A `LeaseStore` in a dict, for members inside one process (and for tests).

    `clock` is the time source (``time.monotonic``); tests pass a fake one to make members
    expire without waiting.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        #: member id → when its registration expires
        self.members: dict[str, float] = {}
        #: shard → (holder, when the lease expires)
        self.holders: dict[int, tuple[str, float]] = {}

    async def heartbeat(self, member: str, ttl: float, *, alive: bool) -> Sequence[str]:
        now = self.clock()
        if alive:
            self.members[member] = now + ttl
        else:
            self.members.pop(member, None)
        for name, until in list(self.members.items()):
            if until <= now:
                del self.members[name]
        return sorted(self.members)

    async def leases(
        self, member: str, ttl: float, requests: Sequence[LeaseRequest]
    ) -> Sequence[Grant]:
        now = self.clock()
        grants: list[Grant] = []
        for request in requests:
            holder = self.holders.get(request.shard)
            live = holder is not None and holder[1] > now
            if live and holder is not None and holder[0] == member:
                self.holders[request.shard] = (member, now + ttl)
                grants.append(Grant.RENEWED)
            elif not live and request.take:
                self.holders[request.shard] = (member, now + ttl)
                grants.append(Grant.ACQUIRED)
            else:
                grants.append(Grant.DENIED)
        return grants

    async def release(self, member: str, shards: Sequence[int]) -> None:
        for shard in shards:
            holder = self.holders.get(shard)
            if holder is not None and holder[0] == member:
                del self.holders[shard]

    def holder(self, shard: int) -> str | None:
        """Who holds `shard`'s lease now (``None``: free or expired)."""
        found = self.holders.get(shard)
        return found[0] if found is not None and found[1] > self.clock() else None
