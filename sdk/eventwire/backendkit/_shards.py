"""`ShardCoordinator`: which member of a group reads which shard, under leases.

A channel's messages are split over ``n`` shards (a key always lands on the same one:
`shard_of`); the
members of a group share them: shard ``i`` goes to the ``(i mod m)``-th of the ``m`` live
members sorted by id. Each member runs a coordinator over a `LeaseStore`. Per shard, the
coordinator keeps a `ShardState`:

``UNOWNED``
    another member's, or nobody's yet.
``RECOVERING``
    this member just acquired the lease: before reading new messages, the backend delivers
    again what earlier owners left unsettled (in order), then calls `mark_recovered`.
``READY``
    the backend reads new messages from it.
``DRAINING``
    the shard should go to another member: nothing more is read; the lease is kept (and
    renewed) until every delivery taken from it is settled and no read is under way, then
    given back. So one key never runs on two members at once, and order is kept.

Every heartbeat (`tick`, every ``interval`` seconds and whenever `wake` is called) renews
the member's registration, computes its shards from the live members, renews its leases,
acquires the free ones it should own (taking back, in the same heartbeat, a lease of its
own that expired while nobody took it — and recovering that shard again, since someone may
have read it meanwhile), and gives back the drained ones. A lease is trusted only until
``ttl`` after the heartbeat that renewed it was *sent*: `readable` never returns a shard
past that instant, so a member whose event loop stalled reads nothing until a heartbeat
confirmed it still holds the lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
import zlib
from collections.abc import Callable, Iterable, Iterator

from eventwire.backendkit._leases import Grant, LeaseRequest, LeaseStore
from eventwire.backendkit._outage import Outage

__all__ = ["Shard", "ShardCoordinator", "ShardState", "shard_of"]

log = logging.getLogger("eventwire.backendkit")


def shard_of(key: str, shards: int) -> int:
    """The shard of an ordering key: CRC-32 of its UTF-8 bytes mod `shards`, the same in
    every process, version and backend, so all of a key's events go to one shard (G05)."""
    return zlib.crc32(key.encode()) % shards


class ShardState(enum.Enum):
    """One shard as one member sees it (see the module docstring)."""

    UNOWNED = "unowned"
    RECOVERING = "recovering"
    READY = "ready"
    DRAINING = "draining"


class Shard:
    """One shard of the channel, from this member's point of view."""

    __slots__ = ("epoch", "expires", "in_flight", "index", "reads", "recovered", "state")

    def __init__(self, index: int) -> None:
        self.index = index
        self.state = ShardState.UNOWNED
        #: Until when (coordinator clock) the lease is surely ours.
        self.expires = 0.0
        #: Deliveries taken from it and not settled yet (see `ShardCoordinator.delivered`).
        self.in_flight = 0
        #: Reads from it under way (see `ShardCoordinator.reading`).
        self.reads = 0
        #: Increases each time the lease is acquired; `mark_recovered` names the epoch it
        #: recovered, so a recovery that outlived its lease does not count.
        self.epoch = 0
        #: What earlier owners left unsettled was delivered again in this epoch.
        self.recovered = False

    def __repr__(self) -> str:
        return f"<Shard {self.index} {self.state.value} in_flight={self.in_flight}>"


class ShardCoordinator:
    """Shard ownership of one group member (see the module docstring).

    :param store: the leases and the member set of this (channel, group).
    :param member: this member's id, unique in the group.
    :param shards: how many shards the channel has.
    :param ttl: lease and registration lifetime in seconds: how long a crashed member's
        shards stay unread.
    :param interval: seconds between heartbeats (default ``ttl / 5``).
    :param clock: the time source, ``time.monotonic`` (tests pass a fake one).
    :param scrub: removes secrets from an error text before it is logged.
    """

    def __init__(
        self,
        store: LeaseStore,
        member: str,
        shards: int,
        *,
        ttl: float,
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        scrub: Callable[[str], str] = str,
    ) -> None:
        if shards < 1:
            raise ValueError(f"a channel has at least one shard, not {shards}")
        self.store = store
        self.member = member
        self.ttl = ttl
        self.interval = interval if interval is not None else ttl / 5
        self.shards = [Shard(i) for i in range(shards)]
        #: The live members seen by the last heartbeat, sorted.
        self.members: tuple[str, ...] = ()
        #: Set whenever a shard changes state: the fetch loop waits on it.
        self.changed = asyncio.Event()
        #: Set once every shard this member should own is owned (recovering or ready).
        self.balanced = asyncio.Event()
        self._clock = clock
        self._scrub = scrub
        self._wake = asyncio.Event()
        self._stopped = False

    def __repr__(self) -> str:
        return f"<ShardCoordinator {self.member} {self.shards}>"

    # -- who owns what ---------------------------------------------------------------------

    def wanted(self) -> set[int]:
        """The shards this member should own in the last member view."""
        if self._stopped or self.member not in self.members:
            return set()
        position, count = self.members.index(self.member), len(self.members)
        return {s.index for s in self.shards if s.index % count == position}

    def owned(self) -> list[Shard]:
        """Shards whose lease this member holds (recovering, ready or draining)."""
        return [s for s in self.shards if s.state is not ShardState.UNOWNED]

    def readable(self) -> list[Shard]:
        """Ready shards whose lease is surely still ours: the only ones to read."""
        return self._valid(ShardState.READY)

    def to_recover(self) -> list[Shard]:
        """Recovering shards whose lease is surely still ours."""
        return self._valid(ShardState.RECOVERING)

    def _valid(self, state: ShardState) -> list[Shard]:
        now = self._clock()
        found = [s for s in self.shards if s.state is state]
        valid = [s for s in found if s.expires > now]
        if len(valid) < len(found):
            self.wake()  # a lease may be gone: confirm it before reading there again
        return valid

    # -- what the backend reports ----------------------------------------------------------

    def mark_recovered(self, shard: Shard, epoch: int) -> bool:
        """Recovery of `shard` in `epoch` is done: it becomes ready (if still ours in that
        epoch and wanted). ``False`` if the lease changed hands meanwhile."""
        if shard.epoch != epoch or shard.state is ShardState.UNOWNED:
            return False
        shard.recovered = True
        if shard.state is ShardState.RECOVERING:
            shard.state = ShardState.READY
            self.changed.set()
        return True

    def recover_again(self) -> None:
        """What a read handed this member may be lost (a reply lost with the connection):
        every owned shard recovers again, in a new epoch, before it is read again."""
        for shard in self.owned():
            shard.recovered = False
            if shard.state is ShardState.READY:
                shard.state = ShardState.RECOVERING
                shard.epoch += 1
                self.changed.set()

    @contextlib.contextmanager
    def reading(self, shards: Iterable[Shard]) -> Iterator[None]:
        """Mark a read (or a recovery) from `shards` as under way: none of them is given back
        before it ends and what it returned is counted with `delivered`."""
        taken = list(shards)
        for shard in taken:
            shard.reads += 1
        try:
            yield
        finally:
            for shard in taken:
                shard.reads -= 1
                if shard.state is ShardState.DRAINING and not shard.reads:
                    self.wake()

    def delivered(self, shard: Shard, count: int = 1) -> None:
        """`count` deliveries were taken from `shard` (call it before the read ends)."""
        shard.in_flight += count

    def settled(self, shard: Shard, count: int = 1) -> None:
        """`count` deliveries of `shard` are settled for good (acked and, for a batching
        backend, the ack sent). The last one of a draining shard triggers its hand-over."""
        shard.in_flight = max(0, shard.in_flight - count)
        if not shard.in_flight and shard.state is ShardState.DRAINING:
            self.wake()

    # -- heartbeats ------------------------------------------------------------------------

    def wake(self) -> None:
        """Run the next heartbeat now rather than at the next interval."""
        self._wake.set()

    def stop(self) -> None:
        """Leave the member set: every shard drains and is given back once settled."""
        self._stopped = True
        self.wake()

    async def run(self) -> None:
        """Heartbeat until cancelled; store errors are logged and retried next interval."""
        outage = Outage(f"the lease heartbeat of {self.member}", self._scrub)
        while True:
            self._wake.clear()
            try:
                await self.tick()
                outage.ok()
            except Exception as exc:
                outage.failed(exc)
            # asyncio.timeout, not wait_for: on Python 3.11, wait_for swallows a cancellation
            # that arrives just as the event is set, and the heartbeats would go on
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await self._wake.wait()

    async def tick(self) -> None:
        """One heartbeat: register, renew and acquire leases, give back drained shards."""
        members = await self.store.heartbeat(self.member, self.ttl, alive=not self._stopped)
        self.members = tuple(sorted(set(members)))
        mine = self.wanted()
        changed = await self._lease(mine)
        changed = await self._hand_over(mine) or changed
        if changed:
            self.changed.set()
        if all(self.shards[i].state is not ShardState.UNOWNED for i in mine):
            self.balanced.set()

    async def _lease(self, mine: set[int]) -> bool:
        requests = [
            LeaseRequest(s.index, s.index in mine)
            for s in self.shards
            if s.state is not ShardState.UNOWNED or s.index in mine
        ]
        if not requests:
            return False
        sent = self._clock()
        grants = await self.store.leases(self.member, self.ttl, requests)
        changed = False
        for request, grant in zip(requests, grants, strict=True):
            shard = self.shards[request.shard]
            if grant is Grant.DENIED:
                if shard.state is not ShardState.UNOWNED:
                    self._lost(shard, "another member takes it over")
                    shard.state = ShardState.UNOWNED
                    changed = True
                continue
            shard.expires = sent + self.ttl
            if grant is Grant.ACQUIRED:
                if shard.state is not ShardState.UNOWNED:
                    self._lost(shard, "took it back")
                shard.state = ShardState.RECOVERING
                shard.epoch += 1
                shard.recovered = False
                changed = True
        return changed

    async def _hand_over(self, mine: set[int]) -> bool:
        changed = False
        give_back: list[Shard] = []
        for shard in self.shards:
            if shard.state is ShardState.UNOWNED:
                continue
            if shard.index in mine:
                if shard.state is ShardState.DRAINING:  # wanted again before it was given back
                    shard.state = ShardState.READY if shard.recovered else ShardState.RECOVERING
                    changed = True
                continue
            if shard.state is not ShardState.DRAINING:
                shard.state = ShardState.DRAINING
                changed = True
            if not shard.in_flight and not shard.reads:
                give_back.append(shard)
        if give_back:
            await self.store.release(self.member, [s.index for s in give_back])
            for shard in give_back:
                if shard.state is ShardState.DRAINING:
                    shard.state = ShardState.UNOWNED
            changed = True
        return changed

    def _lost(self, shard: Shard, outcome: str) -> None:
        log.warning(
            "eventwire: %s lost its lease on shard %d (heartbeats were late by more than "
            "ttl=%ss); %s",
            self.member,
            shard.index,
            self.ttl,
            outcome,
        )

    async def leave(self) -> None:
        """Give back every lease at once and leave the member set: what is unsettled there
        goes to the other members without waiting for expiry."""
        self._stopped = True
        owned = self.owned()
        if owned:
            await self.store.release(self.member, [s.index for s in owned])
            for shard in owned:
                shard.state = ShardState.UNOWNED
            self.changed.set()
        await self.store.heartbeat(self.member, self.ttl, alive=False)
